"""``compile=True``: each attempted step (the solver's step and the clock's error measure) as one graph.

The graph is ``torch.compile`` (inductor) of one module-level function, so every solve in the
process shares its cache: a repeated solve with the same solver, shapes, dtypes, tolerances
and ``f`` reuses the compiled graph, and nothing recompiles from step to step because

* the time and the step come in as tensors (0-d for a shared clock), never as Python floats,
  which the compiler would bake in as constants;
* the solver's constants are fixed for the whole solve (baked in once), and the tolerances of the
  error's scale come in as 0-d tensors (``clock.tolerances``), so solves at other rtols and atols
  share the graphs (a solver that reads ``rhs.rtol`` itself, as a Newton iteration's test does,
  bakes that in);
* the work counters (``nfe``, ``njac``, ``nlinsolve``) that solvers increment are 0-d tensors
  on a separate ``GraphRHS`` during the graph (a Python int changed inside a graph is a guard:
  it would recompile every step), handed back to the loop's RHS when the solve ends.

With a shared clock, once a solve has taken ``BLOCK_AFTER`` steps (or solves of the same
solver, f, shapes and clock have taken ``BLOCK_AFTER_SOLVES`` in this process, as a training
loop's short solves do), its plain steps run in
*blocks*: ``BLOCK_STEPS`` attempts in one graph, each with the clock's accept/reject, PI
controller and commit as tensor work (``SharedClock.block_step``), and one host transfer per
block for the loop's bookkeeping. A compiled call costs tens of microseconds of dispatch
(dynamo's guards, AOTAutograd's wrappers, output allocation) whatever it computes, so the
block pays it once for eight steps. An attempt that is not plain (a non-finite state, a step
collapsing to DT_TOO_SMALL) halts the block before it takes effect, and the ordinary path
repeats it. Within BLOCK_STEPS steps of the current size from t1 the steps are ordinary ones
(a block's rows after it reached t1 would be computed and masked out; the f evaluations of
such rows are not counted). Events, tstops, per-step hooks (the checkpointed replay) and frozen members keep
to one compiled step per iteration.

The loop's evaluations of f outside a step (f(t0, u0) and the initial step's probe at the start,
f after a tstop) are one small graph each call (``evaluate``) once the key's step has compiled:
eager, they cost a short solve (a training iteration's, an adjoint's backward solve) as much as
one or two compiled steps.

Gradients flow through the graph (AOTAutograd) for ``backprop`` and the checkpointed replay.
With ``mode="reduce-overhead"`` (the default on CUDA) a step is one CUDA-graph launch; its
outputs are copied out, since the next launch overwrites them. Where the step cannot be one
graph (a graph break: a host sync or data-dependent Python branch in ``f`` or in the solver,
e.g. a Newton iteration's convergence test), the solve continues eagerly after one warning
that says why: never a different answer than ``compile=False``.
"""
from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import torch
from torch._dynamo.utils import counters
from torch.utils import _pytree

from ..retcode import ReturnCode
from ..solver import RHS, Solver, StepResult
from .attempt import Attempt, CompileWarning
from .records import join_tree
from .state import LoopState

__all__ = ["CompiledAttempt", "GraphRHS"]

#: how many (solver, clock, shape, dtype, grad mode) variants one process may compile
RECOMPILE_LIMIT = 64

#: new graphs one solve may compile (its step, block and evaluations of f, grad modes, a frozen member) before the
#: loop decides that something in f or the solver changes on every call and recompiles each step (e.g. an int
#: counter on an nn.Module)
SOLVE_GRAPHS = 8

#: plain steps of a shared clock per compiled block (one graph call and one host sync for all of them)
BLOCK_STEPS = 8

#: a solve starts taking blocks after this many steps (a block compiles for ~8x as long as one step, which a
#: short solve would not earn back), or at once where this process has already compiled that block
BLOCK_AFTER = 32
#: ... or once solves of its block key have taken this many steps in this process: a training loop's
#: repeated short solves earn the block back, a handful of short solves does not pay for it
BLOCK_AFTER_SOLVES = 256

#: (solver class, clock class, f, state shape, dtype, mode) whose block has been compiled in this process
_warm_blocks: set[tuple[Any, ...]] = set()
#: (solver class, clock class, f, state shape, dtype, mode) whose step has compiled in this process: solves of
#: these evaluate f outside a step compiled too (the first solve does it eagerly, and a solver whose step
#: cannot be one graph never pays for compiling f alone)
_compiled_steps: set[tuple[Any, ...]] = set()
#: steps taken one graph each by earlier solves of a block key that is not warm yet
_steps_before_blocks: dict[tuple[Any, ...], int] = {}


