"""Every LED and beeper pattern of the board, as data, and the Markdown table the README shows.

A `Pattern` is ``count`` pulses of ``on_s`` on and ``off_s`` off, the burst repeated every
``every_s`` seconds (or played once when ``every_s`` is None), or a steady level. Times inside
are whole microseconds so that edges computed at a deadline land exactly on it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .settings import BoardSettings

US = 1_000_000


def to_us(seconds: float) -> int:
    return round(seconds * US)


@dataclass(frozen=True)
class Pattern:
    """``count`` pulses of ``on_s``/``off_s``, repeated every ``every_s`` s (None: once)."""

    on_s: float = 0.0
    off_s: float = 0.0
    count: int = 0
    every_s: float | None = None
    steady: bool = False

    @property
    def burst_us(self) -> int:
        """Length of one burst including its trailing off time, in microseconds."""
        return self.count * (to_us(self.on_s) + to_us(self.off_s))

    def edges_us(self) -> list[int]:
        """Times of the level changes inside one burst, from the burst's start."""
        on, period = to_us(self.on_s), to_us(self.on_s) + to_us(self.off_s)
        edges: list[int] = []
        for pulse in range(self.count):
            edges += [pulse * period, pulse * period + on]
        return edges

    def level(self, start_us: int, t_us: int) -> bool:
        """Whether the output is on at ``t_us`` for a pattern started at ``start_us``."""
        if self.steady:
            return True
        since = t_us - start_us
        if since < 0 or self.count == 0:
            return False
        if self.every_s is not None:
            since %= to_us(self.every_s)
        period = to_us(self.on_s) + to_us(self.off_s)
        pulse = since // period
        return pulse < self.count and since - pulse * period < to_us(self.on_s)

    def next_change_us(self, start_us: int, t_us: int) -> int | None:
        """The first level change strictly after ``t_us``, or None if the level never changes."""
        edges = self.edges_us()
        if self.steady or not edges:
            return None
        if self.every_s is None:
            later = [start_us + edge for edge in edges if start_us + edge > t_us]
            return later[0] if later else None
        every = to_us(self.every_s)
        base = start_us + max(0, (t_us - start_us) // every) * every
        for burst in (base, base + every):
            for edge in edges:
                if burst + edge > t_us:
                    return burst + edge
        return None  # unreachable: the next burst always has an edge after t

    def describe(self) -> str:
        """Plain words for the README table."""
        if self.steady:
            return "steady on"
        if self.count == 0:
            return "off"
        if self.count == 1:
            pulse = f"{self.on_s:g} s on, {self.off_s:g} s off" if self.every_s is not None \
                and to_us(self.on_s) + to_us(self.off_s) == to_us(self.every_s) \
                else f"one {self.on_s:g} s pulse"
        else:
            pulse = f"{self.count} pulses of {self.on_s:g} s ({self.off_s:g} s apart)"
        if self.every_s is None:
            return pulse
        if self.count == 1 and to_us(self.on_s) + to_us(self.off_s) == to_us(self.every_s):
            return f"flashing, {pulse}"
        return f"{pulse}, every {self.every_s:g} s"


OFF = Pattern()
STEADY = Pattern(steady=True)


class Mode(enum.Enum):
    """What the recorder is doing (the controller sets it)."""

    BUFFERING = "buffering"
    RECORDING = "recording"
    UPLOADING = "uploading"  # docked, uploading to the station
    DOCKED = "docked"  # docked, not uploading: done, recordings kept, or no station configured


class Condition(enum.Enum):
    """Problems the wearer must see, highest priority first: only the first active one shows."""

    ERROR = "error"
    STORAGE_FULL = "storage full"
    CLOCK_NOT_SET = "clock not set"
    LOW_BATTERY = "low battery"
    STORAGE_NEARLY_FULL = "storage nearly full"


class Cue(enum.Enum):
    """One-shot beeps for things that just happened."""

    START = "recording started"
    STOP = "recording stopped"
    MARKER = "marker added"
    STOP_ARMED = "stop armed (hold again to stop)"
    REFUSED = "start refused (docked)"


def _blinks(count: int, every_s: float, on_s: float = 0.15, off_s: float = 0.15) -> Pattern:
    return Pattern(on_s, off_s, count, every_s)


RED_RECORDING = Pattern(0.25, 0.75, 1, 1.0)

GREEN_FOR_MODE: dict[Mode, Pattern] = {
    Mode.BUFFERING: Pattern(0.2, 1.8, 1, 2.0),
    Mode.RECORDING: OFF,
    Mode.UPLOADING: Pattern(0.25, 0.25, 1, 0.5),
    Mode.DOCKED: Pattern(1.0, 1.0, 1, 2.0),
}

# The status LED blinks as many times as the alarm beeps, so the two can be matched by ear and eye.
GREEN_FOR_CONDITION: dict[Condition, Pattern] = {
    Condition.ERROR: STEADY,
    Condition.STORAGE_FULL: _blinks(3, 3.0),
    Condition.CLOCK_NOT_SET: _blinks(5, 3.0),
    Condition.LOW_BATTERY: _blinks(4, 3.0),
    Condition.STORAGE_NEARLY_FULL: _blinks(2, 3.0),
}

BEEPS_FOR_CUE: dict[Cue, Pattern] = {
    Cue.START: Pattern(0.1, 0.1, 2),
    Cue.STOP: Pattern(1.0, 0.2, 1),
    Cue.MARKER: Pattern(0.05, 0.1, 1),
    Cue.STOP_ARMED: Pattern(0.4, 0.2, 2),
    Cue.REFUSED: Pattern(0.3, 0.1, 3),
}

REMINDER_BEEPS = Pattern(0.1, 0.1, 2)  # the Axon convention: two short tones

# Alarms repeat every ``alarm_repeat_s`` (default 20 s) while the condition lasts (Axon: low
# battery 4 quick beeps every 20 s, memory full 3 beeps, clock not set 5 beeps every 20 s).
ALARM_BEEPS: dict[Condition, Pattern] = {
    Condition.ERROR: Pattern(0.5, 0.25, 3),
    Condition.STORAGE_FULL: Pattern(0.25, 0.15, 3),
    Condition.CLOCK_NOT_SET: Pattern(0.1, 0.1, 5),
    Condition.LOW_BATTERY: Pattern(0.1, 0.1, 4),
}


def pattern_table_markdown(settings: BoardSettings | None = None) -> str:
    """The README's table of every state and cue: red LED, green LED, beeper."""
    settings = settings or BoardSettings()
    rows = [("state", "red LED", "green LED", "beeper")]
    reminder = (f"{REMINDER_BEEPS.describe()} every {settings.reminder_s:g} s "
                "(`board.reminder_s`)")
    for mode in Mode:
        red = RED_RECORDING.describe() if mode is Mode.RECORDING else "off"
        beeper = reminder if mode is Mode.RECORDING else "silent"
        rows.append((mode.value, red, GREEN_FOR_MODE[mode].describe(), beeper))
    for condition in Condition:
        alarm = ALARM_BEEPS.get(condition)
        beeper = (f"{alarm.describe()}, every {settings.alarm_repeat_s:g} s (`board.alarm_repeat_s`)"
                  if alarm else "silent")
        rows.append((condition.value, "as the mode", GREEN_FOR_CONDITION[condition].describe(),
                     beeper))
    for cue in Cue:
        rows.append((f"cue: {cue.value}", "as the mode", "as the mode",
                     BEEPS_FOR_CUE[cue].describe()))
    rows.append(("stealth (only if `board.stealth_allowed`)", "off", "off", "silent"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


if __name__ == "__main__":
    print(pattern_table_markdown())
