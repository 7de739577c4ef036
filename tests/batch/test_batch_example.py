"""examples/batch_sweep.py runs end to end and writes members.nc, trajectories.nc and a PNG."""
from __future__ import annotations

import subprocess
import sys

import pytest
from batch_helpers import REPO

import sciode


@pytest.mark.slow
def test_batch_sweep_example(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "examples" / "batch_sweep.py"), "--output-dir", str(tmp_path),
                           "--members", "300"], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    out = sciode.io.load(tmp_path / "trajectories.nc")
    assert out.sizes == {"member": 300, "time": 201, "state": 2} and out.attrs["failed_members"] == 0
    assert (tmp_path / "members.nc").exists()
    assert (tmp_path / "batch_sweep.png").read_bytes()[:4] == b"\x89PNG"
