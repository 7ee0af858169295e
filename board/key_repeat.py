"""A key held down on a terminal, told apart from key presses: a pure state machine on key times.

A terminal never says when a key goes up. A held key arrives as a stream: the key, then after
the keyboard's repeat delay (about 250 to 660 ms) a repeat, then a repeat every 30 to 50 ms for
as long as it is held. `KeyRepeat` turns the arrival times of one key into the press and release
edges of a button:

- The first key is a press. If no second key comes within ``delay_s``, it was a single press:
  released at once.
- A second key within ``delay_s`` may be the first repeat or a second press. If a third key
  follows it within ``gap_s``, the keys are a repeat stream: the button is held from the first
  key, and released ``gap_s`` after the last key of the stream. If not, they were two presses.
- In a stream, each key within ``gap_s`` of the one before keeps the button down.

A press is decided only a little later than it happens, so edges come out late but stamped
with the time they belong to. ``horizon`` is the time up to which the edges are final: whoever
interprets the edges (the gesture machine) must not be advanced past it.
"""

from __future__ import annotations

DEFAULT_DELAY_S = 0.7   # longer than any usual first-repeat delay (X11: 660 ms, GNOME: 500 ms)
DEFAULT_GAP_S = 0.15    # three times the slowest usual repeat interval; faster than any tapping

Edge = tuple[bool, float]  # (pressed, t)


class KeyRepeat:
    """Press and release edges of a button, from the arrival times of one terminal key."""

    def __init__(self, delay_s: float = DEFAULT_DELAY_S, gap_s: float = DEFAULT_GAP_S) -> None:
        if not 0 < gap_s < delay_s:
            raise ValueError(f"need 0 < gap_s < delay_s, not gap_s={gap_s} delay_s={delay_s}")
        self.delay_s = delay_s
        self.gap_s = gap_s
        self._press_t: float | None = None     # start of the press in progress
        self._last_t = 0.0                     # the last key of a stream
        self._candidate_t: float | None = None  # a second key: a repeat, or a second press?
        self._streaming = False

    @property
    def pressed(self) -> bool:
        """Whether a press is in progress (decided or not)."""
        return self._press_t is not None

    @property
    def horizon(self) -> float | None:
        """The time up to which the edges given out are final; None when nothing is pending."""
        if self._press_t is None:
            return None
        return self._last_t + self.gap_s if self._streaming else self._press_t

    def next_deadline(self) -> float | None:
        """When `advance` must next run to decide what the keys so far were."""
        if self._press_t is None:
            return None
        if self._streaming:
            return self._last_t + self.gap_s
        if self._candidate_t is not None:
            return self._candidate_t + self.gap_s
        return self._press_t + self.delay_s

    def key(self, t: float) -> list[Edge]:
        """The key arrived at ``t`` seconds; returns the edges now decided, in time order."""
        edges = self.advance(t)
        if self._press_t is None:
            self._press_t = t
            edges.append((True, t))
        elif self._streaming:
            self._last_t = t
        elif self._candidate_t is None:
            self._candidate_t = t
        else:  # a third key close behind the second: the key is being held
            self._streaming = True
            self._candidate_t = None
            self._last_t = t
        return edges

    def advance(self, t: float) -> list[Edge]:
        """Let time pass to ``t``: decide every key whose deadline is at or before it."""
        edges: list[Edge] = []
        while (deadline := self.next_deadline()) is not None and deadline <= t:
            assert self._press_t is not None
            if self._streaming:  # the stream stopped: the key went up
                edges.append((False, deadline))
                self._press_t = None
                self._streaming = False
            elif self._candidate_t is not None:  # two presses: the second may begin a hold
                edges += [(False, self._press_t), (True, self._candidate_t)]
                self._press_t, self._candidate_t = self._candidate_t, None
            else:  # a single press
                edges.append((False, self._press_t))
                self._press_t = None
        return edges
