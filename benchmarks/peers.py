"""sciode side by side with diffrax, torchdiffeq and scipy on the same problems, in one process.

    python benchmarks/peers.py [--cases vdp,robertson,lv,spiral,ffjord] [--repeats 5] [--quick]

Cases (float64, one thread for torch and for XLA, the same initial values and tolerances):
  vdp        Van der Pol mu=1, 256 members, dopri5, rtol 1e-5 (atol 1e-8), t in [0, 10]
  robertson  Robertson kinetics, 1024 and 4096 members, rtol 1e-6, atol 1e-10, to t = 1e5:
             sciode rodas4 vs diffrax Kvaerno5 vs a scipy LSODA loop (timed on a subset, scaled up)
  lv         Lotka-Volterra, 10,000 members to t = 50, rtol 1e-6 (atol 1e-9), 101 saved times:
             sciode tsit5 per-member vs diffrax Tsit5 (vmap) vs torchdiffeq dopri5 vs scipy LSODA loop
  spiral     one training iteration of torchdiffeq's ode_demo spiral model (backprop and adjoint)
  ffjord     one FFJORD training iteration on a 2-D toy density (adjoint)
Every side runs round-robin with the others, ``--repeats`` times after a warm-up; the tables
give medians of the process's CPU time (and wall time). The libraries' controllers differ, so
the tables also give loop iterations, time per iteration, the error against a tight reference,
and the time each sciode side needs to be at least as accurate as a peer's run (matched accuracy;
for the training cases the error is that of the loss and gradient: see _peers_training.py).
JAX compile time (jit lower + compile) and sciode's ``compile=True`` compile time are reported
apart from run time. A peer that is not installed is skipped with a note.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _jax_peers  # noqa: E402,F401  (first: sets XLA's thread flags before jax starts)
import torch  # noqa: E402
from _ode_case import run_ode_case  # noqa: E402

import sciode  # noqa: E402

#: case -> (module, function yielding OdeCase objects and printed text), imported when the case runs
BUILDERS = {"vdp": ("_peers_ode", "van_der_pol"), "robertson": ("_peers_ode", "robertson"),
            "lv": ("_peers_ode", "lotka_volterra"), "spiral": ("_peers_training", "spiral"),
            "ffjord": ("_peers_training", "ffjord")}
CASES = tuple(BUILDERS)


def sciode_compiles() -> bool:
    """Whether this sciode has ``solve(..., compile=True)``."""
    return "compile" in inspect.signature(sciode.solve).parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {CASES}")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes, for checking that the script runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # sciode's compiled sides compile one step function anew for each case, shape, solver and grad mode (the
    # tolerances are graph inputs); past dynamo's per-function limit (sciode raises it to 64) more would run eagerly
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 512)
    chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(chosen) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {CASES}")
    if _jax_peers.MISSING:
        print(_jax_peers.MISSING)
    else:
        print(f"jax {_jax_peers.jax.__version__}, diffrax {_jax_peers.diffrax.__version__}, {_jax_peers.THREADS}")
    print(f"torch {torch.__version__} (threads {torch.get_num_threads()}), sciode {sciode.__version__}, "
          f"compile=True {'available' if sciode_compiles() else 'not available in this sciode'}\n")
    for name in chosen:
        module, function = BUILDERS[name]
        build = getattr(importlib.import_module(module), function)
        for item in build(quick=args.quick, repeats=args.repeats, compiles=sciode_compiles()):
            print(item if isinstance(item, str) else run_ode_case(item), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
