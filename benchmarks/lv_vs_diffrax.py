"""Lotka-Volterra 10,000 members: sciode per-member against diffrax vmap, interleaved rounds.

    python benchmarks/lv_vs_diffrax.py [--repeats 5]

The two sides of ``peers.py``'s lv case (same problem, tolerances, saves and one thread each)
without its torchdiffeq, scipy and matched-accuracy runs, which ``peers.py`` runs once per
call; here every side runs ``--repeats`` round-robin rounds, and the medians are printed, with
the count of threads that did the work of each side's warm-up call (one each is the setting:
``torch.set_num_threads(1)``, and ``PJRT_NPROC=1`` for XLA, see ``_jax_peers.py``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _jax_peers  # noqa: E402  (sets XLA's thread settings before jax starts)
import torch  # noqa: E402
from _common import busy_threads, interleaved_medians  # noqa: E402
from _peers_ode import lotka_volterra  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch threads {torch.get_num_threads()}; XLA: {_jax_peers.THREADS}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    case = next(c for c in lotka_volterra(False, args.repeats, False) if not isinstance(c, str))
    sides = {name: fn for name, fn in case.sides.items() if name.startswith(("sciode", "diffrax"))}
    for name, fn in sides.items():  # warm-up (diffrax compiles here), the loop counts and the threads at work
        iterations = []
        threads = busy_threads(lambda fn=fn: iterations.append(fn(case.rtol).iterations))
        print(f"{name}: {iterations[0]} loop iterations, {threads} thread(s) at work")
    times = interleaved_medians({name: lambda fn=fn: fn(case.rtol) for name, fn in sides.items()}, args.repeats,
                                warmup=0)
    for name, (cpu, wall) in times.items():
        print(f"{name}: median CPU {cpu * 1e3:.0f} ms, wall {wall * 1e3:.0f} ms")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
