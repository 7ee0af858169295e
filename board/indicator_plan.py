"""What the red LED, green LED and beeper do at any moment, from the controller's status: pure, no I/O.

`IndicatorPlan` turns `show` (mode, conditions, stealth) and `cue` calls into levels over time.
The beeper plays one burst at a time from a short queue: cues, the recording reminder (every
``reminder_s`` from the start of recording) and the alarm of the highest-priority condition
(at once, then every ``alarm_repeat_s``). A burst that falls due while another plays waits for it.
Stealth turns every output off and drops beeps; it is refused unless the settings allow it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from recorder.errors import RecorderError

from .patterns import (ALARM_BEEPS, BEEPS_FOR_CUE, GREEN_FOR_CONDITION, GREEN_FOR_MODE, OFF,
                       RED_RECORDING, REMINDER_BEEPS, Condition, Cue, Mode, Pattern, to_us)
from .settings import BoardSettings

MAX_QUEUED_BURSTS = 4  # a struggle's flurry of markers must not turn into a minute of beeping


class StealthNotAllowedError(RecorderError, PermissionError):
    """Stealth was asked for, but the settings do not allow it."""


@dataclass(frozen=True)
class IndicatorStatus:
    """The state the controller wants shown. ``detail`` is a few words for a board that can
    show text (the terminal board), e.g. "uploaded, 2 kept" while docked; LEDs ignore it."""

    mode: Mode = Mode.BUFFERING
    conditions: frozenset[Condition] = field(default_factory=frozenset)
    stealth: bool = False
    detail: str = ""


@dataclass(frozen=True)
class Levels:
    red: bool
    green: bool
    beeper: bool


@dataclass
class _Track:
    pattern: Pattern
    start_us: int


class IndicatorPlan:
    """Levels of the three outputs over time; times are seconds on the board's clock."""

    def __init__(self, settings: BoardSettings, t: float = 0.0) -> None:
        self._settings = settings
        self._reminder_us = to_us(settings.reminder_s)
        self._alarm_us = to_us(settings.alarm_repeat_s)
        now = to_us(t)
        self._now = now
        self._status = IndicatorStatus()
        self._red = _Track(OFF, now)
        self._green = _Track(GREEN_FOR_MODE[Mode.BUFFERING], now)
        self._beeping: _Track | None = None
        self._queue: deque[Pattern] = deque()
        self._reminder_next: int | None = None
        self._alarm: Condition | None = None
        self._alarm_next: int | None = None

    @property
    def status(self) -> IndicatorStatus:
        return self._status

    def show(self, status: IndicatorStatus, t: float) -> None:
        """Show ``status`` from ``t``; raises StealthNotAllowedError if stealth is not allowed."""
        if status.stealth and not self._settings.stealth_allowed:
            raise StealthNotAllowedError(
                "stealth mode is not allowed by the settings: the LEDs and beeper stay on. "
                "An administrator can allow it with board.stealth_allowed = true")
        self.advance(t)
        now = to_us(t)
        old = self._status
        self._status = status
        if status.mode is Mode.RECORDING and old.mode is not Mode.RECORDING:
            self._red = _Track(RED_RECORDING, now)
            self._reminder_next = now + self._reminder_us
        elif status.mode is not Mode.RECORDING:
            self._red = _Track(OFF, now)
            self._reminder_next = None
        top = _top_condition(status.conditions)
        green = GREEN_FOR_CONDITION[top] if top is not None else GREEN_FOR_MODE[status.mode]
        if green != self._green.pattern:
            self._green = _Track(green, now)
        alarm = top if top in ALARM_BEEPS else None
        if alarm is not self._alarm:
            self._alarm = alarm
            self._alarm_next = now if alarm is not None else None
        if status.stealth:
            self._queue.clear()
            self._beeping = None
        self.advance(t)  # an alarm that falls due now starts now

    def cue(self, cue: Cue, t: float) -> None:
        """Play the one-shot beeps of ``cue`` (after any burst already playing)."""
        self.advance(t)
        self._enqueue(BEEPS_FOR_CUE[cue])
        self._run_beeper(to_us(t))

    def levels(self, t: float | None = None) -> Levels:
        """Levels at ``t`` (default: the last time advanced to). Call `advance` first."""
        now = self._now if t is None else to_us(t)
        if self._status.stealth:
            return Levels(False, False, False)
        beeping = self._beeping is not None and self._beeping.pattern.level(
            self._beeping.start_us, now)
        return Levels(self._red.pattern.level(self._red.start_us, now),
                      self._green.pattern.level(self._green.start_us, now), beeping)

    def next_deadline(self) -> float | None:
        """The next moment a level may change or a burst falls due, in seconds."""
        candidates = [
            self._red.pattern.next_change_us(self._red.start_us, self._now),
            self._green.pattern.next_change_us(self._green.start_us, self._now),
            self._reminder_next,
            self._alarm_next,
        ]
        if self._beeping is not None:
            candidates.append(self._beeping.pattern.next_change_us(self._beeping.start_us,
                                                                   self._now))
            candidates.append(self._beeping.start_us + self._beeping.pattern.burst_us)
        due = [c for c in candidates if c is not None and c > self._now]
        return min(due) / 1_000_000 if due else None

    def advance(self, t: float) -> None:
        """Let time pass to ``t``: start the bursts that fall due, in time order."""
        target = to_us(t)
        while True:
            steps = [s for s in (self._reminder_next, self._alarm_next, self._beeping_end())
                     if s is not None and s <= target]
            if not steps:
                break
            step = min(steps)
            self._now = max(self._now, step)
            if self._beeping is not None and self._beeping_end() == step:
                self._beeping = None
            if self._reminder_next == step:
                self._enqueue(REMINDER_BEEPS)
                self._reminder_next = step + self._reminder_us
            if self._alarm_next == step and self._alarm is not None:
                self._enqueue(ALARM_BEEPS[self._alarm])
                self._alarm_next = step + self._alarm_us
            self._run_beeper(step)
        self._now = max(self._now, target)

    def _beeping_end(self) -> int | None:
        if self._beeping is None:
            return None
        return self._beeping.start_us + self._beeping.pattern.burst_us

    def _enqueue(self, pattern: Pattern) -> None:
        if self._status.stealth or len(self._queue) >= MAX_QUEUED_BURSTS:
            return
        self._queue.append(pattern)

    def _run_beeper(self, now: int) -> None:
        if self._beeping is None and self._queue:
            self._beeping = _Track(self._queue.popleft(), now)


def _top_condition(conditions: frozenset[Condition]) -> Condition | None:
    return next((c for c in Condition if c in conditions), None)
