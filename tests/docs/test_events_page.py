"""The Events page runs as written, and its numbers are the closed forms it quotes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from docs_helpers import DOCS, code_blocks

PAGE = DOCS / "events.md"

CHECKS = """
import math
assert max(abs(a - b) / b for a, b in zip(bounces, exact)) < 1e-10
assert abs(float(d_u0) - 1 / k) < 1e-6 * (1 / k)
assert abs(float(d_k) + math.log(2) / k ** 2) < 1e-6 * math.log(2) / k ** 2
print("checks passed")
"""


def test_events_page_blocks_run_in_order(tmp_path):
    blocks = code_blocks(PAGE)
    assert len(blocks) >= 5, "the page lost its code blocks"
    runner = (
        "import json, sys\n"
        "import torch; torch.set_num_threads(1)\n"
        "namespace = {}\n"
        "for i, block in enumerate(json.loads(sys.stdin.read())):\n"
        "    exec(compile(block, f'events.md block {i}', 'exec'), namespace)\n"
    )
    result = subprocess.run([sys.executable, "-c", runner], input=json.dumps(blocks + [CHECKS]), cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "checks passed" in result.stdout
    assert "SUCCESS 3 3" in result.stdout
