"""The progress bar of a solve (tqdm): how much of the time span is done, in readable units."""
from __future__ import annotations

from typing import Any

__all__ = ["Progress"]


class Progress:
    """A tqdm bar over |t1 - t0| showing the current time; does nothing when ``enabled`` is False."""

    def __init__(self, enabled: bool, tspan: tuple[float, float], name: str) -> None:
        self.bar = None
        if not enabled:
            return
        from tqdm.auto import tqdm

        self.t0, t1 = tspan
        self.done = 0.0
        self.bar = tqdm(total=abs(t1 - self.t0), desc=name, unit="",
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| t = {postfix} [{elapsed}<{remaining}]")
        self.bar.set_postfix_str(f"{self.t0:.4g} of {self.t0:.4g} to {t1:.4g}", refresh=False)
        self.t1 = t1

    def update(self, t: Any, direction: float) -> None:
        if self.bar is None:
            return
        now = float(t.min() if direction > 0 else t.max()) if hasattr(t, "min") else float(t)
        done = abs(now - self.t0)
        self.bar.set_postfix_str(f"{now:.4g} of {self.t0:.4g} to {self.t1:.4g}", refresh=False)
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
