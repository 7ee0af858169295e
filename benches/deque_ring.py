"""The baseline: a pre-event buffer as picamera2's CircularOutput2 builds it.

A `collections.deque` of `(bytes, keyframe, timestamp)` tuples, one fresh `bytes` copy per frame
(picamera2 copies each frame out of the encoder's mmap buffer; so does this, through memoryview),
trimmed by duration from the left, then forward to the next keyframe.
"""

from __future__ import annotations

from collections import deque


class DequeRing:
    def __init__(self, seconds: float) -> None:
        self.duration_us = int(seconds * 1_000_000)
        self.frames: deque[tuple[int, int, bool, bytes]] = deque()

    def push(self, stream: int, pts_us: int, is_keyframe: bool, payload: bytes) -> None:
        frames = self.frames
        frames.append((stream, pts_us, is_keyframe, bytes(memoryview(payload))))
        if pts_us - frames[0][1] > self.duration_us:
            frames.popleft()
            while frames and not frames[0][2]:
                frames.popleft()

    def drain(self) -> list[tuple[int, int, bool, bytes]]:
        frames = list(self.frames)
        self.frames.clear()
        return frames
