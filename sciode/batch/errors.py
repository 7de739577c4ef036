"""Errors of a batch run as a whole (as opposed to a member's failure, which is recorded and the run goes on)."""
from __future__ import annotations

from ..errors import ProblemError

__all__ = ["RunError", "MissingInput"]


class RunError(ProblemError):
    """A fault of the run as a whole (not of some members): it stops the batch instead of being recorded."""


class MissingInput(RunError, KeyError):
    """The problem script asked for an input variable the dataset does not have."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])
