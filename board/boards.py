"""The board protocol the controller uses, and its three boards: GPIO, terminal and scripted.

Events come in (`get_event`), indicator states go out (`show`, `cue`). `show` also tells the
button whether the recorder is recording: the controller's word is the truth (a start that
failed, a stop from elsewhere). Every board has `close()` and is a context manager.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, TextIO, TypeVar

from gpiozero.pins import Factory

from .devices import AuxTrigger, DockSense, Indicators, RecordButton
from .events import BoardEvent, BoardEventKind
from .gestures import GestureMachine
from .indicator_plan import IndicatorPlan, IndicatorStatus, Levels
from .key_repeat import KeyRepeat
from .loop import BoardLoop, ManualClock
from .patterns import Cue, Mode
from .settings import BoardSettings

Clock = Callable[[], float]


class _Closable(Protocol):
    def close(self) -> None: ...


_Part = TypeVar("_Part", bound=_Closable)


def _closed_on_failure(made: contextlib.ExitStack[bool | None], part: _Part) -> _Part:
    """``part``, to be closed when ``made`` unwinds on a failure."""
    made.callback(part.close)
    return part


class Board(Protocol):
    """What the controller needs of a board."""

    @property
    def docked(self) -> bool: ...

    def get_event(self, timeout: float | None = None) -> BoardEvent | None:
        """The next event, waiting up to ``timeout`` seconds (None: forever); None on timeout."""

    def show(self, status: IndicatorStatus) -> None:
        """Show ``status``; raises StealthNotAllowedError if stealth is asked but not allowed."""

    def cue(self, cue: Cue) -> None: ...

    def close(self) -> None: ...


class _BoardBase:
    """The event queue and the context-manager plumbing every board shares."""

    def __init__(self) -> None:
        self._events: queue.Queue[BoardEvent] = queue.Queue()

    def get_event(self, timeout: float | None = None) -> BoardEvent | None:
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def pending_events(self) -> list[BoardEvent]:
        """Every event waiting now, without blocking."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> _BoardBase:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class GpioBoard(_BoardBase):
    """The real board: gpiozero devices on the pins of ``settings``.

    ``pin_factory`` None means gpiozero's default (lgpio on a Pi). With a `ManualClock` and
    ``run_thread=False`` nothing runs in the background: call ``loop.run_until(t)`` (tests).
    """

    def __init__(self, settings: BoardSettings, *, pin_factory: Factory | None = None,
                 clock: Clock = time.monotonic, run_thread: bool = True) -> None:
        super().__init__()
        self.loop = BoardLoop([], clock)
        # A part that fails (a pin in use, a bad pin) must not leave the parts before it holding
        # their pins: each part made is closed again unless the whole board is made.
        with contextlib.ExitStack() as made:
            self.button = _closed_on_failure(made, RecordButton(
                settings, self._events.put, pin_factory=pin_factory, clock=clock,
                wake=self.loop.wake))
            self.aux = [_closed_on_failure(made, AuxTrigger(
                pin, self.button, active_low=settings.aux_active_low, pin_factory=pin_factory))
                for pin in settings.aux_pins]
            self.dock = (_closed_on_failure(made, DockSense(
                settings.dock_pin, self._events.put, pin_factory=pin_factory,
                active_low=settings.dock_active_low, clock=clock))
                if settings.dock_pin is not None else None)
            self.indicators = _closed_on_failure(made, Indicators(
                settings, pin_factory=pin_factory, clock=clock, wake=self.loop.wake))
            self.loop.add(self.button)
            self.loop.add(self.indicators)
            if run_thread:
                self.loop.start()
            made.pop_all()

    @property
    def docked(self) -> bool:
        return self.dock is not None and self.dock.docked

    def show(self, status: IndicatorStatus) -> None:
        self.indicators.show(status)
        self.button.set_recording(status.mode is Mode.RECORDING)

    def cue(self, cue: Cue) -> None:
        self.indicators.cue(cue)

    def close(self) -> None:
        self.loop.close()
        for part in [self.button, *self.aux, self.dock, self.indicators]:
            if part is not None:
                part.close()


