"""The documentation site builds in strict mode, and the generated pages cover everything they should."""
from __future__ import annotations

import html as html_lib
import shutil

import pytest
from docs_helpers import DOCS, EXAMPLES, ROOT, build_site, html_headings

import sciode


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    dest = tmp_path_factory.mktemp("site")
    result = build_site(dest)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return dest


def test_strict_build_succeeds(site):
    for page in ["index.html", "getting_started/index.html", "concepts/index.html", "which_solver/index.html",
                 "plugins/index.html", "api/index.html", "examples/index.html", "comparison/index.html",
                 "benchmarks/index.html", "changelog/index.html"]:
        assert (site / page).is_file(), page


def test_api_page_documents_every_public_name(site):
    page = (site / "api" / "index.html").read_text()
    headings = html_headings(page, 2)
    for name in sciode.__all__:
        matching = [text for text in headings.values() if text == f"sciode.{name}"]
        assert matching, f"sciode.{name} has no section on the API page; headings: {sorted(headings.values())}"
    # mkdocstrings rendered the objects (not just our headings): a documented method and a helper appear
    assert "sciode.solution.Solution.to_xarray" in page
    assert "sciode.testing.assert_convergence_order" in page


@pytest.mark.parametrize("kind,table", [("solvers", sciode.solvers), ("sensitivities", sciode.sensitivities),
                                        ("models", sciode.models)])
def test_reference_page_for_every_registered_class(site, kind, table):
    index = html_lib.unescape((site / "reference" / kind / "index.html").read_text())
    for name, cls in table().items():
        page = site / "reference" / kind / name / "index.html"
        assert page.is_file(), f"no reference page for {kind[:-1]} {name!r}"
        text = html_lib.unescape(page.read_text())
        assert cls.__module__ in text and f"{name}/" in index
        if kind == "solvers":
            assert f"<td>order</td>\n<td>{cls.order}</td>" in text
            if cls.reference:
                assert cls.reference in text


def test_gallery_lists_every_example(site):
    gallery = html_lib.unescape((site / "examples" / "index.html").read_text())
    for script in EXAMPLES.glob("*.py"):
        assert script.name in gallery


def test_included_benchmarks_readme(site):
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    first_heading = next(line for line in readme.splitlines() if line.startswith("## ")).lstrip("# ").strip()
    assert html_lib.unescape(first_heading) in html_lib.unescape((site / "benchmarks" / "index.html").read_text())


@pytest.mark.slow
def test_strict_build_fails_on_a_broken_link(tmp_path):
    """Strict mode is not decorative: a link to a missing page stops the build and names the page."""
    copy = tmp_path / "repo"
    shutil.copytree(DOCS, copy / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    shutil.copytree(ROOT / "benchmarks", copy / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "examples" / "third_party_plugin", copy / "examples" / "third_party_plugin",
                    ignore=shutil.ignore_patterns("build", "*.egg-info"))
    with (copy / "docs" / "concepts.md").open("a") as fh:
        fh.write("\nSee [the missing page](no_such_page.md).\n")
    result = build_site(tmp_path / "site", config=copy / "mkdocs.yml")
    assert result.returncode != 0
    assert "no_such_page.md" in result.stdout + result.stderr
