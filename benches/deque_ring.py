"""The baseline: a pre-event buffer built as picamera2's CircularOutput2 builds it.

A `collections.deque` of `(stream, timestamp, keyframe, frame)` tuples holding the `bytes` object
it is given (as CircularOutput2 keeps the encoder's: picamera2's one copy, out of the encoder's
mmap buffer, is made before its output sees the frame), trimmed by duration from the left, then
forward to the next keyframe. A stand-in for the piece-sized benches of bench_ring.py; the real
CircularOutput2 is measured in bench_ring_anchor.py.
"""

from __future__ import annotations

from collections import deque


class DequeRing:
    def __init__(self, seconds: float) -> None:
        self.duration_us = int(seconds * 1_000_000)
        self.frames: deque[tuple[int, int, bool, bytes]] = deque()

    def push(self, stream: int, pts_us: int, is_keyframe: bool, payload: bytes) -> None:
        frames = self.frames
        frames.append((stream, pts_us, is_keyframe, payload))
        if pts_us - frames[0][1] > self.duration_us:
            frames.popleft()
            while frames and not frames[0][2]:
                frames.popleft()

    def drain(self) -> list[tuple[int, int, bool, bytes]]:
        frames = list(self.frames)
        self.frames.clear()
        return frames
