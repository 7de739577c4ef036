"""The SDE examples run end to end in quick mode (slow: run with pytest -m slow)."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.parametrize("script, outputs", [
    ("sde_ornstein_uhlenbeck.py", ("sde_ornstein_uhlenbeck.png", "sde_ornstein_uhlenbeck.nc")),
    ("neural_sde.py", ("neural_sde.png", "neural_sde.nc")),
])
def test_example_quick_mode(script: str, outputs: tuple[str, ...], tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [script, "--quick", "--outdir", str(tmp_path)])
    runpy.run_path(str(ROOT / "examples" / script), run_name="__main__")
    for name in outputs:
        assert (tmp_path / name).stat().st_size > 0
