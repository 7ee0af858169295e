"""The record button's gestures as a pure state machine on edge timestamps: no threads, no clock.

Feed it accepted pin edges (`edge`), auxiliary triggers (`trigger`) and the passing of time
(`advance`); it returns the `BoardEvent`s they cause. `next_deadline` says when `advance` must next
be called (a hold completing, a debounce settling, a stop confirmation running out). The rules:

- While buffering, a press that starts within ``double_press_s`` of the previous press (press to
  press, edge inclusive) starts recording, at once, on that second press.
- The presses of the burst that started recording (each within the window of the one before)
  are part of the start gesture: no markers, and holding one of them does not stop.
- While recording, a press released before ``hold_s`` is a marker (stamped with the press time);
  a press held for ``hold_s`` stops. With ``stop_confirmation`` the first hold only arms the stop
  (STOP_ARMED); a second hold whose press begins within ``stop_confirm_window_s`` stops, else the
  arming lapses (STOP_DISARMED).
- After a stop the rest of that press is ignored. Edges within ``debounce_s`` of the previous
  accepted edge are ignored; if the pin then settled on the other level, that level is taken when
  the debounce time ends.
- An auxiliary trigger starts recording while buffering and adds a marker while recording.
"""

from __future__ import annotations

import enum

from .events import BoardEvent, BoardEventKind
from .settings import BoardSettings


class _Role(enum.Enum):
    """What the press in progress means."""

    NONE = "none"            # no press, or one to ignore to its end (after a stop)
    IDLE = "idle"            # a press while buffering: maybe the first of a double press
    START_BURST = "burst"    # part of the burst that started recording
    RECORDING = "recording"  # a press while recording: a marker, or a hold if it lasts
    HELD = "held"            # its hold has fired


class GestureMachine:
    """Gestures of one record button plus any auxiliary triggers; see the module docstring."""

    def __init__(self, settings: BoardSettings) -> None:
        self._double_s = settings.double_press_s
        self._hold_s = settings.hold_s
        self._debounce_s = settings.debounce_s
        self._confirm = settings.stop_confirmation
        self._confirm_s = settings.stop_confirm_window_s
        self._pressed = False          # accepted level
        self._raw = False              # last level the pin reported
        self._settle_at: float | None = None
        self._role = _Role.NONE
        self._press_t = 0.0
        self._recording = False
        self._last_idle_press: float | None = None
        self._burst_last: float | None = None
        self._armed_until: float | None = None
        self._last_trigger: dict[str, float] = {}

    @property
    def recording(self) -> bool:
        return self._recording

    @property
    def pressed(self) -> bool:
        return self._pressed

    @property
    def stop_armed(self) -> bool:
        return self._armed_until is not None

    def set_recording(self, recording: bool) -> None:
        """The controller's word on whether it records (a failed start, a stop from elsewhere)."""
        if recording == self._recording:
            return
        self._recording = recording
        self._last_idle_press = None
        self._burst_last = None
        self._armed_until = None
        if self._pressed:
            self._role = _Role.NONE  # a press that began in the other state means nothing now

    def edge(self, pressed: bool, t: float) -> list[BoardEvent]:
        """The pin reports the button pressed (True) or released (False) at ``t`` seconds."""
        events = self.advance(t)
        self._raw = pressed
        if self._settle_at is None and pressed != self._pressed:
            self._accept(pressed, t, events)
        return events

    def trigger(self, source: str, t: float) -> list[BoardEvent]:
        """An auxiliary input (holster sensor, external trigger) went active at ``t``."""
        events = self.advance(t)
        last = self._last_trigger.get(source)
        if last is not None and t - last < self._debounce_s:
            return events
        self._last_trigger[source] = t
        if self._recording:
            events.append(BoardEvent(BoardEventKind.MARKER, t, source))
        else:
            self.set_recording(True)
            events.append(BoardEvent(BoardEventKind.START, t, source))
        return events

    def next_deadline(self) -> float | None:
        """When `advance` must next run, in seconds on the same clock, or None if nothing waits."""
        deadlines = [d for d in (self._settle_at, self._hold_deadline(), self._disarm_deadline())
                     if d is not None]
        return min(deadlines) if deadlines else None

    def advance(self, t: float) -> list[BoardEvent]:
        """Let time pass to ``t``: fire every deadline at or before it, in order."""
        events: list[BoardEvent] = []
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > t:
                return events
            if deadline == self._settle_at:
                self._settle_at = None
                if self._raw != self._pressed:
                    self._accept(self._raw, deadline, events)
            elif deadline == self._hold_deadline():
                self._hold(deadline, events)
            else:
                self._armed_until = None
                events.append(BoardEvent(BoardEventKind.STOP_DISARMED, deadline))

    def _hold_deadline(self) -> float | None:
        if self._pressed and self._role is _Role.RECORDING:
            return self._press_t + self._hold_s
        return None

    def _disarm_deadline(self) -> float | None:
        if self._armed_until is None:
            return None
        if self._pressed and self._role is _Role.RECORDING and self._press_t <= self._armed_until:
            return None  # a press that may become the confirming hold: wait for it
        return self._armed_until

    def _accept(self, pressed: bool, t: float, events: list[BoardEvent]) -> None:
        self._pressed = pressed
        if self._debounce_s > 0:
            self._settle_at = t + self._debounce_s
        if pressed:
            self._press(t, events)
        else:
            self._release(t, events)

    def _press(self, t: float, events: list[BoardEvent]) -> None:
        self._press_t = t
        if not self._recording:
            if self._last_idle_press is not None and t - self._last_idle_press <= self._double_s:
                self.set_recording(True)
                self._burst_last = t
                self._role = _Role.START_BURST
                events.append(BoardEvent(BoardEventKind.START, t))
            else:
                self._last_idle_press = t
                self._role = _Role.IDLE
        elif self._burst_last is not None and t - self._burst_last <= self._double_s:
            self._burst_last = t
            self._role = _Role.START_BURST
        else:
            self._burst_last = None
            self._role = _Role.RECORDING

    def _release(self, t: float, events: list[BoardEvent]) -> None:
        if self._role is _Role.RECORDING:
            events.append(BoardEvent(BoardEventKind.MARKER, self._press_t))
            if self._armed_until is not None and t > self._armed_until:
                self._armed_until = None
                events.append(BoardEvent(BoardEventKind.STOP_DISARMED, t))
        self._role = _Role.NONE

    def _hold(self, t: float, events: list[BoardEvent]) -> None:
        self._role = _Role.HELD
        if self._confirm and self._armed_until is None:
            self._armed_until = t + self._confirm_s
            events.append(BoardEvent(BoardEventKind.STOP_ARMED, t))
            return
        self.set_recording(False)
        self._role = _Role.NONE
        events.append(BoardEvent(BoardEventKind.STOP, t))
