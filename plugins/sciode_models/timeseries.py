"""Irregularly sampled time series: synthetic data sets in code and a netCDF loader.

An ``IrregularSeries`` is a batch of series on one shared, sorted grid of times:
``x`` (series, time, channel) with ``mask`` (1 observed, 0 missing), and, for
synthetic data, the noise-free ``truth``. Irregular sampling is a mask that keeps
different grid times for different series. On disk (netCDF, via xarray) the same
layout has dims ``(series, time, channel)`` with missing values as NaN in ``x``.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import numpy as np
import torch
import xarray as xr

import sciode

__all__ = ["IrregularSeries", "spirals", "damped_oscillators", "load_netcdf", "save_netcdf"]


@dataclasses.dataclass
class IrregularSeries:
    """Series on a shared time grid with a per-entry observation mask."""

    t: torch.Tensor                  #: (T,) strictly increasing times
    x: torch.Tensor                  #: (B, T, D) values (anything under mask 0)
    mask: torch.Tensor               #: (B, T, D) 1.0 observed, 0.0 missing
    truth: torch.Tensor | None = None  #: (B, T, D) noise-free values when known
    channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.t.ndim != 1 or self.x.ndim != 3 or self.x.shape[1] != self.t.numel() or self.mask.shape != self.x.shape:
            raise sciode.ProblemError(f"expected t (T,), x and mask (B, T, D); got {tuple(self.t.shape)}, "
                                      f"{tuple(self.x.shape)}, {tuple(self.mask.shape)}")
        if not self.channels:
            self.channels = tuple(f"x{i}" for i in range(self.x.shape[2]))

    def __len__(self) -> int:
        return self.x.shape[0]

    def select(self, index: Any) -> IrregularSeries:
        """A subset of the series (by index, slice or index tensor)."""
        truth = None if self.truth is None else self.truth[index]
        return IrregularSeries(self.t, self.x[index], self.mask[index], truth, self.channels)

    def window(self, t_lo: float, t_hi: float) -> IrregularSeries:
        """The grid times in [t_lo, t_hi] (both ends included)."""
        keep = (self.t >= t_lo) & (self.t <= t_hi)
        truth = None if self.truth is None else self.truth[:, keep]
        return IrregularSeries(self.t[keep], self.x[:, keep], self.mask[:, keep], truth, self.channels)

    def to_dataset(self) -> xr.Dataset:
        """xarray Dataset on (series, time, channel); missing entries of ``x`` are NaN."""
        dims = ("series", "time", "channel")
        x = torch.where(self.mask > 0, self.x, torch.full_like(self.x, math.nan))
        data = {"x": (dims, x.detach().cpu().numpy(), {"long_name": "observed value"}),
                "mask": (dims, self.mask.detach().cpu().numpy().astype(np.int8),
                         {"long_name": "1 observed, 0 missing"})}
        if self.truth is not None:
            data["truth"] = (dims, self.truth.detach().cpu().numpy(), {"long_name": "noise-free value"})
        return xr.Dataset(data, coords={"time": self.t.detach().cpu().numpy(), "channel": list(self.channels)})


def _grid(n_times: int, t_max: float, generator: torch.Generator) -> torch.Tensor:
    """n_times sorted distinct random times in [0, t_max], starting at 0."""
    inner = torch.rand(n_times - 1, generator=generator, dtype=torch.float64) * t_max
    return torch.cat([torch.zeros(1, dtype=torch.float64), torch.sort(inner).values])


def _time_mask(n_series: int, n_times: int, keep: float, generator: torch.Generator) -> torch.Tensor:
    """(B, T) mask keeping a fraction ``keep`` of the times of each series, always the first one."""
    mask = (torch.rand(n_series, n_times, generator=generator) < keep).double()
    mask[:, 0] = 1.0
    return mask


def spirals(n_series: int = 256, n_times: int = 60, *, t_max: float = 10.0, keep: float = 0.5, noise: float = 0.03,
            seed: int = 0, dtype: torch.dtype = torch.float32) -> IrregularSeries:
    """Noisy, irregularly sampled 2-D spirals, clockwise and counter-clockwise.

    Each series follows r(t) = r0 + 0.1 t, angle(t) = a0 +/- 0.5 t with random r0 in
    [0.5, 1] and a0 in [0, 2 pi); one grid of ``n_times`` random times on [0, t_max]
    is shared, and each series keeps a random fraction ``keep`` of them.
    """
    gen = torch.Generator().manual_seed(seed)
    t = _grid(n_times, t_max, gen)
    sign = torch.where(torch.rand(n_series, 1, generator=gen) < 0.5, -1.0, 1.0).double()
    r0 = 0.5 + 0.5 * torch.rand(n_series, 1, generator=gen, dtype=torch.float64)
    a0 = 2 * math.pi * torch.rand(n_series, 1, generator=gen, dtype=torch.float64)
    radius, angle = r0 + 0.1 * t, a0 + sign * 0.5 * t
    truth = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], -1)
    x = truth + noise * torch.randn(truth.shape, generator=gen, dtype=torch.float64)
    mask = _time_mask(n_series, n_times, keep, gen).unsqueeze(-1).expand_as(x).contiguous()
    return IrregularSeries(t.to(dtype), x.to(dtype), mask.to(dtype), truth.to(dtype), ("x", "y"))


def damped_oscillators(n_series: int = 256, n_times: int = 60, *, t_max: float = 10.0, missing: float = 0.3,
                       keep: float = 0.7, noise: float = 0.02, seed: int = 0,
                       dtype: torch.dtype = torch.float32) -> IrregularSeries:
    """Under-damped oscillators x'' + 2 zeta w x' + w^2 x = 0 observed as (position, velocity), with gaps.

    w in [1, 2], zeta in [0.05, 0.3], x0 and v0 in [-1, 1]. Each series keeps a
    fraction ``keep`` of the grid times, and each kept entry is missing with
    probability ``missing`` independently per channel.
    """
    gen = torch.Generator().manual_seed(seed)
    t = _grid(n_times, t_max, gen)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n_series, 1, generator=gen, dtype=torch.float64)

    w, zeta, x0, v0 = uniform(1.0, 2.0), uniform(0.05, 0.3), uniform(-1.0, 1.0), uniform(-1.0, 1.0)
    wd, decay = w * torch.sqrt(1 - zeta**2), zeta * w
    b = (v0 + decay * x0) / wd
    envelope, cos, sin = torch.exp(-decay * t), torch.cos(wd * t), torch.sin(wd * t)
    position = envelope * (x0 * cos + b * sin)
    velocity = envelope * ((b * wd - decay * x0) * cos - (x0 * wd + decay * b) * sin)
    truth = torch.stack([position, velocity], -1)
    x = truth + noise * torch.randn(truth.shape, generator=gen, dtype=torch.float64)
    rows = _time_mask(n_series, n_times, keep, gen).unsqueeze(-1)
    entries = (torch.rand(truth.shape, generator=gen) >= missing).double()
    entries[:, 0] = 1.0
    mask = rows * entries
    return IrregularSeries(t.to(dtype), x.to(dtype), mask.to(dtype), truth.to(dtype), ("position", "velocity"))


def save_netcdf(series: IrregularSeries, path: str | os.PathLike) -> None:
    """Write ``series`` as netCDF with dims (series, time, channel)."""
    series.to_dataset().to_netcdf(path)


def load_netcdf(source: str | os.PathLike | xr.Dataset, *, variable: str = "x", mask: str | None = "mask",
                truth: str | None = None, dtype: torch.dtype = torch.float32) -> IrregularSeries:
    """Read observed series from a netCDF file (or an open Dataset) with dims (series, time, channel).

    ``mask`` names a 0/1 variable of the same dims; without it (or if the file has
    none) the finite entries of ``variable`` count as observed. ``truth`` optionally
    names a noise-free variable. Times must be strictly increasing.
    """
    ds = source if isinstance(source, xr.Dataset) else xr.open_dataset(source)
    if variable not in ds:
        raise sciode.ProblemError(f"variable {variable!r} is not in the dataset; it has {sorted(ds.data_vars)}")
    dims = ("series", "time", "channel")
    if set(ds[variable].dims) != set(dims):
        raise sciode.ProblemError(f"variable {variable!r} must have dims {dims}; got {ds[variable].dims}")
    values = torch.as_tensor(ds[variable].transpose(*dims).values, dtype=dtype)
    if mask is not None and mask in ds:
        observed = torch.as_tensor(ds[mask].transpose(*dims).values != 0) & torch.isfinite(values)
    else:
        observed = torch.isfinite(values)
    t = torch.as_tensor(np.asarray(ds["time"].values, dtype=np.float64), dtype=dtype)
    channels = tuple(str(c) for c in ds["channel"].values) if "channel" in ds.coords else ()
    true = None
    if truth is not None:
        true = torch.as_tensor(ds[truth].transpose(*dims).values, dtype=dtype)
    x = torch.where(observed, values, torch.zeros_like(values))
    if not isinstance(source, xr.Dataset):
        ds.close()
    return IrregularSeries(t, x, observed.to(dtype), true, channels)
