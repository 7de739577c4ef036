"""The problem script of a batch run: its source text (so workers elsewhere need no copy of the file) or a callable.

``sciode run`` executes the script, in the client and on every worker, as any Python
program would: run only scripts you trust. Its folder is put on ``sys.path`` so a
script can import a module that sits beside it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import ProblemError

__all__ = ["ProblemScript"]


@dataclasses.dataclass(frozen=True)
class ProblemScript:
    """A problem script (source text and folder) or a ``problem`` function."""

    name: str
    source: str | None = None
    function: Callable[..., Any] | None = None
    directory: str | None = None

    @classmethod
    def from_user(cls, script: Any) -> ProblemScript:
        if callable(script) and not isinstance(script, (str, os.PathLike)):
            return cls(getattr(script, "__qualname__", type(script).__name__), function=script)
        if not isinstance(script, (str, os.PathLike)):
            raise ProblemError(f"script: expected a path to a Python file or a callable; got {type(script).__name__}")
        path = Path(script)
        if not path.is_file():
            raise ProblemError(f"script: {str(path)!r} does not exist")
        ref = cls(path.name, source=path.read_text(), directory=str(path.resolve().parent))
        ref.load()  # syntax errors and a missing problem() surface now
        return ref

    def fingerprint(self) -> str:
        """A hash of the script's text (a callable: of its module, name and source)."""
        if self.source is not None:
            return hashlib.sha256(self.source.encode()).hexdigest()
        fn = self.function
        try:
            text = inspect.getsource(fn)  # type: ignore[arg-type]
        except (OSError, TypeError):
            text = ""
        return hashlib.sha256(f"{getattr(fn, '__module__', '')}:{self.name}:{text}".encode()).hexdigest()

    def load(self) -> Callable[[dict[str, torch.Tensor]], Any]:
        """The ``problem`` function (the script is executed once per process)."""
        if self.function is not None:
            return self.function
        if self.directory is not None and os.path.isdir(self.directory) and self.directory not in sys.path:
            sys.path.insert(0, self.directory)
        key = f"sciode_problem_script_{self.fingerprint()[:16]}"
        module = sys.modules.get(key)
        if module is None:
            module = self._execute(key)
        fn = getattr(module, "problem", None)
        if not callable(fn):
            raise ProblemError(f"script {self.name}: defines no function problem(inputs) -> sciode.ODEProblem")
        return fn

    def _execute(self, key: str) -> types.ModuleType:
        module = types.ModuleType(key)
        module.__file__ = os.path.join(self.directory, self.name) if self.directory else self.name
        try:
            code = compile(self.source, self.name, "exec")  # type: ignore[arg-type]
        except SyntaxError as exc:
            raise ProblemError(f"script {self.name}: syntax error: {exc}") from exc
        sys.modules[key] = module
        try:
            exec(code, module.__dict__)
        except SystemExit as exc:
            del sys.modules[key]
            raise ProblemError(f"script {self.name}: called sys.exit({exc.code!r}) while being loaded; "
                               "a problem script defines problem(inputs) and returns") from exc
        except Exception as exc:
            del sys.modules[key]
            raise ProblemError(f"script {self.name}: raised while being loaded: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            del sys.modules[key]
            raise
        return module