class _VirtualBoard(_BoardBase):
    """A board with no GPIO: the gesture machine and indicator plan behind plain method calls."""

    def __init__(self, settings: BoardSettings, clock: Clock) -> None:
        super().__init__()
        self.settings = settings
        self._clock = clock
        self._lock = threading.RLock()
        self._machine = GestureMachine(settings)
        self._plan = IndicatorPlan(settings, clock())
        self._docked = False
        self._shown = self._plan.levels()
        self.loop = BoardLoop([self], clock)

    @property
    def docked(self) -> bool:
        return self._docked

    def press(self) -> None:
        self._button(True)

    def release(self) -> None:
        self._button(False)

    def trigger(self, source: str = "aux") -> None:
        with self._lock:
            self._put(self._machine.trigger(source, self._clock()))

    def set_docked(self, docked: bool) -> None:
        with self._lock:
            if docked != self._docked:
                self._docked = docked
                kind = BoardEventKind.DOCKED if docked else BoardEventKind.UNDOCKED
                self._events.put(BoardEvent(kind, self._clock(), "dock"))

    def request_stealth_toggle(self) -> None:
        self._events.put(BoardEvent(BoardEventKind.STEALTH_TOGGLE, self._clock(), "user"))

    def show(self, status: IndicatorStatus) -> None:
        with self._lock:
            self._plan.show(status, self._clock())
            self._machine.set_recording(status.mode is Mode.RECORDING)
            self._render()
        self.loop.wake()

    def cue(self, cue: Cue) -> None:
        with self._lock:
            self._plan.cue(cue, self._clock())
            self._render()
        self.loop.wake()

    def levels(self) -> Levels:
        with self._lock:
            return self._shown

    def next_deadline(self) -> float | None:
        with self._lock:
            deadlines = [d for d in (self._machine.next_deadline(), self._plan.next_deadline())
                         if d is not None]
            return min(deadlines) if deadlines else None

    def advance(self, t: float) -> None:
        with self._lock:
            self._put(self._machine.advance(t))
            self._plan.advance(t)
            self._render()

    def close(self) -> None:
        self.loop.close()

    def _button(self, pressed: bool) -> None:
        with self._lock:
            self._put(self._machine.edge(pressed, self._clock()))
        self.loop.wake()

    def _put(self, events: Iterable[BoardEvent]) -> None:
        for event in events:
            self._events.put(event)

    def _render(self) -> None:
        levels = self._plan.levels()
        if levels != self._shown:
            previous, self._shown = self._shown, levels
            self._draw(previous, levels)

    def _draw(self, previous: Levels, levels: Levels) -> None:
        """Subclasses show the new levels; the scripted board only records them."""


@dataclass(frozen=True)
class ScriptStep:
    """At ``t`` seconds after the board was made: ``press``, ``release``, ``tap`` (press and
    release), ``hold`` (press now, release after the hold time), ``trigger``, ``dock``, ``undock``.
    """

    t: float
    action: str
    source: str = "aux"


_ACTIONS = ("press", "release", "tap", "hold", "trigger", "dock", "undock")


class ScriptedBoard(_VirtualBoard):
    """A board that plays a script of button actions (`bwv record`, tests) and keeps a history of
    every level change as ``(t, Levels)``."""

    def __init__(self, settings: BoardSettings, script: Sequence[ScriptStep] = (), *,
                 clock: Clock | None = None, run_thread: bool | None = None) -> None:
        clock = clock if clock is not None else time.monotonic
        super().__init__(settings, clock)
        self.history: list[tuple[float, Levels]] = [(clock(), self._shown)]
        steps: list[ScriptStep] = []
        for step in script:
            if step.action not in _ACTIONS:
                raise ValueError(f"script action {step.action!r} is not one of {', '.join(_ACTIONS)}")
            if step.action == "tap":
                steps += [ScriptStep(step.t, "press"), ScriptStep(step.t + 0.1, "release")]
            elif step.action == "hold":
                steps += [ScriptStep(step.t, "press"),
                          ScriptStep(step.t + settings.hold_s + 0.1, "release")]
            else:
                steps.append(step)
        origin = clock()
        self._script = sorted((ScriptStep(origin + s.t, s.action, s.source) for s in steps),
                              key=lambda s: s.t)
        if run_thread if run_thread is not None else not isinstance(clock, ManualClock):
            self.loop.start()

    def next_deadline(self) -> float | None:
        with self._lock:
            own = super().next_deadline()
            if self._script:
                return self._script[0].t if own is None else min(own, self._script[0].t)
            return own

    def advance(self, t: float) -> None:
        with self._lock:
            while self._script and self._script[0].t <= t:
                step = self._script.pop(0)
                super().advance(step.t)
                self._play(step)
            super().advance(t)

    def _play(self, step: ScriptStep) -> None:
        if step.action in ("press", "release"):
            self._put(self._machine.edge(step.action == "press", step.t))
        elif step.action == "trigger":
            self._put(self._machine.trigger(step.source, step.t))
        else:
            self.set_docked(step.action == "dock")

    def _draw(self, previous: Levels, levels: Levels) -> None:
        self.history.append((self._clock(), levels))


KEYS_HELP = ("space: button (double press: start; hold {hold_s:g} s: stop)  h: hold  "
             "a: aux trigger  d: dock/undock  s: stealth  (Ctrl-C quits)")


