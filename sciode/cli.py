"""The ``sciode`` command line: ``sciode plugins``, ``sciode run`` (batch runs), ``sciode plot``."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .validation import DEFAULT_ATOL, DEFAULT_MAX_MEMORY_GIB, DEFAULT_MAX_STEPS, DEFAULT_RTOL


def _plugins(args: argparse.Namespace) -> int:
    import warnings

    from .registry import KINDS, registry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # broken plugins are listed below
        registry.load()
    if not registry.plugins:
        print("no sciode plugins installed")
        return 0
    conflicts = {kind: registry.conflicts(kind) for kind in KINDS}
    for info in registry.plugins.values():
        version = f" {info.version}" if info.version else ""
        print(f"{info.name}  ({info.distribution}{version})")
        if info.error:
            print(f"  BROKEN: {info.error}")
            continue
        for kind, names in info.provides.items():
            if names:
                print(f"  {kind}: {', '.join(names)}")
    for kind, clashes in conflicts.items():
        for name, owners in clashes.items():
            print(f"CONFLICT: {kind} name {name!r} is claimed by " + " and ".join(o.describe() for o in owners)
                  + "; it is unavailable until one is uninstalled or renamed")
    return 0


def _saveat(text: str) -> int | list[float]:
    """``--saveat 200`` (equal intervals) or ``--saveat 0,0.5,1`` (explicit times)."""
    try:
        return int(text) if "," not in text else [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number of intervals or comma-separated times; "
                                         f"got {text!r}") from exc


class _Terminated(BaseException):
    """SIGTERM arrived (a scheduler's time limit, ``kill``): handled like Ctrl-C, so not an ``Exception``
    that a chunk would record as a member's failure."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def _run(args: argparse.Namespace) -> int:
    import signal

    from .batch import run_batch
    from .errors import SciodeError

    resume = "finished chunks are kept next to the output: run the same command again to resume"
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        run_batch(args.script, args.input, args.output, solver=args.solver, saveat=args.saveat, dt=args.dt,
                  rtol=args.rtol, atol=args.atol, max_steps=args.max_steps, chunk=args.chunk, workers=args.workers,
                  scheduler=args.scheduler, overwrite=args.overwrite, progress=not args.quiet,
                  max_memory_gib=args.max_memory)
    except SciodeError as exc:
        print(f"sciode run: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sciode run: interrupted; {resume}", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"sciode run: terminated (SIGTERM); {resume}", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    from .errors import ProblemError
    from .io import load
    from .plot import plot_dataset

    output = args.output or str(Path(args.path).with_suffix(".png"))
    try:
        plot_dataset(load(args.path), members=args.members, phase=args.phase, states=args.states, output=output)
    except ProblemError as exc:
        print(f"sciode plot: error: {exc}", file=sys.stderr)
        return 2
    print(output)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sciode", description="Differential equations on PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list installed plugins, their distributions and what they provide")
    p.set_defaults(func=_plugins)

    r = sub.add_parser("run", help="solve every member of a netCDF dataset with a problem script",
                       description="Solve every member of INPUT with SCRIPT's problem(inputs) and write the "
                                   "trajectories to OUTPUT (netCDF, dims member/time/state). An interrupted run "
                                   "resumes. SCRIPT is executed (here and on every dask worker) like any Python "
                                   "program: run only scripts you trust.")
    r.add_argument("script", help="Python file defining problem(inputs: dict[str, torch.Tensor]) -> sciode.ODEProblem")
    r.add_argument("--input", "-i", required=True, help="netCDF file with a 'member' dim (parameters, initial states)")
    r.add_argument("--output", "-o", required=True, help="netCDF file to write (appears only when complete)")
    r.add_argument("--solver", default="tsit5", help="registered solver name (default tsit5; see 'sciode plugins')")
    r.add_argument("--saveat", type=_saveat, default=100,
                   help="number of equal intervals, or comma-separated times (default 100)")
    r.add_argument("--dt", type=float, default=None, help="step for fixed-step solvers, first step for adaptive ones")
    r.add_argument("--rtol", type=float, default=DEFAULT_RTOL)
    r.add_argument("--atol", type=float, default=DEFAULT_ATOL)
    r.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS)
    r.add_argument("--chunk", type=int, default=1000, help="members solved together as one batch (default 1000)")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, help="start a local dask cluster with N worker processes")
    where.add_argument("--scheduler", default=None, help="join a running dask scheduler, e.g. tls://10.0.0.5:8786 "
                       "(security from the dask config; see docs/batch.md)")
    r.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    r.add_argument("--max-memory", type=float, default=DEFAULT_MAX_MEMORY_GIB, metavar="GIB",
                   help="refuse, before loading anything, runs whose inputs and output need more memory "
                        f"(default {DEFAULT_MAX_MEMORY_GIB:g} GiB)")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    r.set_defaults(func=_run)

    q = sub.add_parser("plot", help="plot trajectories or a phase portrait from a netCDF file to PNG")
    q.add_argument("path", help="netCDF file with 'u' on time/state (a 'sciode run' output or a saved Solution)")
    q.add_argument("--members", nargs="+", default=None, help="member labels (default: the first 10)")
    q.add_argument("--phase", nargs=2, metavar=("X", "Y"), default=None, help="phase portrait of state Y against X")
    q.add_argument("--states", nargs="+", default=None, help="states to draw (default all)")
    q.add_argument("--output", "-o", default=None, help="image file (default: PATH with .png)")
    q.set_defaults(func=_plot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. ``sciode plugins | head``: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
