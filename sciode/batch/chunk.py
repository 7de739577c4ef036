"""Solve one chunk of members as one batched tensor; fall back to member by member when the script raises.

``solve_chunk`` is the unit of work a dask worker (or the local loop) runs: plain
NumPy in, a small xarray.Dataset out, no shared state, so results do not depend
on where a chunk ran. Torch runs single-threaded inside it, which keeps
reductions in the same order everywhere (bit-for-bit equal results).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import xarray as xr

from ..errors import ProblemError
from ..io.xarray import retcode_attrs
from ..problems import ODEProblem
from ..solution import ReturnCode
from ..solve import solve
from .errors import RunError
from .inputs import tensors
from .options import BatchOptions
from .script import ProblemScript

if TYPE_CHECKING:
    from .template import Template

__all__ = ["MEMBER_STATS", "build_problem", "failed_members", "solve_chunk", "solve_problem", "single_thread"]

MEMBER_STATS = ("naccepted", "nrejected")
#: what a member gets whose solve kills the worker process (on a dask cluster), every time it is tried
WORKER_DIED = ("the worker process died while solving this member (a crash, os._exit or the memory limit "
               "in the script or a library it calls); it was retried alone")


def _exit_error(exc: SystemExit, where: str) -> RunError:
    return RunError(f"{where} called sys.exit({exc.code!r}); a problem script must return a Problem or raise an "
                    "exception, not exit the process")


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_problem(fn: Any, per_member: Mapping[str, np.ndarray], shared: Mapping[str, np.ndarray],
                  members: int) -> ODEProblem:
    """Call the script's ``problem(inputs)`` and check what it returned."""
    try:
        prob = fn(tensors(per_member, shared))
    except SystemExit as exc:
        raise _exit_error(exc, "problem(inputs)") from None
    if not isinstance(prob, ODEProblem):
        raise ProblemError(f"problem(inputs) must return a sciode.ODEProblem; it returned {type(prob).__name__}")
    if prob.u0.ndim != 2 or prob.u0.shape[0] != members:
        raise ProblemError(f"problem(inputs) must return u0 of shape (members, n) = ({members}, n) for a chunk of "
                           f"{members} members; got {tuple(prob.u0.shape)}")
    return prob


def solve_problem(prob: ODEProblem, options: BatchOptions) -> Any:
    """The Solution of one chunk's Problem (raises whatever the script's vector field raises)."""
    try:
        return solve(prob, options.solver, **options.solve_kwargs())
    except SystemExit as exc:
        raise _exit_error(exc, "the vector field f") from None


def _solve_members(fn: Any, per_member: Mapping[str, np.ndarray], shared: Mapping[str, np.ndarray],
                   options: BatchOptions) -> Any:
    members = len(next(iter(per_member.values())))
    return solve_problem(build_problem(fn, per_member, shared, members), options)


def _dataset(u: np.ndarray, codes: np.ndarray, messages: list[str], stats: Mapping[str, int],
             member_stats: Mapping[str, np.ndarray], template: Template) -> xr.Dataset:
    data: dict[str, Any] = {
        "u": (("member", "time", "state"), u),
        "retcode": (("member",), codes.astype(np.int8), retcode_attrs()),
        "message": (("member",), np.array(messages, dtype=str)),
    }
    for key in MEMBER_STATS if template.member_stats else ():
        data[key] = (("member",), member_stats[key].astype(np.int64))
    attrs = {f"stats_{k}": int(v) for k, v in stats.items()}
    return xr.Dataset(data, coords={"time": template.time, "state": list(template.states)}, attrs=attrs)


