"""The board's gpiozero devices: `RecordButton`, `AuxTrigger`, `DockSense` and `Indicators`.

Each composes gpiozero devices built with the injected pin factory, closes them in `close()`, and
works as a context manager. GPIO callbacks (on gpiozero's threads) only take a timestamp, update a
pure state machine under a lock and hand events to ``sink``; timing (holds, blinking, beeps) is
done by `BoardLoop` calling `advance` at each `next_deadline`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from types import TracebackType

from gpiozero import LED, Button, Buzzer, DigitalInputDevice
from gpiozero.pins import Factory

from .events import BoardEvent, BoardEventKind
from .gestures import GestureMachine
from .indicator_plan import IndicatorPlan, IndicatorStatus, Levels
from .patterns import Cue
from .settings import BoardSettings

Clock = Callable[[], float]
EventSink = Callable[[BoardEvent], None]


class _Closing:
    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> _Closing:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class RecordButton(_Closing):
    """The record button on ``settings.button_pin`` (to ground, internal pull-up).

    Double press starts, hold stops, single press while recording marks; see
    `recorder.board.gestures` for the exact rules. Events go to ``sink``.
    """

    def __init__(self, settings: BoardSettings, sink: EventSink, *,
                 pin_factory: Factory | None = None, clock: Clock = time.monotonic,
                 wake: Callable[[], None] = lambda: None) -> None:
        self._machine = GestureMachine(settings)
        self._lock = threading.Lock()
        self._sink = sink
        self._clock = clock
        self._wake = wake
        # bounce_time=None: debouncing is the gesture machine's, identical on every pin factory
        self.device = Button(settings.button_pin, pull_up=True, bounce_time=None,
                             pin_factory=pin_factory)
        self.device.when_pressed = self._pressed
        self.device.when_released = self._released

    @property
    def recording(self) -> bool:
        with self._lock:
            return self._machine.recording

    def set_recording(self, recording: bool) -> None:
        with self._lock:
            self._machine.set_recording(recording)
        self._wake()

    def trigger(self, source: str) -> None:
        """An auxiliary input fired: start, or a marker while recording."""
        with self._lock:
            events = self._machine.trigger(source, self._clock())
        self._emit(events)

    def next_deadline(self) -> float | None:
        with self._lock:
            return self._machine.next_deadline()

    def advance(self, t: float) -> None:
        with self._lock:
            events = self._machine.advance(t)
        self._emit(events)

    def close(self) -> None:
        self.device.close()

    def _pressed(self) -> None:
        self._edge(True)

    def _released(self) -> None:
        self._edge(False)

    def _edge(self, pressed: bool) -> None:
        with self._lock:
            events = self._machine.edge(pressed, self._clock())
        self._emit(events)

    def _emit(self, events: list[BoardEvent]) -> None:
        for event in events:
            self._sink(event)
        self._wake()


class AuxTrigger(_Closing):
    """An auxiliary start input (holster sensor, external trigger) on one pin."""

    def __init__(self, pin: int, button: RecordButton, *, active_low: bool = True,
                 name: str | None = None, pin_factory: Factory | None = None) -> None:
        self.name = name or f"aux-gpio{pin}"
        self._button = button
        self.device = DigitalInputDevice(pin, pull_up=active_low, pin_factory=pin_factory)
        self.device.when_activated = self._activated

    def _activated(self) -> None:
        self._button.trigger(self.name)

    def close(self) -> None:
        self.device.close()


class DockSense(_Closing):
    """The input that says the camera sits in its dock (pin and polarity from the settings)."""

    def __init__(self, pin: int, sink: EventSink, *, active_low: bool = True,
                 pin_factory: Factory | None = None, clock: Clock = time.monotonic) -> None:
        self._sink = sink
        self._clock = clock
        self.device = DigitalInputDevice(pin, pull_up=active_low, pin_factory=pin_factory)
        self.device.when_activated = self._docked
        self.device.when_deactivated = self._undocked

    @property
    def docked(self) -> bool:
        return bool(self.device.is_active)

    def _docked(self) -> None:
        self._sink(BoardEvent(BoardEventKind.DOCKED, self._clock(), "dock"))

    def _undocked(self) -> None:
        self._sink(BoardEvent(BoardEventKind.UNDOCKED, self._clock(), "dock"))

    def close(self) -> None:
        self.device.close()


class Indicators(_Closing):
    """Red recording LED, green status LED and an active buzzer, driven by an `IndicatorPlan`.

    `show` raises StealthNotAllowedError when stealth is asked for but not allowed; the caller
    (the controller) writes every accepted toggle to the manifest.
    """

    def __init__(self, settings: BoardSettings, *, pin_factory: Factory | None = None,
                 clock: Clock = time.monotonic, wake: Callable[[], None] = lambda: None) -> None:
        self._clock = clock
        self._wake = wake
        self._lock = threading.Lock()
        self._plan = IndicatorPlan(settings, clock())
        with contextlib.ExitStack() as made:  # a pin in use: free the LEDs made before it
            self.red = LED(settings.red_led_pin, pin_factory=pin_factory)
            made.callback(self.red.close)
            self.green = LED(settings.green_led_pin, pin_factory=pin_factory)
            made.callback(self.green.close)
            self.beeper = Buzzer(settings.buzzer_pin, pin_factory=pin_factory)
            made.pop_all()
        self._write(self._plan.levels())

    @property
    def status(self) -> IndicatorStatus:
        with self._lock:
            return self._plan.status

    def show(self, status: IndicatorStatus) -> None:
        with self._lock:
            self._plan.show(status, self._clock())
            self._write(self._plan.levels())
        self._wake()

    def cue(self, cue: Cue) -> None:
        with self._lock:
            self._plan.cue(cue, self._clock())
            self._write(self._plan.levels())
        self._wake()

    def next_deadline(self) -> float | None:
        with self._lock:
            return self._plan.next_deadline()

    def advance(self, t: float) -> None:
        with self._lock:
            self._plan.advance(t)
            self._write(self._plan.levels())

    def levels(self) -> Levels:
        return Levels(bool(self.red.value), bool(self.green.value), bool(self.beeper.value))

    def _write(self, levels: Levels) -> None:
        for device, level in ((self.red, levels.red), (self.green, levels.green),
                              (self.beeper, levels.beeper)):
            if bool(device.value) != level:
                device.value = level

    def close(self) -> None:
        for device in (self.red, self.green, self.beeper):
            device.close()
