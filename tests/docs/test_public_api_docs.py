"""Every public name in ``sciode.__all__`` has a docstring and a section in the generated API page."""
from __future__ import annotations

import importlib.util
import inspect
import sys

import pytest
from docs_helpers import DOCS

import sciode


def _gen_reference():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sciode.__all__)
def test_public_name_has_a_docstring(name):
    obj = getattr(sciode, name)
    if isinstance(obj, str):
        # data (the version string) cannot carry a docstring; the API page describes it instead
        assert name == "__version__", f"sciode.{name} is a string without a description"
        return
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")  # its own, not inherited
    elif inspect.isroutine(obj) or inspect.ismodule(obj):
        doc = obj.__doc__
    else:  # an instance, e.g. pluggy's hookimpl marker: documented by its class
        doc = inspect.getdoc(obj)
    assert doc and doc.strip(), f"sciode.{name} has no docstring"


def test_api_page_source_covers_all_names():
    page = _gen_reference().api_page()
    for name in sciode.__all__:
        assert f"## `sciode.{name}`" in page, name
    assert sciode.__version__ in page
    assert "::: sciode.testing" in page


def test_api_targets_resolve_to_the_defining_module():
    gen = _gen_reference()
    assert gen._api_target("solve", sciode.solve) == "sciode.solve.solve"
    assert gen._api_target("io", sciode.io) == "sciode.io"
    assert gen._api_target("ODEProblem", sciode.ODEProblem) == "sciode.problems.ODEProblem"
