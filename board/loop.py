"""The board's one timing thread, and the manual clock that replaces it in tests.

Parts of a board (button gestures, indicator patterns, a script) are `Timed`: they say when they
next need attention and do their work in `advance`. `BoardLoop` sleeps until the earliest deadline
or until woken by an input (a GPIO callback, a `show`), then advances every part. In tests,
`BoardLoop.run_until` with a `ManualClock` steps through the same deadlines with no thread, so
every time is exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol


class Timed(Protocol):
    def next_deadline(self) -> float | None: ...

    def advance(self, t: float) -> None: ...


class ManualClock:
    """A monotonic clock that moves only when told; call it for the time in seconds."""

    def __init__(self, t: float = 0.0) -> None:
        self._t = t

    def __call__(self) -> float:
        return self._t

    def set(self, t: float) -> None:
        if t < self._t:
            raise ValueError(f"a monotonic clock cannot go back from {self._t} to {t}")
        self._t = t


class BoardLoop:
    """Advances the parts at their deadlines, from its own thread (`start`) or by `run_until`."""

    def __init__(self, parts: Sequence[Timed], clock: Callable[[], float] = time.monotonic) -> None:
        self._parts = list(parts)
        self._clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    def add(self, part: Timed) -> None:
        self._parts.append(part)
        self.wake()

    def wake(self) -> None:
        """Something changed (thread-safe): recompute the next deadline now."""
        self._wake.set()

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (p.next_deadline() for p in self._parts) if d is not None]
        return min(deadlines) if deadlines else None

    def step(self) -> None:
        """Advance every part to the clock's present."""
        now = self._clock()
        for part in self._parts:
            part.advance(now)

    def run_until(self, t: float) -> None:
        """Manual mode: step through every deadline up to ``t`` on a ManualClock, then to ``t``."""
        if not isinstance(self._clock, ManualClock):
            raise TypeError("run_until needs the loop to run on a ManualClock")
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > t:
                break
            self._clock.set(max(deadline, self._clock()))
            self.step()
        self._clock.set(t)
        self.step()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the board loop is already running")
        self._thread = threading.Thread(target=self._run, name="bwv-board", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                self.step()
                deadline = self.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - self._clock())
                self._wake.wait(timeout)
        except BaseException as exc:  # kept for the controller to report; the LEDs stop here
            self.failure = exc
            raise
