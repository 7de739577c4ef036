"""MkDocs hook: reference pages generated from the plugin registry, and the API page from ``sciode.__all__``.

Runs at build time (``hooks:`` in mkdocs.yml), so every plugin installed when the
docs are built gets its pages: one per solver, sensitivity and model, built from
the class attributes (name, order, adaptive, dense output, summary, reference,
options) and the docstrings. Nav entries in mkdocs.yml that point at
``reference/<kind>/index.md`` are expanded into a section listing each page.
A plugin the registry reports broken is a build warning (so ``--strict`` fails):
docs that silently leave out a plugin's pages would be wrong.
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
import re
import warnings
from typing import Any

log = logging.getLogger("mkdocs.hooks.gen_reference")

KINDS = {"solver": "solvers", "sensitivity": "sensitivities", "model": "models"}
TITLES = {"solver": "Solvers", "sensitivity": "Sensitivity algorithms", "model": "Models"}


@dataclasses.dataclass
class Entry:
    """One registered class and the plugin that provides it."""

    kind: str
    name: str
    cls: type
    plugin: str
    distribution: str
    version: str

    @property
    def path(self) -> str:
        return f"reference/{KINDS[self.kind]}/{self.name}.md"


def collect() -> dict[str, list[Entry]]:
    """Every registered solver / sensitivity / model, with its provider; warns about broken plugins."""
    from sciode.registry import registry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # broken plugins are reported below as build warnings
        registry.load()
    for info in registry.plugins.values():
        if info.error:
            log.warning("sciode plugin %r (%s) is broken and has no reference pages: %s",
                        info.name, info.distribution, info.error)
    out: dict[str, list[Entry]] = {}
    for kind in KINDS:
        out[kind] = [Entry(kind, name, cls, info.name, info.distribution, info.version)
                     for name, (cls, info) in registry.owned(kind).items()]
    return out


# -- text helpers ---------------------------------------------------------------------------
def _md_text(doc: str) -> str:
    """A docstring as Markdown: RST ``literals`` and Sphinx roles (:meth:`x`) become `code`."""
    return re.sub(r"(?::\w+:)?``?([^`]+)``?", r"`\1`", doc)


def _cell(value: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _options(cls: type) -> list[tuple[str, str]]:
    """(option, default) for each keyword the constructor takes."""
    rows = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = "required" if p.default is p.empty else f"`{p.default!r}`"
        rows.append((p.name, default))
    return rows


def _problem_types(cls: type) -> str:
    return ", ".join(f"`{t.__name__}`" for t in getattr(cls, "problem_types", ()))


def _yes(value: Any) -> str:
    return "yes" if value else "no"


# -- pages -----------------------------------------------------------------------------------
def _header(entry: Entry) -> list[str]:
    cls = entry.cls
    lines = [f"# `{entry.name}`", ""]
    summary = getattr(cls, "summary", "")
    if summary:
        lines += [_md_text(summary), ""]
    return lines


def _provenance(entry: Entry) -> list[str]:
    return [f"| class | `{_class_path(entry.cls)}` |",
            f"| provided by | plugin `{entry.plugin}` (distribution `{entry.distribution}` {entry.version}) |"]


def _body(entry: Entry) -> list[str]:
    lines: list[str] = []
    reference = getattr(entry.cls, "reference", "")
    if reference:
        lines += ["## Reference", "", _md_text(reference), ""]
    opts = _options(entry.cls)
    lines += ["## Options", ""]
    if opts:
        lines += ["| option | default |", "|---|---|"] + [f"| `{n}` | {_cell(d)} |" for n, d in opts] + [""]
    else:
        lines += ["None.", ""]
    doc = inspect.getdoc(entry.cls)
    own_doc = entry.cls.__dict__.get("__doc__")
    if doc and own_doc:
        lines += ["## Description", "", _md_text(doc), ""]
    module_doc = inspect.getdoc(inspect.getmodule(entry.cls))
    if module_doc:
        lines += ["## Implementation notes", "", f"From `{entry.cls.__module__}`:", "", _md_text(module_doc), ""]
    return lines


def _usage(entry: Entry) -> str:
    cls = entry.cls
    if entry.kind == "solver":
        step = 'rtol=1e-6, atol=1e-9' if cls.adaptive else "dt=0.01"
        return f'sol = sciode.solve(prob, "{entry.name}", {step})'
    if entry.kind == "sensitivity":
        return f'sol = sciode.solve(prob, "tsit5", sensealg="{entry.name}")\nloss(sol).backward()'
    return f'Model = sciode.models()["{entry.name}"]   # {_class_path(cls)}'


def solver_page(entry: Entry) -> str:
    cls = entry.cls
    error_order = getattr(cls, "error_order", None)
    rows = [
        "| property | value |", "|---|---|",
        f"| order | {cls.order} |",
        f"| adaptive | {_yes(cls.adaptive)}"
        + (f" (embedded error estimate of order {error_order})" if cls.adaptive and error_order else "") + " |",
        f"| dense output | {_yes(cls.dense_output)} |",
        f"| problems | {_problem_types(cls)} |",
        f"| differentiable (backprop) | {_yes(getattr(cls, 'differentiable', True))} |",
        f"| own integration loop | {_yes(getattr(cls, 'owns_loop', False))} |",
    ]
    if getattr(cls, "stability", ""):
        rows.append(f"| stability | {_cell(cls.stability)} |")
    rows += _provenance(entry)
    usage = ["## Usage", "", "```python", _usage(entry), "```", ""]
    return "\n".join(_header(entry) + rows + [""] + usage + _body(entry))


def sensitivity_page(entry: Entry) -> str:
    rows = ["| property | value |", "|---|---|", *_provenance(entry)]
    usage = ["## Usage", "", "```python", _usage(entry), "```", ""]
    return "\n".join(_header(entry) + rows + [""] + usage + _body(entry))


def _constructor(cls: type) -> str:
    """``Name(arg, key=default, ...)`` without ``self`` and annotations (they are on the API pages)."""
    sig = inspect.signature(cls.__init__)
    params = [p.replace(annotation=p.empty) for p in sig.parameters.values() if p.name != "self"]
    return f"{cls.__name__}{sig.replace(parameters=params, return_annotation=sig.empty)}"


def model_page(entry: Entry) -> str:
    signature = _constructor(entry.cls)
    rows = ["| property | value |", "|---|---|", *_provenance(entry)]
    usage = ["## Constructor", "", "```python", signature, "```", "",
             "## Usage", "", "```python", _usage(entry), "```", ""]
    return "\n".join(_header(entry) + rows + [""] + usage + _body(entry))


PAGES = {"solver": solver_page, "sensitivity": sensitivity_page, "model": model_page}


def index_page(kind: str, entries: list[Entry]) -> str:
    """The table of every registered class of one kind, linking to their pages."""
    lines = [f"# {TITLES[kind]}", "",
             f"Generated from `sciode.{KINDS[kind]}()` when these docs were built: every installed plugin's "
             f"{KINDS[kind]} appear here. Run `sciode plugins` to see what your environment provides.", ""]
    if not entries:
        return "\n".join(lines + [f"No {KINDS[kind]} were registered when these docs were built.", ""])
    if kind == "solver":
        lines += ["| name | order | adaptive | dense output | problems | summary |", "|---|---|---|---|---|---|"]
        for e in entries:
            c = e.cls
            lines.append(f"| [`{e.name}`]({e.name}.md) | {c.order} | {_yes(c.adaptive)} | {_yes(c.dense_output)} "
                         f"| {_problem_types(c)} | {_cell(getattr(c, 'summary', ''))} |")
    else:
        lines += ["| name | class | plugin | summary |", "|---|---|---|---|"]
        for e in entries:
            summary = getattr(e.cls, "summary", "") or (inspect.getdoc(e.cls) or "").split("\n")[0]
            lines.append(f"| [`{e.name}`]({e.name}.md) | `{_class_path(e.cls)}` | `{e.plugin}` | {_cell(summary)} |")
    return "\n".join(lines + [""])


def _api_target(name: str, obj: Any) -> str:
    """Where mkdocstrings finds ``sciode.<name>``: the module or the defining module's object.

    Names may be re-exported or loaded lazily (a module ``__getattr__``), which static
    analysis cannot follow, so the real location is taken from the live object.
    """
    if inspect.ismodule(obj):
        return obj.__name__
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else f"sciode.{name}"


def api_page() -> str:
    """One section per name in ``sciode.__all__`` (rendered by mkdocstrings), then the conformance helpers."""
    import sciode

    lines = ["# API reference", "",
             "Every public name of the `sciode` package (`sciode.__all__`), generated from the docstrings when "
             "these docs were built. `sciode.testing` (conformance helpers for plugin authors) follows at the end.", ""]
    for name in sciode.__all__:
        obj = getattr(sciode, name)
        anchor = "sciode-version" if name == "__version__" else f"sciode.{name}"  # "__" would read as bold
        lines += [f"## `sciode.{name}` {{#{anchor}}}", ""]
        if name == "__version__":
            lines += [f"The installed sciode version string (PEP 440): `{obj}` for these docs.", ""]
            continue
        if not (inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj)):
            # an instance (e.g. pluggy's hook markers): static analysis sees only the assignment
            lines += [f"An instance of `{type(obj).__module__}.{type(obj).__qualname__}`: "
                      + _md_text(inspect.getdoc(obj) or ""), ""]
        # the root heading (level 3, short name) carries the signature; members go one level below
        lines += [f"::: {_api_target(name, obj)}", "    options:", "      show_root_heading: true",
                  "      show_root_full_path: false", "      heading_level: 3", ""]
    lines += ["## Conformance helpers: `sciode.testing` {#sciode.testing}", "", "::: sciode.testing",
              "    options:", "      show_root_heading: false", "      heading_level: 3", ""]
    return "\n".join(lines)


# -- mkdocs hook events -------------------------------------------------------------------
_collected: dict[str, list[Entry]] = {}


def _expand_nav(nav: Any) -> Any:
    """Replace ``Title: reference/<kind>/index.md`` with a section of the index and one page per name."""
    if isinstance(nav, list):
        return [_expand_nav(item) for item in nav]
    if isinstance(nav, dict):
        out = {}
        for title, value in nav.items():
            kind = next((k for k, folder in KINDS.items() if value == f"reference/{folder}/index.md"), None)
            if kind is None:
                out[title] = _expand_nav(value)
            else:
                out[title] = [value] + [{e.name: e.path} for e in _collected[kind]]
        return out
    return nav


def on_config(config: Any) -> Any:
    _collected.clear()
    _collected.update(collect())
    if config.nav:
        config.nav = _expand_nav(config.nav)
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    generated = {"api.md": api_page()}
    for kind, entries in _collected.items():
        generated[f"reference/{KINDS[kind]}/index.md"] = index_page(kind, entries)
        for entry in entries:
            generated[entry.path] = PAGES[kind](entry)
    for path, content in generated.items():
        files.append(File.generated(config, path, content=content))
    return files
