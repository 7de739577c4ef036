"""The preflight: the first member solved alone fixes the output layout and the resume key.

The layout (time grid, state names, dtype) is what every chunk's output must match;
the digest covers what the script actually produced for that member (``u0``, ``p``,
``tspan``, one evaluation of ``f``, the layout), so a resumed run notices a script
that reads an environment variable or a closure value that has changed, even when
the script's text has not.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..errors import ProblemError
from ..problems import parameter_tensors
from .chunk import MEMBER_STATS, build_problem, single_thread, solve_problem
from .errors import RunError
from .inputs import Inputs
from .options import BatchOptions
from .script import ProblemScript

__all__ = ["Template", "preflight", "PREFLIGHT_MEMBERS"]

#: Members tried, in order, until one can be solved alone (a first member may just be a bad one).
PREFLIGHT_MEMBERS = 5


@dataclasses.dataclass(frozen=True)
class Template:
    """What every chunk's output must look like, and a digest of the preflight member's Problem."""

    time: np.ndarray
    states: tuple[str, ...]
    dtype: str
    member_stats: bool
    digest: str = ""

    def mismatch(self, ds: xr.Dataset, members: int) -> str | None:
        """Why ``ds`` (a chunk's output) does not fit this template, or None when it does."""
        if ds.sizes.get("member") != members:
            return f"it holds {ds.sizes.get('member')} members, expected {members}"
        if "time" not in ds.coords or not np.array_equal(ds["time"].values, self.time):
            return "it was computed on another time grid"
        if "state" not in ds.coords or tuple(map(str, ds["state"].values)) != self.states:
            return f"its states are {list(map(str, ds['state'].values)) if 'state' in ds.coords else []}, " \
                   f"expected {list(self.states)}"
        if "u" not in ds or str(ds["u"].dtype) != self.dtype:
            return f"u has dtype {ds['u'].dtype if 'u' in ds else None}, expected {self.dtype}"
        if ds["u"].dims != ("member", "time", "state"):
            return f"u is on dims {ds['u'].dims}"
        if self.member_stats != all(k in ds for k in MEMBER_STATS):
            return "its per-member statistics differ"
        return None


def _digest(prob: Any, time: np.ndarray, states: tuple[str, ...], dtype: str) -> str:
    """A hash of what the script returned for one member: u0, p, tspan, f(u0, p, t0) and the output layout."""
    h = hashlib.sha256()

    def add(x: torch.Tensor) -> None:
        x = x.detach().cpu().contiguous()
        h.update(f"{x.dtype}{tuple(x.shape)}".encode())
        h.update(x.numpy().tobytes())

    add(prob.u0)
    for tensor in parameter_tensors(prob):
        add(tensor)
    t0 = torch.tensor(prob.tspan[0], dtype=prob.u0.dtype)
    with torch.no_grad():
        add(prob.f(prob.u0, prob.p, t0))
    h.update(repr((tuple(prob.tspan), states, dtype)).encode())
    h.update(np.ascontiguousarray(time).tobytes())
    return h.hexdigest()


def preflight(script: ProblemScript, inputs: Inputs, options: BatchOptions) -> tuple[Template, xr.Dataset]:
    """Solve the first member alone: checks the script and options end to end and fixes the output layout.

    Errors of the script are prefixed with its name; errors of an option name the option.
    """
    fn = script.load()
    errors = []
    for i in range(min(PREFLIGHT_MEMBERS, inputs.size)):
        one = inputs.chunk(i, i + 1)
        try:
            with single_thread():
                prob = build_problem(fn, one, inputs.shared, 1)
        except RunError as exc:
            raise RunError(f"script {script.name}: {exc}") from exc
        except ProblemError as exc:
            raise ProblemError(f"script {script.name}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - try the next member: this one may just be a bad member
            errors.append(f"member {inputs.members[i]}: {type(exc).__name__}: {exc}")
            continue
        options.check_against(prob.tspan)
        try:
            with single_thread():
                sol = solve_problem(prob, options)
        except ProblemError as exc:
            raise ProblemError(f"script {script.name}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001
            errors.append(f"member {inputs.members[i]}: {type(exc).__name__}: {exc}")
            continue
        time = sol.t.detach().cpu().numpy()
        states, dtype = tuple(sol.problem.names()), str(sol.u.detach().cpu().numpy().dtype)
        template = Template(time, states, dtype, bool(sol.member_stats), _digest(prob, time, states, dtype))
        return template, sol.to_xarray()
    raise ProblemError(f"script {script.name}: problem(inputs) raised for the first {len(errors)} members; "
                       + "; ".join(errors))
