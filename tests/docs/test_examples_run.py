"""The example gallery: every top-level script in examples/ runs in its quick mode and writes its outputs.

How a script is run, in order of preference: the command on a "Quick check:" line of its
docstring; else ``--quick`` if its ``--help`` lists it; else ``--iters 2`` / ``--epochs 1``;
else as is. Outputs go to a temporary directory through ``--output-dir`` / ``--outdir`` /
``--out`` when the script takes one (and the working directory is that temporary directory
too). Each script must exit 0 and write at least one PNG or netCDF file.
"""
from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from docs_helpers import EXAMPLES, ROOT

pytestmark = pytest.mark.slow

TIMEOUT = float(os.environ.get("SCIODE_EXAMPLE_TIMEOUT", "600"))  # seconds per example
OUTPUT_SUFFIXES = {".png", ".nc"}

#: examples the gallery is meant to have (issue 8); each is skipped with this reason until a script matches
EXPECTED = {
    "spiral": "the spiral fit from the Neural ODE paper",
    "robertson": "the Robertson stiff problem with a work-precision diagram vs scipy",
    "fit": "Lotka-Volterra parameter fitting from noisy netCDF observations",
    "sweep": "a batch run over a netCDF parameter sweep",
    "bouncing_ball": "a bouncing ball: terminal events and restarts with remake (issue 11)",
    "threshold_batch": "events on a batch: per-member terminal and non-terminal events (issue 11)",
}


def _scripts() -> list[Path]:
    return sorted(EXAMPLES.glob("*.py"))


def _is_script(path: Path) -> bool:
    return "__main__" in path.read_text()


def _help_options(path: Path) -> set[str]:
    out = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env={**os.environ, "MPLBACKEND": "Agg"})
    return set(re.findall(r"^\s+(--[\w-]+)", out.stdout, re.M)) if out.returncode == 0 else set()


def quick_arguments(path: Path, options: set[str]) -> list[str]:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    match = re.search(rf"Quick check:\s*python\s+\S*{re.escape(path.name)}(.*)", doc)
    if match:
        return shlex.split(match[1])
    if "--quick" in options:
        return ["--quick"]
    if "--iters" in options:
        return ["--iters", "2"]
    if "--epochs" in options:
        return ["--epochs", "1"]
    return []


def output_arguments(path: Path, options: set[str], out_dir: Path, given: list[str]) -> list[str]:
    for flag in ("--output-dir", "--outdir"):
        if flag in options and flag not in given:
            return [flag, str(out_dir)]
    if "--out" in options and "--out" not in given:
        return ["--out", str(out_dir / f"{path.stem}.png")]
    return []


def _new_outputs(roots: list[Path], since: float) -> list[Path]:
    found = []
    for root in roots:
        if root.is_dir():
            found += [f for f in root.rglob("*") if f.suffix in OUTPUT_SUFFIXES and f.stat().st_mtime >= since]
    return found


def _cases() -> list:
    cases = [pytest.param(path, id=path.stem) for path in _scripts()]
    for key, what in EXPECTED.items():
        if not any(key in path.stem for path in _scripts()):
            cases.append(pytest.param(None, id=f"missing-{key}", marks=pytest.mark.skip(
                reason=f"no examples/*{key}*.py yet: the gallery asks for {what}")))
    return cases


@pytest.mark.parametrize("script", _cases())
def test_example_runs_and_writes_outputs(script, tmp_path):
    if not _is_script(script):
        pytest.skip(f"{script.name} has no __main__ block: a module used by another example or by `sciode run`")
    options = _help_options(script)
    args = quick_arguments(script, options)
    args += output_arguments(script, options, tmp_path, args)
    start = time.time() - 1
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    try:
        result = subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, capture_output=True, text=True,
                                timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script.name} {' '.join(args)} did not finish within {TIMEOUT:.0f} s")
    assert result.returncode == 0, (f"{script.name} {' '.join(args)} failed:\n{result.stdout[-2000:]}\n"
                                    f"{result.stderr[-3000:]}")
    # where the script was told to write; a script without an output option writes to its default place
    roots = [tmp_path] if any(a.startswith("--out") for a in args) else [tmp_path, EXAMPLES / "output"]
    outputs = _new_outputs(roots, start)
    assert outputs, f"{script.name} {' '.join(args)} wrote no PNG or netCDF file"
