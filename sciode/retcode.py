"""How a solve, or one member of a batch, ended: ``ReturnCode`` and what each code means."""
from __future__ import annotations

import enum

__all__ = ["ReturnCode"]


class ReturnCode(enum.IntEnum):
    """How a solve (or one member of a batch) ended."""

    SUCCESS = 1
    MAX_STEPS = 2
    DT_TOO_SMALL = 3
    UNSTABLE = 4
    FAILURE = 5
    TERMINATED = 6

    @property
    def successful(self) -> bool:
        """True for a solve that did what was asked: reached t1, or stopped at a terminal event."""
        return self in (ReturnCode.SUCCESS, ReturnCode.TERMINATED)

    @property
    def description(self) -> str:
        """One sentence saying what happened, used in messages and in the netCDF flag meanings."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    ReturnCode.SUCCESS: "reached t1",
    ReturnCode.MAX_STEPS: "max_steps iterations were used before reaching t1",
    ReturnCode.DT_TOO_SMALL: ("the step size fell below the resolution of t or below min_step "
                              "(stiff or singular dynamics?)"),
    ReturnCode.UNSTABLE: "the state became non-finite (NaN or inf)",
    ReturnCode.FAILURE: "the solver could not complete a step (e.g. the Newton iteration failed)",
    ReturnCode.TERMINATED: "stopped at a terminal event",
}
