"""Access units (one encoded frame of one stream) and the ring's statistics record."""

from __future__ import annotations

from typing import NamedTuple

#: Stream numbers of an access unit.
VIDEO = 0
AUDIO = 1


class AccessUnit(NamedTuple):
    """One encoded frame: H.264 Annex B (video) or one raw AAC frame (audio)."""

    stream: int  # VIDEO or AUDIO
    pts_us: int  # microseconds on the one monotonic clock shared by both streams
    is_keyframe: bool  # video: an IDR access unit that decoding can start from
    payload: bytes


class RingStats(NamedTuple):
    """Counters of a PreEventRing. Units are access units; bytes are payload bytes."""

    units: int  # held now
    bytes: int  # held now
    video_units: int  # held now
    keyframes: int  # held now
    span_us: int  # pts of the newest held AU minus pts of the oldest (0 when empty)
    pushed_units: int  # accepted by push(), including AUs then skipped
    pushed_bytes: int
    consumed_units: int  # taken by pop()/drain()
    consumed_bytes: int
    evicted_units: int  # aged out while buffering: normal, not a loss
    evicted_bytes: int
    skipped_units: int  # video with no keyframe to decode from, dropped while buffering
    overrun_units: int  # lost while consuming: the writer fell behind. Data loss: report it
    overrun_bytes: int
