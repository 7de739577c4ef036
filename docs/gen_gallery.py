"""MkDocs hook: the example gallery page, generated from the scripts in ``examples/``.

Each top-level ``examples/*.py`` gets a section: its docstring (what it does, how to
run it) and the figures committed under ``docs/figures/`` that belong to it (named
after the script, or named in its source). New examples appear without editing
the docs.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FIGURES = ROOT / "docs" / "figures"


def _figures_for(script: Path, source: str) -> list[Path]:
    if not FIGURES.is_dir():
        return []
    stem = script.stem
    return sorted(f for f in FIGURES.iterdir()
                  if f.suffix.lower() in (".png", ".svg", ".jpg") and (f.stem.startswith(stem) or f.name in source))


def example_section(script: Path) -> list[str]:
    """The gallery section of one script: title, docstring, run command, figures."""
    source = script.read_text()
    doc = ast.get_docstring(ast.parse(source)) or ""
    first, _, rest = re.sub(r"``([^`]+)``", r"`\1`", doc).partition("\n")
    lines = [f"## `{script.name}`", "", first or "(no description)", ""]
    if rest.strip():
        lines += ["```text", rest.strip(), "```", ""]
    runnable = "__main__" in source
    if runnable:
        lines += ["```bash", f"python examples/{script.name}           # --help lists its options", "```", ""]
    else:
        lines += ["A module, not a script: it is used by another example or by `sciode run` (see above).", ""]
    for fig in _figures_for(script, source):
        lines += [f"![{fig.stem}](figures/{fig.name})", ""]
    return lines


def gallery_page() -> str:
    scripts = sorted(EXAMPLES.glob("*.py"))
    lines = ["# Example gallery", "",
             "Every script in `examples/` is a complete program that writes its figure and/or netCDF file "
             "(where to is an option: see each script's `--help`). A slow test "
             "(`python -m pytest -m slow tests/docs/test_examples_run.py`) runs each one in its quick mode "
             "and checks that it writes them. This page is generated from the scripts' docstrings when the "
             "docs are built.", "",
             "`examples/third_party_plugin/` is not a script but a complete plugin distribution: see "
             "[Writing a plugin](plugins.md).", ""]
    for script in scripts:
        lines += example_section(script)
    return "\n".join(lines)


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, "examples.md", content=gallery_page()))
    return files
