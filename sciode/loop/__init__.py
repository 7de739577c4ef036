"""The integration loop, one body over small parts (see ``run.py`` for how they fit)."""
from __future__ import annotations

from .controller import PIController, initial_step, rms_norm
from .events import Event, EventRecord, check_events, event_state, event_time_gradients
from .options import LoopOptions
from .records import same_time_tolerance
from .run import integrate

__all__ = ["Event", "EventRecord", "LoopOptions", "PIController", "check_events", "event_state", "event_time_gradients",
           "initial_step", "integrate", "rms_norm", "same_time_tolerance"]
