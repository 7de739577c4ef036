"""The reference generator: pages from class attributes, nav expansion, broken plugins as build warnings."""
from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any

import pytest
from docs_helpers import DOCS

import sciode
from sciode.registry import Registry


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("gen_reference_under_test", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class Leap(sciode.Solver):
    """A documented test solver.

    Second paragraph of ``details``.
    """

    name = "leap_doc_test"
    order = 3
    error_order = 2
    adaptive = True
    summary = "Leaps | with a pipe."
    reference = "Somebody (2024), J. Tests 1"

    def __init__(self, safety: float = 0.5, *, mode: str = "fast") -> None:
        self.safety, self.mode = safety, mode


def test_solver_page_shows_attributes_options_and_docs(gen):
    entry = gen.Entry("solver", Leap.name, Leap, "leapplugin", "sciode-leap", "1.2")
    page = gen.solver_page(entry)
    assert page.startswith("# `leap_doc_test`\n\nLeaps | with a pipe.")
    assert "| order | 3 |" in page
    assert "| adaptive | yes (embedded error estimate of order 2) |" in page
    assert "| `safety` | `0.5` |" in page and "| `mode` | `'fast'` |" in page
    assert "Somebody (2024), J. Tests 1" in page
    assert "Second paragraph of `details`." in page  # RST literals become Markdown code
    assert "plugin `leapplugin` (distribution `sciode-leap` 1.2)" in page
    assert 'sciode.solve(prob, "leap_doc_test", rtol=1e-6, atol=1e-9)' in page
    assert entry.path == "reference/solvers/leap_doc_test.md"


def test_index_escapes_table_cells_and_links_pages(gen):
    entry = gen.Entry("solver", Leap.name, Leap, "leapplugin", "sciode-leap", "1.2")
    index = gen.index_page("solver", [entry])
    assert "| [`leap_doc_test`](leap_doc_test.md) | 3 | yes | yes | `ODEProblem` | Leaps \\| with a pipe. |" in index
    assert "No models were registered" in gen.index_page("model", [])


def test_nav_sections_expand_to_one_page_per_name(gen, monkeypatch):
    entry = gen.Entry("solver", Leap.name, Leap, "p", "d", "v")
    monkeypatch.setattr(gen, "_collected", {"solver": [entry], "sensitivity": [], "model": []})
    nav: list[Any] = [{"Home": "index.md"}, {"Reference": [{"Solvers": "reference/solvers/index.md"},
                                                          {"Models": "reference/models/index.md"}]}]
    out = gen._expand_nav(nav)
    assert out[0] == {"Home": "index.md"}
    assert out[1]["Reference"][0] == {"Solvers": ["reference/solvers/index.md", {"leap_doc_test": entry.path}]}
    assert out[1]["Reference"][1] == {"Models": ["reference/models/index.md"]}


def test_every_installed_plugin_is_collected(gen):
    collected = gen.collect()
    assert [e.name for e in collected["solver"]] == sorted(sciode.solvers())
    assert [e.name for e in collected["sensitivity"]] == sorted(sciode.sensitivities())
    assert [e.name for e in collected["model"]] == sorted(sciode.models())
    tsit5 = next(e for e in collected["solver"] if e.name == "tsit5")
    assert tsit5.distribution == "sciode"


def test_broken_plugin_is_a_build_warning(gen, monkeypatch, caplog):
    class Broken:
        @sciode.hookimpl
        def sciode_add_solvers(self):
            return [object]

    registry = Registry()
    with pytest.warns(UserWarning):
        registry.register(Broken(), name="broken_doc_plugin", distribution="sciode-broken")
    monkeypatch.setattr(sys.modules["sciode.registry"], "registry", registry)
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.gen_reference"):
        collected = gen.collect()
    assert "broken_doc_plugin" in caplog.text and "sciode-broken" in caplog.text
    assert "tsit5" in [e.name for e in collected["solver"]]  # the others still get pages