def _from_solution(sol: Any, template: Template) -> xr.Dataset:
    t = sol.t.detach().cpu().numpy()
    if t.shape != template.time.shape or not np.array_equal(t, template.time):
        raise RunError("every member must share one time grid: problem(inputs) returned a different tspan "
                       f"(saved times {t[0]:g}..{t[-1]:g}, expected {template.time[0]:g}..{template.time[-1]:g}); "
                       "keep tspan the same for all members")
    u = sol.u.detach().cpu().numpy().transpose(1, 0, 2).copy()
    u[~np.isfinite(u)] = np.nan
    codes = sol.retcodes.detach().cpu().numpy().reshape(-1)
    finite = np.isfinite(u).all(-1)  # (members, time)
    messages = ["" if c == ReturnCode.SUCCESS else _member_message(ReturnCode(int(c)), template.time, finite[i])
                for i, c in enumerate(codes)]
    stats = {k: np.asarray(v.detach().cpu().numpy()).reshape(-1) for k, v in sol.member_stats.items()}
    if template.member_stats:
        stats = {k: stats.get(k, np.zeros(codes.shape, dtype=np.int64)) for k in MEMBER_STATS}
    return _dataset(u, codes, messages, sol.stats, stats, template)


REASONS = {
    ReturnCode.MAX_STEPS: "max_steps iterations were used before reaching t1",
    ReturnCode.DT_TOO_SMALL: "the step size fell below the resolution of t",
    ReturnCode.UNSTABLE: "the state became non-finite (NaN or inf)",
    ReturnCode.FAILURE: "the solver could not complete a step",
}


def _member_message(code: ReturnCode, time: np.ndarray, finite: np.ndarray) -> str:
    """One member's own account of its failure (the Solution's message is about the first failure of the chunk)."""
    reached = np.flatnonzero(finite)
    last = f"; last saved value at t = {time[reached[-1]]:.6g}" if reached.size else "; no saved value"
    return f"{code.name}: {REASONS.get(code, 'the solve stopped early')}{last}"


def failed_members(members: int, message: str, template: Template) -> xr.Dataset:
    shape = (members, template.time.shape[0], len(template.states))
    u = np.full(shape, np.nan, dtype=template.dtype)
    codes = np.full(members, ReturnCode.FAILURE, dtype=np.int8)
    zeros = {k: np.zeros(members, dtype=np.int64) for k in MEMBER_STATS}
    return _dataset(u, codes, [message] * members, {}, zeros, template)


def join_members(parts: list[xr.Dataset]) -> xr.Dataset:
    """Datasets of consecutive members joined into one: variable attributes kept, ``stats_*`` totals summed."""
    out = xr.concat(parts, dim="member", data_vars="all", coords="minimal", compat="override",
                    combine_attrs="override")
    total: dict[str, int] = {}
    for part in parts:
        for key, value in part.attrs.items():
            total[key] = total.get(key, 0) + int(value)
    out.attrs = total
    return out


def solve_chunk(script: ProblemScript, per_member: Mapping[str, np.ndarray], shared: Mapping[str, np.ndarray],
                options: BatchOptions, template: Template) -> xr.Dataset:
    """Solve one chunk; a member that fails to solve keeps its retcode, NaNs and a message.

    If the script raises for the chunk as a whole, each member is re-run alone so
    only the members that raise are recorded as FAILURE with the exception text.
    A fault of the run itself (RunError: a missing input, a different time grid)
    and KeyboardInterrupt are not swallowed.
    """
    members = len(next(iter(per_member.values())))
    with single_thread():
        fn = script.load()
        try:
            return _from_solution(_solve_members(fn, per_member, shared, options), template)
        except RunError:
            raise
        except Exception:  # noqa: BLE001 - a user's script may raise anything; isolate the members at fault
            pass
        parts = []
        for i in range(members):
            one = {k: v[i:i + 1] for k, v in per_member.items()}
            try:
                parts.append(_from_solution(_solve_members(fn, one, shared, options), template))
            except RunError:
                raise
            except Exception as exc:  # noqa: BLE001
                parts.append(failed_members(1, f"script error: {type(exc).__name__}: {exc}", template))
        return join_members(parts)
