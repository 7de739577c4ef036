"""Exception types raised by sciode.

Bad input raises at once with a message naming the offending argument; a failed
*solve* does not raise (it returns a Solution with a non-SUCCESS retcode).
"""
from __future__ import annotations


class SciodeError(Exception):
    """Base class of every error sciode raises on purpose."""


class ProblemError(SciodeError, ValueError):
    """Invalid input: a Problem, a solve option, a solver name or a solver option.

    The message always names the argument and says what was expected.
    """


class PluginError(SciodeError):
    """A plugin is malformed, or two plugins claim the same name."""


class NotDifferentiableError(ProblemError):
    """Gradients were requested through a solver or path that cannot provide them."""


class WriteError(SciodeError, OSError):
    """A file could not be written (e.g. the device is full); the message names the path and the cause."""
