"""The Getting started page runs as written: its Python blocks, in order, in a fresh process."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from docs_helpers import DOCS, code_blocks

PAGE = DOCS / "getting_started.md"


def test_getting_started_blocks_run_in_order(tmp_path):
    blocks = code_blocks(PAGE)
    assert len(blocks) >= 6, "the page lost its code blocks"
    runner = (
        "import json, sys\n"
        "import torch; torch.set_num_threads(1)\n"
        "namespace = {}\n"
        "for i, block in enumerate(json.loads(sys.stdin.read())):\n"
        "    exec(compile(block, f'getting_started.md block {i}', 'exec'), namespace)\n"
    )
    result = subprocess.run([sys.executable, "-c", runner], input=json.dumps(blocks), cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-3000:]
    # the files the page promises
    for name in ["lotka_volterra.png", "lotka_volterra_phase.png", "lotka_volterra.nc"]:
        assert (tmp_path / name).stat().st_size > 0, name
    assert "SUCCESS" in result.stdout
