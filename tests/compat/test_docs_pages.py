"""The "coming from torchdiffeq" and "coming from scipy" pages run as written, block by block in order."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
sys.path.insert(0, str(DOCS.parent / "tests" / "docs"))
from docs_helpers import code_blocks  # noqa: E402

RUNNER = (
    "import json, sys\n"
    "import torch; torch.set_num_threads(1)\n"
    "namespace = {}\n"
    "for i, block in enumerate(json.loads(sys.stdin.read())):\n"
    "    exec(compile(block, f'block {i}', 'exec'), namespace)\n"
)


@pytest.mark.slow
@pytest.mark.parametrize("page, blocks, expected", [
    ("from_torchdiffeq.md", 3, "SUCCESS torch.Size([10, 1, 2])"),
    ("from_scipy.md", 4, "SUCCESS torch.Size([301, 3, 2])"),
])
def test_page_blocks_run_in_order(tmp_path, page, blocks, expected):
    found = code_blocks(DOCS / page)
    assert len(found) == blocks, "the page's code blocks changed: update this test"
    result = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(found), cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout
