"""What the board tells the controller: one `BoardEvent` per gesture, trigger or dock change."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class BoardEventKind(enum.Enum):
    START = "start"                    # double press, or an auxiliary trigger while buffering
    STOP = "stop"                      # hold (confirmed, if stop confirmation is on)
    MARKER = "marker"                  # single press, or an auxiliary trigger, while recording
    STOP_ARMED = "stop_armed"          # first hold with stop confirmation on: hold again to stop
    STOP_DISARMED = "stop_disarmed"    # the confirmation window ran out; recording goes on
    DOCKED = "docked"
    UNDOCKED = "undocked"
    STEALTH_TOGGLE = "stealth_toggle"  # a request only: the controller checks the policy


@dataclass(frozen=True)
class BoardEvent:
    """``t`` is seconds on the board's monotonic clock: for a marker, the moment of the press."""

    kind: BoardEventKind
    t: float
    source: str = "button"
