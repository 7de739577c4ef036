"""The plugin registry: discovery through entry points, lookup by name.

Built-in plugins are found exactly like third-party ones, through the
``sciode.plugins`` entry-point group. A plugin that fails to import or returns
something malformed is skipped with a warning (and listed by ``sciode plugins``);
two plugins claiming one name are an error naming both distributions.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import warnings
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, ProblemError

__all__ = ["Registry", "registry", "register_plugin", "solvers", "sensitivities", "models", "lookup"]

KINDS = {
    "solver": "sciode_add_solvers",
    "sensitivity": "sciode_add_sensitivities",
    "model": "sciode_add_models",
}


class PluginWarning(UserWarning):
    """A plugin was skipped because it is broken."""


@dataclasses.dataclass
class PluginInfo:
    """One registered plugin: where it came from and what it provides (or why it broke)."""

    name: str
    distribution: str
    version: str
    provides: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    error: str | None = None


def _base_class(kind: str) -> type:
    if kind == "solver":
        from .solver import Solver

        return Solver
    if kind == "sensitivity":
        from .sensitivity import Sensitivity

        return Sensitivity
    import torch

    return torch.nn.Module


class Registry:
    """Loads plugins lazily on first lookup; holds name -> class per kind."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.entries: dict[str, dict[str, tuple[type, PluginInfo]]] = {k: {} for k in KINDS}
        self.loaded = False

    # -- discovery ----------------------------------------------------------------------
    def load(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        for ep in importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, dist.name if dist else "?", dist.version if dist else "?")
            if ep.name in self.plugins:
                continue  # the same entry point seen twice (e.g. an editable install on the path)
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure makes the plugin broken, not sciode
                self._broken(info, f"failed to import {ep.value}: {type(exc).__name__}: {exc}")
                continue
            self._add(module, info)

    def register(self, plugin: Any, name: str | None = None, distribution: str = "(registered in code)", version: str = "") -> PluginInfo:
        """Register a plugin module or object directly (scripts, tests, notebooks)."""
        self.load()
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        info = PluginInfo(name, distribution, version)
        self._add(plugin, info)
        return info

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name`` and everything it provided."""
        info = self.plugins.pop(name, None)
        if info is None:
            return
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        for table in self.entries.values():
            for key in [k for k, (_, owner) in table.items() if owner is info]:
                del table[key]

    def _broken(self, info: PluginInfo, error: str) -> None:
        info.error = error
        self.plugins[info.name] = info
        warnings.warn(f"sciode plugin {info.name!r} ({info.distribution} {info.version}) skipped: {error}",
                      PluginWarning, stacklevel=3)

    def _add(self, plugin: Any, info: PluginInfo) -> None:
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:  # noqa: BLE001 - pluggy validates hook signatures here
            self._broken(info, f"invalid hook implementation: {exc}")
            return
        found: dict[str, list[type]] = {}
        try:
            for kind, hook in KINDS.items():
                impls = [i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin_name == info.name]
                for impl in impls:
                    result = impl.function()
                    found[kind] = self._validate(kind, result, hook)
        except Exception as exc:  # noqa: BLE001 - a raising or malformed hook breaks only this plugin
            self.pm.unregister(name=info.name)
            self._broken(info, f"{type(exc).__name__}: {exc}")
            return
        for kind, classes in found.items():
            for cls in classes:
                if cls.name in self.entries[kind]:
                    _, other = self.entries[kind][cls.name]
                    self.pm.unregister(name=info.name)
                    raise PluginError(
                        f"{kind} name {cls.name!r} is claimed by two plugins: {other.name!r} "
                        f"(distribution {other.distribution}) and {info.name!r} (distribution {info.distribution}); "
                        "uninstall one or rename its class's .name"
                    )
        for kind, classes in found.items():
            for cls in classes:
                self.entries[kind][cls.name] = (cls, info)
            info.provides[kind] = [c.name for c in classes]
        self.plugins[info.name] = info

    @staticmethod
    def _validate(kind: str, result: Any, hook: str) -> list[type]:
        if not isinstance(result, (list, tuple)):
            raise PluginError(f"{hook}() must return a list of classes; got {type(result).__name__}")
        base = _base_class(kind)
        names = set()
        for cls in result:
            if not inspect.isclass(cls) or not issubclass(cls, base):
                raise PluginError(f"{hook}() returned {cls!r}, which is not a subclass of {base.__module__}.{base.__name__}")
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"{hook}() returned {cls.__name__} without a non-empty string .name")
            if name in names:
                raise PluginError(f"{hook}() returned two classes named {name!r}")
            names.add(name)
        return list(result)

    # -- lookup -------------------------------------------------------------------------
    def table(self, kind: str) -> dict[str, type]:
        self.load()
        return {name: cls for name, (cls, _) in sorted(self.entries[kind].items())}

    def get(self, kind: str, name: str, argument: str) -> type:
        table = self.table(kind)
        if name not in table:
            known = ", ".join(table) or "(none installed)"
            raise ProblemError(f"unknown {kind} {name!r} for {argument}; registered {kind} names: {known}")
        return table[name]


registry = Registry()


def register_plugin(plugin: Any, name: str | None = None) -> PluginInfo:
    """Register a plugin (a module or object with @hookimpl functions) without an entry point."""
    return registry.register(plugin, name)


def solvers() -> dict[str, type]:
    """Registered solvers: name -> class."""
    return registry.table("solver")


def sensitivities() -> dict[str, type]:
    """Registered sensitivity algorithms: name -> class."""
    return registry.table("sensitivity")


def models() -> dict[str, type]:
    """Registered model families: name -> class."""
    return registry.table("model")


def lookup(kind: str, name: str, argument: str | None = None) -> type:
    """The class registered as ``name`` for ``kind`` ("solver", "sensitivity", "model")."""
    return registry.get(kind, name, argument or kind)