class GraphRHS(RHS):
    """The problem's RHS as a compiled step calls it: counters are 0-d int64 tensors."""

    def __post_init__(self) -> None:
        super().__post_init__()
        device = self.problem.u0.device
        self.nfe, self.njac, self.nlinsolve = (torch.zeros((), dtype=torch.int64, device=device) for _ in range(3))


def _graph(clock: Any, solver: Solver, rhs: GraphRHS, st: LoopState, t: torch.Tensor,
           stage_times: tuple[torch.Tensor, ...] | None, step: torch.Tensor) -> tuple[StepResult, Any]:
    """What one compiled call computes: the step and its measure, as a pure tensor function."""
    rhs.stage_times = stage_times
    res = solver.step(rhs, t, st.u, step, st.solver_state)
    return res, clock.measure_tensors(res, st)


def _evaluate(rhs: GraphRHS, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """What one compiled evaluation computes: f at one point outside a step (``CompiledAttempt.evaluate``)."""
    return rhs(t, u)


def _block(clock: Any, solver: Solver, rhs: GraphRHS, count: int, fractions: torch.Tensor,
           times: tuple[torch.Tensor, ...], u: torch.Tensor, state: Any) -> tuple[Any, ...]:
    """What one compiled block computes: ``count`` plain steps of a shared clock (``SharedClock.block_step``).

    ``times`` is (t, dt, err_prev, t1, accepted_dt). Returns the new times, u and state, the
    stacked records of the attempts (rows that were not accepted have h = 0), and one float
    vector for the host: [attempts, accepted, done, halted, t, dt, err_prev, accepted_dt, then per row
    whether it was accepted, then per row its end time].
    """
    live = torch.ones((), dtype=torch.bool, device=u.device)
    *clock_times, accepted_dt = times
    clock_times = tuple(clock_times)
    rows, flags, ends = [], [], []
    attempts = accepted_count = torch.zeros((), dtype=clock_times[0].dtype, device=u.device)
    done = halted = ~live
    for _ in range(count):
        clock_times, u, state, (accepted, now_done, now_halted, counted), record = clock.block_step(
            solver, rhs, fractions, clock_times, u, state, live)
        accepted_dt = torch.where(accepted, clock_times[1], accepted_dt)
        attempts = attempts + counted
        accepted_count = accepted_count + accepted
        done, halted = done | now_done, halted | now_halted
        live = ~(done | halted)
        rows.append(record)
        flags.append(accepted)
        ends.append(clock_times[0])
    rhs.stage_times = None  # not an output of the graph
    dtype = clock_times[0].dtype
    t, dt, err_prev, _ = clock_times
    info = torch.stack([attempts, accepted_count, done.to(dtype), halted.to(dtype), t, dt, err_prev, accepted_dt,
                        *(f.to(dtype) for f in flags), *ends])
    return (*clock_times, accepted_dt), u, state, tuple(join_tree(list(col)) for col in zip(*rows)), info


_compiled: dict[tuple[str, str], Any] = {}


class _ShimFallbackNotes(logging.Filter):
    """Drops inductor's warning that an op has no C shim for the C++ wrapper and runs through its proxy
    executor (LU factor and solve do): harmless, and logged once per such op while a block compiles,
    dozens of lines for a Rosenbrock block."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "missing a c-shim implementation" not in str(record.msg)


_INDUCTOR_IR_LOG = logging.getLogger("torch._inductor.ir")
_SHIM_NOTES = _ShimFallbackNotes()


def _compiled_graph(mode: str, what: str = "step") -> Any:
    """The compiled step (``what="step"``), evaluation of f (``"evaluate"``) or block. A block in the
    default mode gets inductor's C++ wrapper: its Python wrapper spends more time slicing and allocating
    the block's ~200 buffers than the kernel computes (0.13 -> 0.09 ms per Van der Pol step), at a
    longer first compile."""
    if (mode, what) not in _compiled:
        limit = torch._dynamo.config.recompile_limit
        torch._dynamo.config.recompile_limit = max(limit, RECOMPILE_LIMIT)
        if what in ("step", "evaluate"):
            function = _graph if what == "step" else _evaluate
            _compiled[mode, what] = torch.compile(function, fullgraph=True, dynamic=False, mode=mode)
        elif mode == "default":
            _compiled[mode, what] = torch.compile(_block, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})
        else:
            _compiled[mode, what] = torch.compile(_block, fullgraph=True, dynamic=False, mode=mode)
    return _compiled[mode, what]


#: what torch.compile raises when a function cannot become one graph (graph break, compiler failure, too many variants)
_CANNOT_COMPILE = (torch._dynamo.exc.TorchDynamoException, torch._dynamo.exc.FailOnRecompileLimitHit)


#: (solver class, clock class, f) that failed to compile in this process: later solves skip the attempt
_breaks: dict[tuple[Any, ...], str] = {}


def _reason(exc: BaseException) -> str:
    """The compiler's first line, and the last user-code location it names (where the graph breaks)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    text = text if len(text) <= 240 else text[:237] + "..."
    where = [line for line in lines if line.startswith('File "')]
    return f"{text}; at {where[-1]}" if where else text


def _copied(out: Any) -> Any:
    """A CUDA-graph replay's outputs, copied out: the next replay overwrites them."""
    return _pytree.tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, out)


