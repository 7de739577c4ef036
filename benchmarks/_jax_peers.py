"""JAX / diffrax set up for a fair side-by-side: float64, one CPU thread, compile timed apart from the run.

Import this module before anything else imports jax: XLA reads its thread settings when the
backend starts. ``MISSING`` is None when jax and diffrax import, else the note to print;
``THREADS`` says what was set, for the benchmark's header.

One thread: XLA's CPU client runs a compiled program's kernels on its own intra-op pool
("XLAEigen", one thread per schedulable core), whatever ``--xla_cpu_multi_thread_eigen`` says
(that flag only concerns Eigen's matmul and convolution). ``PJRT_NPROC`` sizes that pool; at 1
a jitted call runs on the calling thread. Both are defaults: set them in the environment to
compare (e.g. ``PJRT_NPROC=2``).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

os.environ.setdefault("PJRT_NPROC", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
THREADS = f"PJRT_NPROC={os.environ['PJRT_NPROC']}, XLA_FLAGS={os.environ['XLA_FLAGS']!r}"

try:
    import diffrax
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    MISSING: str | None = None
except ImportError as exc:  # the bench-jax extra is optional
    diffrax = jax = jnp = None
    MISSING = f"diffrax peer skipped: {exc.name} is not installed (pip install -e '.[bench-jax]')"

__all__ = ["MISSING", "THREADS", "diffrax", "jax", "jnp", "compiled", "to_jax", "linear_params", "mlp",
           "concat_squash_mlp"]


def compiled(fn: Callable, *args: Any) -> tuple[Callable[..., Any], float]:
    """``jax.jit(fn)`` traced and compiled for ``args``: (a call that waits for its result, compile seconds)."""
    start = time.perf_counter()
    executable = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - start
    return (lambda *a: jax.block_until_ready(executable(*a))), seconds


def to_jax(value: torch.Tensor | np.ndarray) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return jnp.asarray(value)


def linear_params(layers: Sequence[torch.nn.Linear]) -> list[tuple[Any, Any]]:
    """(W, b) of torch Linear layers as JAX arrays (b = 0 where the layer has no bias)."""
    out = []
    for layer in layers:
        bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_features, dtype=layer.weight.dtype)
        out.append((to_jax(layer.weight), to_jax(bias)))
    return out


def mlp(params: list[tuple[Any, Any]], x: Any) -> Any:
    """The tanh MLP of torch's Sequential(Linear, Tanh, ..., Linear), same weights."""
    for i, (w, b) in enumerate(params):
        x = x @ w.T + b
        if i < len(params) - 1:
            x = jnp.tanh(x)
    return x


def concat_squash_mlp(params: list[tuple[tuple[Any, Any], tuple[Any, Any], Any]], t: Any, x: Any) -> Any:
    """sciode_models.ConcatSquashMLP (tanh): each layer (W x + b) * sigmoid(a t + c) + d t."""
    for i, ((w, b), (a, c), d) in enumerate(params):
        x = (x @ w.T + b) * jax.nn.sigmoid(t * a[:, 0] + c) + t * d[:, 0]
        if i < len(params) - 1:
            x = jnp.tanh(x)
    return x
