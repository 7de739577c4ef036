"""Shared by the docs tests: where things are, building the site, reading code blocks out of pages."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"


def build_site(dest: Path, config: Path = ROOT / "mkdocs.yml", timeout: float = 600) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` into ``dest`` (a warning, e.g. a broken link, makes it fail)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(dest)], cwd=config.parent, capture_output=True, text=True, env=env,
                          timeout=timeout)


def code_blocks(page: Path, language: str = "python") -> list[str]:
    """The fenced code blocks of one language on a Markdown page, in order, dedented."""
    blocks = []
    for match in re.finditer(rf"^(?P<indent>[ \t]*)```{language}\n(?P<body>.*?)^(?P=indent)```", page.read_text(),
                             re.S | re.M):
        indent = len(match["indent"])
        blocks.append("\n".join(line[indent:] for line in match["body"].splitlines()))
    return blocks


def html_headings(html: str, level: int) -> dict[str, str]:
    """id -> text of the <hN> headings of a built page (tags stripped)."""
    out = {}
    for match in re.finditer(rf'<h{level} id="([^"]+)"[^>]*>(.*?)</h{level}>', html, re.S):
        out[match[1]] = re.sub(r"<[^>]+>", "", match[2]).replace("&para;", "").replace("¶", "").strip()
    return out