def _graphs() -> int:
    """How many graphs dynamo has compiled in this process."""
    return counters["stats"]["unique_graphs"]


def _key(clock: Any, solver: Solver, rhs: RHS) -> tuple[Any, ...]:
    f = rhs.problem.f
    return type(solver), type(clock), getattr(f, "__code__", None) or type(f)


class CompiledAttempt(Attempt):
    """The attempt as one compiled graph; eager (after one CompileWarning) if it cannot be compiled."""

    def __init__(self, clock: Any, solver: Solver, rhs: RHS, mode: str) -> None:
        super().__init__(clock, solver, rhs)
        self.mode = mode
        self.graph = _compiled_graph(mode)
        self.evaluate_graph = _compiled_graph(mode, "evaluate")
        self.evaluations = 0
        self.graph_rhs = GraphRHS(rhs.problem, rhs.rtol, rhs.atol, rhs.norm)
        self.cudagraphs = mode == "reduce-overhead" and rhs.problem.u0.device.type == "cuda"
        self.key = _key(clock, solver, rhs)
        self.eager = self.key in _breaks
        self._steps: dict[float, torch.Tensor] = {}
        self.block_graph = _compiled_graph(mode, "block")
        self.block_rhs = GraphRHS(rhs.problem, rhs.rtol, rhs.atol, rhs.norm)
        self.fractions = torch.tensor((0.0, *solver.stage_fractions), dtype=clock.time_dtype, device=clock.device)
        self.block_times: tuple[torch.Tensor, ...] | None = None  # the clock as tensors after the last block
        self.step_calls = self.block_calls = self.block_attempts = 0
        self.halted = False  # the last block stopped before an attempt that the ordinary path must take
        u0 = rhs.problem.u0
        self.block_key = (*self.key, tuple(u0.shape), u0.dtype, mode)
        clock.tolerances = tuple(x if isinstance(x, torch.Tensor) else
                                 torch.tensor(x, dtype=clock.time_dtype, device=clock.device) for x in clock.tolerances)
        self.graphs_at_start = _graphs()

    def _step_tensor(self, step: Any) -> torch.Tensor:
        """A shared clock's float step as a 0-d tensor (cached: a fixed grid has one or two sizes)."""
        if isinstance(step, torch.Tensor):
            return step
        if len(self._steps) > 4:
            self._steps.clear()
        if step not in self._steps:
            self._steps[step] = torch.tensor(step, dtype=self.clock.time_dtype, device=self.clock.device)
        return self._steps[step]

    def _count_compile(self, start: float) -> None:
        """Add the first call of a graph in this solve (tracing and compiling included) to ``compile_time``."""
        self.compile_time = (self.compile_time or 0.0) + time.perf_counter() - start

    def _recompiles(self) -> bool:
        """Whether this solve has compiled more graphs than it can need: then it goes on eagerly (one warning)."""
        if _graphs() - self.graphs_at_start <= SOLVE_GRAPHS:
            return False
        self._cannot_compile(f"every step compiled a new graph ({_graphs() - self.graphs_at_start} in this solve): "
                             "f or the solver changes a Python value on each call, such as an int counter on an "
                             "nn.Module (TORCH_LOGS=recompiles names it)")
        return True

    def _cannot_compile(self, exc: BaseException | str) -> None:
        self.eager = True
        _breaks[self.key] = reason = exc if isinstance(exc, str) else _reason(exc)
        name = getattr(self.solver, "name", type(self.solver).__name__)
        warnings.warn(f"compile=True: the step of solver {name!r} on this f cannot be compiled as one graph "
                      f"({reason}); it runs eagerly (in this process, for every solve of this solver and f)",
                      CompileWarning, stacklevel=5)

    def block(self, st: LoopState, saver: Any, budget: int) -> bool:
        """Take up to BLOCK_STEPS plain steps of a shared clock in one compiled call and one host sync."""
        clock = self.clock
        if (self.halted or self.eager or budget < BLOCK_STEPS or not clock.blockable(st)
                or not self.solver.compiled_blocks):
            self.halted = False
            return False
        key = self.block_key
        if (key not in _warm_blocks and self.step_calls < BLOCK_AFTER
                and self.step_calls + _steps_before_blocks.get(key, 0) < BLOCK_AFTER_SOLVES):
            return False
        if (clock.t1 - st.t) * clock.direction < BLOCK_STEPS * abs(st.dt):
            return False  # near t1 a block's last rows would be computed and thrown away: ordinary steps there
        times = self.block_times
        if times is None:
            # before any accepted step the clock has no accepted_dt; st.dt stands in (never NaN: a NaN input
            # is a guard of the graph, and the block would compile twice), and only an accepted row sets it
            values = (st.t, st.dt, st.err_prev, clock.t1, getattr(clock, "accepted_dt", st.dt))
            times = torch.tensor(values, dtype=clock.time_dtype, device=clock.device).unbind(0)
        self.block_rhs.norm = self.rhs.norm
        start = time.perf_counter() if not self.block_calls else None
        _INDUCTOR_IR_LOG.addFilter(_SHIM_NOTES)
        try:
            if self.cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
            out = self.block_graph(clock, self.solver, self.block_rhs, BLOCK_STEPS, self.fractions, times, st.u,
                                   st.solver_state)
        except _CANNOT_COMPILE as exc:
            self._cannot_compile(exc)
            return False
        finally:
            _INDUCTOR_IR_LOG.removeFilter(_SHIM_NOTES)
        if self.cudagraphs:
            out = _copied(out)
        if self._recompiles():
            return False
        _warm_blocks.add(self.block_key)
        self.block_times, st.u, st.solver_state, records, info = out
        values = info.tolist()
        if start is not None:  # compile_time: the first call of each graph in this solve
            self._count_compile(start)
        attempts, accepted, done, self.halted = int(values[0]), int(values[1]), values[2] > 0, values[3] > 0
        st.t, st.dt, st.err_prev, accepted_dt = values[4:8]
        if accepted:
            clock.accepted_dt = accepted_dt
        flags, ends = values[8:8 + BLOCK_STEPS], values[8 + BLOCK_STEPS:]
        self.block_calls += 1
        self.block_attempts += attempts
        st.iterations += attempts
        st.member_evaluations += attempts * st.status.numel()
        st.accepted += accepted
        st.rejected += attempts - accepted
        if attempts:
            st.nonfinite_streak = 0
        if accepted:
            saver.record_block(*records, [(row, end) for row, (end, flag) in enumerate(zip(ends, flags)) if flag])
        if done:
            clock.stop_all(st, ReturnCode.SUCCESS)
        return True

    def __call__(self, st: LoopState, step: Any) -> tuple[torch.Tensor, StepResult, Any, Any]:
        self.block_times = None  # the ordinary path moves the clock on the host
        if self.eager:
            return super().__call__(st, step)
        t, stage_times = self.clock.stage_clock(st.t, step)
        self.graph_rhs.norm = self.rhs.norm  # the loop swaps the norm when a member is frozen
        start = time.perf_counter() if not self.step_calls else None
        self.step_calls += 1
        try:
            if self.cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
            res, measured = self.graph(self.clock, self.solver, self.graph_rhs, st, t, stage_times,
                                       self._step_tensor(step))
        except _CANNOT_COMPILE as exc:
            self._cannot_compile(exc)
            return super().__call__(st, step)
        if self.cudagraphs:  # the next replay overwrites the graph's outputs
            res, measured = _copied((res, measured))
        if start is not None:
            self._count_compile(start)
            _compiled_steps.add(self.block_key)
        self._recompiles()  # this step's result stands; the next ones run eagerly if it says so
        return (t, res, *self.clock.measure(res, st, measured))

    def evaluate(self, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """f at one point outside a step as one compiled graph: a short solve's start (f0 and the initial
        step's probe, in two grad modes under backprop) would otherwise pay two eager calls of f, which for
        an adjoint's augmented field cost as much as a compiled step. Only once this key's step has compiled."""
        if self.eager or self.block_key not in _compiled_steps:
            return super().evaluate(t, u)
        start = time.perf_counter() if not self.evaluations else None
        self.evaluations += 1
        try:
            if self.cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
            value = self.evaluate_graph(self.graph_rhs, t, u)
        except _CANNOT_COMPILE as exc:
            self._cannot_compile(exc)
            return super().evaluate(t, u)
        if self.cudagraphs:
            value = _copied(value)
        if start is not None:
            self._count_compile(start)
        return value

    def finish(self) -> None:
        """Hand the graphs' counts to the loop's RHS: a block's rows after it reached t1 or halted
        evaluated f too (masked out), so blocks count their attempts' share."""
        super().finish()
        if self.block_key not in _warm_blocks:
            _steps_before_blocks[self.block_key] = _steps_before_blocks.get(self.block_key, 0) + self.step_calls
        rhs, graph, block = self.rhs, self.graph_rhs, self.block_rhs
        rows = self.block_calls * BLOCK_STEPS
        for name in ("nfe", "njac", "nlinsolve"):
            in_blocks = int(getattr(block, name)) * self.block_attempts // rows if rows else 0
            setattr(rhs, name, getattr(rhs, name) + int(getattr(graph, name)) + in_blocks)
