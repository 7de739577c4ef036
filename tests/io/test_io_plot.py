"""Solution.plot() and ``sciode plot``: PNG files of trajectories and phase portraits."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import sciode  # noqa: E402
from sciode.cli import main  # noqa: E402


def lotka(u, p, t):
    x, y = u[..., 0], u[..., 1]
    return torch.stack([p[..., 0] * x - p[..., 1] * x * y, p[..., 2] * x * y - p[..., 3] * y], -1)


@pytest.fixture
def sol():
    u0 = torch.tensor([[10.0, 5.0], [4.0, 2.0], [6.0, 1.0]], dtype=torch.float64)
    p = torch.tensor([[1.5, 1.0, 1.0, 3.0], [1.5, 1.0, 1.0, 3.0], [1.0, -2.0, 1.0, 1.0]], dtype=torch.float64)
    # the last member's populations feed each other: finite-time blow-up
    prob = sciode.ODEProblem(lotka, u0, (0.0, 3.0), p, state_names=["prey", "predator"], state_units="1",
                             time_units="d", name="LV")
    return sciode.solve(prob, "tsit5", saveat=60, stepping="per_member")


def test_solution_plot_time_series_and_phase(sol, tmp_path):
    fig = sol.plot(output=tmp_path / "ts.png")
    assert len(fig.axes) == 2 and fig.axes[1].get_xlabel() == "time [d]" and fig.axes[0].get_ylabel() == "prey [1]"
    assert len(fig.axes[0].lines) == 3
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels[2].endswith("(failed)") and fig.axes[0].lines[2].get_linestyle() == "--"
    x, y = fig.axes[0].lines[0].get_data()
    np.testing.assert_allclose(y, sol.u[:, 0, 0].numpy())
    phase = sol.plot(phase=("prey", "predator"), members=[1])
    assert len(phase.axes) == 1 and len(phase.axes[0].lines) == 1
    np.testing.assert_allclose(phase.axes[0].lines[0].get_xdata(), sol.u[:, 1, 0].numpy())
    assert (tmp_path / "ts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(sciode.ProblemError, match="unknown state 'wolves'"):
        sol.plot(phase=("prey", "wolves"))
    plt.close("all")


def test_cli_plot_writes_png(sol, tmp_path, capsys):
    path = sciode.io.save(sol.to_xarray(members=["a", "b", "c"]), tmp_path / "traj.nc")
    assert main(["plot", str(path), "--members", "b", "c", "--phase", "prey", "predator"]) == 0
    png = tmp_path / "traj.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    assert main(["plot", str(path), "--members", "zz", "--output", str(tmp_path / "x.png")]) == 2
    assert "'zz' is not a label of the 'member' coordinate" in capsys.readouterr().err
    plt.close("all")