class TerminalBoard(_VirtualBoard):
    """The desktop board: keys are the button, and the LEDs and beeper are drawn on one status
    line of ``output``; each beep also rings the terminal bell.

    Keys: space is the button. A terminal reports no key going up, so a held space (the
    terminal's key repeat) is told apart from presses by `KeyRepeat`: holding space holds the
    button, a tap is a press and release. ``h`` holds the button for the hold time; ``a`` is an
    auxiliary trigger; ``d`` docks/undocks; ``s`` asks for stealth. ``input_fd`` is put in
    cbreak mode while the board is open if it is a terminal. A keyboard does not bounce, so the
    button has no debounce time here. When ``output`` goes away (the terminal was closed), the
    board stops drawing and carries on.
    """

    def __init__(self, settings: BoardSettings, *, input_fd: int | None = None,
                 output: TextIO | None = None, clock: Clock = time.monotonic,
                 run_thread: bool = True, key_repeat: KeyRepeat | None = None) -> None:
        super().__init__(settings, clock)
        self._machine = GestureMachine(dataclasses.replace(settings, debounce_s=0.0))
        self._space = key_repeat if key_repeat is not None else KeyRepeat()
        self._fd = sys.stdin.fileno() if input_fd is None else input_fd
        self._out: TextIO | None = output if output is not None else sys.stdout
        self._release_at: float | None = None
        self._drawn_text = ""
        self._saved_tty: list[Any] | None = None
        if os.isatty(self._fd):
            self._saved_tty = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)
        self._write(KEYS_HELP.format(hold_s=settings.hold_s) + "\n")
        self._draw(self._shown, self._shown)
        self._reader = threading.Thread(target=self._read_keys, name="bwv-terminal-keys",
                                        daemon=True)
        if run_thread:
            self.loop.start()
            self._reader.start()

    def feed(self, keys: str, t: float | None = None) -> None:
        """Act on ``keys`` as if typed at ``t`` (default: now); the reader thread calls this."""
        for key in keys:
            if key == " ":
                with self._lock:
                    now = self._clock() if t is None else t
                    self._edges(self._space.key(now))
                    self._advance_machine(now)
                self.loop.wake()
            elif key == "h":
                with self._lock:
                    self.press()
                    self._release_at = self._clock() + self.settings.hold_s + 0.1
                self.loop.wake()
            elif key == "a":
                self.trigger("terminal")
            elif key == "d":
                self.set_docked(not self.docked)
            elif key == "s":
                self.request_stealth_toggle()

    def next_deadline(self) -> float | None:
        with self._lock:
            horizon = self._space.horizon
            machine = self._machine.next_deadline()
            if machine is not None and horizon is not None and machine > horizon:
                machine = None  # the key stream decides first; its deadline comes before
            candidates = [machine, self._plan.next_deadline(), self._space.next_deadline(),
                          self._release_at]
            deadlines = [d for d in candidates if d is not None]
            return min(deadlines) if deadlines else None

    def advance(self, t: float) -> None:
        with self._lock:
            if self._release_at is not None and self._release_at <= t:
                self._advance_machine(self._release_at)
                self._put(self._machine.edge(False, self._release_at))
                self._release_at = None
            self._edges(self._space.advance(t))
            self._advance_machine(t)
            self._plan.advance(t)
            self._render()

    def close(self) -> None:
        super().close()
        if self._saved_tty is not None:
            try:
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved_tty)
            except termios.error:
                pass  # the terminal is gone: nothing to restore
            self._saved_tty = None
        self._write("\n")

    def _edges(self, edges: list[tuple[bool, float]]) -> None:
        for pressed, t in edges:
            self._put(self._machine.edge(pressed, t))

    def _advance_machine(self, t: float) -> None:
        """Advance the gestures to ``t``, but not past what the key stream has decided."""
        horizon = self._space.horizon
        self._put(self._machine.advance(t if horizon is None else min(t, horizon)))

    def _read_keys(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 64)
            except OSError:
                return
            if not data:
                return
            self.feed(data.decode("utf-8", "replace"))

    def _render(self) -> None:
        levels = self._plan.levels()
        if levels != self._shown or status_text(self._plan.status) != self._drawn_text:
            previous, self._shown = self._shown, levels
            self._draw(previous, levels)

    def _draw(self, previous: Levels, levels: Levels) -> None:
        self._drawn_text = status_text(self._plan.status)
        bell = "\a" if levels.beeper and not previous.beeper else ""
        self._write(f"\r[{'REC' if levels.red else '   '}] red {'●' if levels.red else '○'}  "
                    f"green {'●' if levels.green else '○'}  beep {'♪' if levels.beeper else ' '}  "
                    f"{self._drawn_text}\x1b[K{bell}")

    def _write(self, text: str) -> None:
        """Write to the output; once it fails (a closed terminal), stop drawing."""
        if self._out is None:
            return
        try:
            self._out.write(text)
            self._out.flush()
        except (OSError, ValueError):
            self._out = None


def status_text(status: IndicatorStatus) -> str:
    """The status in words, as the terminal board shows it: "recording: ok",
    "docked: uploading", "buffering (stealth): storage full"."""
    conditions = ", ".join(c.value for c in status.conditions)
    stealth = " (stealth)" if status.stealth else ""
    if status.mode in (Mode.UPLOADING, Mode.DOCKED):
        detail = status.detail or status.mode.value
        return f"docked{stealth}: {detail}" + (f" ({conditions})" if conditions else "")
    return f"{status.mode.value}{stealth}: {conditions or 'ok'}"
