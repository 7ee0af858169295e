"""Orders the access units of video and audio by pts before they are muxed.

Capture threads push in arrival order, and arrival lags capture differently per stream (video
waits for its encoder, audio for a 1024-sample block), so an audio frame captured just after a
keyframe can arrive before it. Muxed in arrival order, that frame would land in the segment
before the cut. The interleaver holds each stream's units until the other stream has caught up
(or has been silent for ``max_wait_us`` of the other's time), then releases the earliest.
Each stream's own order is never changed; nothing is dropped.
"""

from __future__ import annotations

from collections import deque

from ..capture.access_unit import AUDIO, VIDEO, AccessUnit

# How far (in the other stream's time) a stream's units wait for a silent one: audio later than
# this reaches the muxer after the video it was captured with, and lands after a cut made there
MAX_WAIT_US = 500_000


class PtsInterleaver:
    """``push`` returns the units now ready, in pts order; ``flush`` returns the rest."""

    def __init__(self, streams: frozenset[int] = frozenset({VIDEO, AUDIO}),
                 max_wait_us: int = MAX_WAIT_US) -> None:
        self.streams = streams
        self.max_wait_us = max_wait_us
        self._queues: dict[int, deque[AccessUnit]] = {stream: deque() for stream in streams}
        # the same queues in stream order: of two heads with one pts, the lower stream goes first
        self._in_order = tuple(self._queues[stream] for stream in sorted(streams))
        self._newest_us: int | None = None

    def push(self, unit: AccessUnit) -> list[AccessUnit]:
        queue = self._queues.get(unit.stream)
        if queue is None:  # a stream we do not interleave passes straight through
            return [unit]
        queue.append(unit)
        newest = self._newest_us
        if newest is None or unit.pts_us > newest:
            self._newest_us = newest = unit.pts_us
        ready = []
        while True:  # written out, not with min(): this runs for every unit the camera records
            earliest: deque[AccessUnit] | None = None  # the queue whose head has the lowest pts
            everyone_here = True
            for candidate in self._in_order:
                if not candidate:
                    everyone_here = False
                elif earliest is None or candidate[0].pts_us < earliest[0].pts_us:
                    earliest = candidate
            if earliest is None:
                break
            stale = newest - earliest[0].pts_us >= self.max_wait_us
            if not (everyone_here or stale):
                break
            ready.append(earliest.popleft())
        return ready

    def flush(self) -> list[AccessUnit]:
        rest = self.pending()
        for queue in self._queues.values():
            queue.clear()
        rest.sort(key=lambda u: (u.pts_us, u.stream))
        return rest

    def pending(self) -> list[AccessUnit]:
        """The units held now."""
        return [unit for queue in self._queues.values() for unit in queue]

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())
