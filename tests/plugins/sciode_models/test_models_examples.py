"""Each example runs in quick mode and writes its PNG (slow: run with pytest -m slow)."""
from __future__ import annotations

import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"

QUICK = {
    "odenet_digits": ["--epochs", "1", "--train-limit", "128", "--res-blocks", "1"],
    "ffjord_toy": ["--iters", "3", "--batch", "64", "--test-size", "256", "--grid", "20", "--dataset", "2spirals"],
    "cnf_exact_vs_hutchinson": ["--iters", "3", "--batch", "64", "--points", "64", "--repeats", "8",
                                "--dims", "2", "4"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(QUICK))
def test_example_runs_quickly_and_writes_png(name: str, tmp_path: pathlib.Path) -> None:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / f"{name}.png"
    module.main([*QUICK[name], "--out", str(out)])
    assert out.exists() and out.stat().st_size > 1000
