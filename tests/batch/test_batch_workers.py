"""dask workers: one that dies mid-run costs only the member that killed it; the local cluster is TLS on loopback."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from batch_helpers import REPO

import sciode
import sciode.cli

POISON = 13
KILLER = f'''
import multiprocessing, os, torch, sciode
from decay_rates import rate  # a module beside the script: importable on the workers too


def decay(u, p, t):
    return -p * u


def problem(inputs):
    ids = inputs["id"]
    if {POISON} in ids.tolist() and multiprocessing.current_process().name != "MainProcess":
        os._exit(1)  # the worker process dies, as with a segfault in a compiled library
    return sciode.ODEProblem(decay, inputs["x0"][:, None].clone(), (0.0, 1.0), rate(inputs["k"])[:, None])
'''


@pytest.mark.slow
def test_a_worker_that_dies_costs_only_its_member(tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "decay_rates.py").write_text("def rate(k):\n    return 1.0 * k\n")
    (folder / "killer.py").write_text(KILLER)
    n = 40
    xr.Dataset({"id": ("member", np.arange(n)), "k": ("member", np.linspace(0.1, 2.0, n)),
                "x0": ("member", np.ones(n))}).to_netcdf(tmp_path / "m.nc")
    output = tmp_path / "o.nc"
    status = sciode.cli.main(["run", str(folder / "killer.py"), "--input", str(tmp_path / "m.nc"), "--output",
                              str(output), "--solver", "rk4", "--dt", "0.01", "--saveat", "4", "--chunk", "8",
                              "--workers", "2"])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "workers at tls://127.0.0.1:" in err
    ds = sciode.io.load(output)
    codes = ds["retcode"].values
    assert codes[POISON] == sciode.ReturnCode.FAILURE
    assert "the worker process died while solving this member" in str(ds["message"].values[POISON])
    others = np.delete(np.arange(n), POISON)
    assert (codes[others] == sciode.ReturnCode.SUCCESS).all()
    exact = np.exp(-ds["k"].values[:, None] * ds["time"].values[None])
    np.testing.assert_allclose(ds["u"].values[others, :, 0], exact[others], rtol=1e-7)
    assert ds.attrs["failed_members"] == 1


@pytest.mark.slow
def test_local_cluster_is_tls_on_loopback_and_refuses_strangers():
    from distributed import Client
    from distributed.security import Security

    from sciode.batch.cluster import local_cluster

    with local_cluster(1) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert client.submit(sum, [1, 2]).result() == 3
        with pytest.raises((OSError, TimeoutError)):  # no credentials: the handshake fails
            Client(address.replace("tls://", "tcp://"), timeout="3s")
        with pytest.raises((OSError, TimeoutError)):  # TLS with credentials of its own, not the run's
            Client(address, security=Security.temporary(), timeout="3s")


def test_docs_say_the_script_is_executed_and_how_to_secure_a_cluster():
    text = (REPO / "docs" / "batch.md").read_text()
    assert "`sciode run` executes the problem script" in text and "trust" in text
    assert "Security.temporary()" in text and "distributed.comm.tls" in text
