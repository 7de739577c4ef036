"""The plugin registry: discovery through entry points, lookup by name.

Built-in plugins are found exactly like third-party ones, through the
``sciode.plugins`` entry-point group. A plugin that fails to import, returns
something malformed or breaks the plugin contract (``sciode/contract.py``) is
skipped with a warning (and listed by ``sciode plugins``). A name that two
plugins claim belongs to neither: looking it up raises a PluginError naming both
distributions, every time and whatever the discovery order, while every other
name of both plugins keeps working.
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

__all__ = ["PluginInfo", "PluginWarning", "Registry", "registry", "register_plugin", "solvers", "sensitivities",
           "models", "lookup"]

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

    def describe(self) -> str:
        version = f" {self.version}" if self.version else ""
        return f"plugin {self.name!r} (distribution {self.distribution}{version})"


def _base_class(kind: str) -> type:
    if kind == "solver":
        from .solver import Solver

        return Solver
    if kind == "sensitivity":
        from .sensitivity import Sensitivity

        return Sensitivity
    import torch

    return torch.nn.Module


Claim = tuple[type, PluginInfo]


class Registry:
    """Loads plugins lazily on first lookup; holds, per kind, every claim on every name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.claims: dict[str, dict[str, list[Claim]]] = {k: {} for k in KINDS}
        self.trials: dict[type, str | None] = {}  # solver class -> contract fault of its trial step (None: fine)
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
            found = self._collect(module, info)
            if found is not None:
                self._claim(info, found)

    def register(self, plugin: Any, name: str | None = None, distribution: str = "(registered in code)",
                 version: str = "") -> PluginInfo:
        """Register a plugin module or object directly (scripts, tests, notebooks).

        A name already taken raises PluginError and leaves the registry as it was.
        """
        self.load()
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        info = PluginInfo(name, distribution, version)
        found = self._collect(plugin, info)
        if found is None:
            return info
        for kind, classes in found.items():
            for cls in classes:
                if cls.name in self.claims[kind]:
                    self.pm.unregister(name=info.name)
                    other = self.claims[kind][cls.name][0][1]
                    raise PluginError(f"{kind} name {cls.name!r} is claimed by two plugins: {other.describe()} and "
                                      f"{info.describe()}; uninstall one or rename its class's .name")
        self._claim(info, found)
        return info

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name`` and everything it provided."""
        info = self.plugins.pop(name, None)
        if info is None:
            return
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        for table in self.claims.values():
            for key in list(table):
                table[key] = [claim for claim in table[key] if claim[1] is not info]
                if not table[key]:
                    del table[key]

    def _broken(self, info: PluginInfo, error: str) -> None:
        info.error = error
        self.plugins[info.name] = info
        warnings.warn(f"sciode {info.describe()} skipped: {error}", PluginWarning, stacklevel=3)

    def _collect(self, plugin: Any, info: PluginInfo) -> dict[str, list[type]] | None:
        """Register with pluggy and call the plugin's hooks; None (and a warning) when it is broken."""
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:  # noqa: BLE001 - pluggy validates hook signatures here
            self._broken(info, f"invalid hook implementation: {exc}")
            return None
        found: dict[str, list[type]] = {}
        try:
            for kind, hook in KINDS.items():
                for impl in getattr(self.pm.hook, hook).get_hookimpls():
                    if impl.plugin_name == info.name:
                        found[kind] = self._validate(kind, impl.function(), hook)
        except Exception as exc:  # noqa: BLE001 - a raising or malformed hook breaks only this plugin
            self.pm.unregister(name=info.name)
            self._broken(info, f"{type(exc).__name__}: {exc}")
            return None
        return found

    def _claim(self, info: PluginInfo, found: dict[str, list[type]]) -> None:
        for kind, classes in found.items():
            for cls in classes:
                self.claims[kind].setdefault(cls.name, []).append((cls, info))
            info.provides[kind] = [c.name for c in classes]
        self.plugins[info.name] = info

    @staticmethod
    def _validate(kind: str, result: Any, hook: str) -> list[type]:
        from .contract import declared_faults

        if not isinstance(result, (list, tuple)):
            raise PluginError(f"{hook}() must return a list of classes; got {type(result).__name__}")
        base = _base_class(kind)
        names = set()
        for cls in result:
            if not inspect.isclass(cls) or not issubclass(cls, base):
                raise PluginError(f"{hook}() returned {cls!r}, which is not a subclass of "
                                  f"{base.__module__}.{base.__name__}")
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"{hook}() returned {cls.__name__} without a non-empty string .name")
            if name in names:
                raise PluginError(f"{hook}() returned two classes named {name!r}")
            faults = declared_faults(kind, cls)
            if faults:
                raise PluginError(f"{kind} {name!r} ({cls.__module__}.{cls.__qualname__}) breaks the {kind} "
                                  f"contract: {'; '.join(faults)}")
            names.add(name)
        return list(result)

    # -- lookup -------------------------------------------------------------------------
    def conflicts(self, kind: str) -> dict[str, list[PluginInfo]]:
        """Names that more than one plugin claims, with the claimants."""
        self.load()
        return {name: [info for _, info in claims] for name, claims in sorted(self.claims[kind].items())
                if len(claims) > 1}

    def owned(self, kind: str) -> dict[str, Claim]:
        """name -> (class, plugin) for every name exactly one plugin claims."""
        self.load()
        return {name: claims[0] for name, claims in sorted(self.claims[kind].items()) if len(claims) == 1}

    def table(self, kind: str) -> dict[str, type]:
        """name -> class for every name exactly one plugin claims."""
        return {name: cls for name, (cls, _) in self.owned(kind).items()}

    def get(self, kind: str, name: str, argument: str) -> type:
        self.load()
        claims = self.claims[kind].get(name, [])
        if len(claims) > 1:
            owners = " and ".join(info.describe() for _, info in claims)
            raise PluginError(f"{kind} name {name!r} (for {argument}) is claimed by {len(claims)} plugins: {owners}; "
                              "sciode will not pick one: uninstall one of them or rename its class's .name")
        if not claims:
            known = ", ".join(self.table(kind)) or "(none installed)"
            raise ProblemError(f"unknown {kind} {name!r} for {argument}; registered {kind} names: {known}")
        cls, info = claims[0]
        if kind == "solver":
            self._trial(cls, info)
        return cls

    def _trial(self, cls: type, info: PluginInfo) -> None:
        """One trial step per solver class, on its first lookup (see ``sciode/contract.py``)."""
        from .contract import trial_step_fault

        if cls not in self.trials:
            self.trials[cls] = trial_step_fault(cls)
        fault = self.trials[cls]
        if fault is not None:
            raise PluginError(f"solver {cls.name!r} of {info.describe()} breaks the solver contract: {fault}")


registry = Registry()


def register_plugin(plugin: Any, name: str | None = None) -> PluginInfo:
    """Register a plugin (a module or object with @hookimpl functions) without an entry point."""
    return registry.register(plugin, name)


def solvers() -> dict[str, type]:
    """Registered solvers: name -> class (names two plugins claim are left out; see ``sciode plugins``)."""
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
