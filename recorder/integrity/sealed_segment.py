"""The record of one sealed segment file: what the SegmentWriter reports and the manifest stores."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SealedSegment:
    """One segment of a recording, flushed, fsynced, renamed into place and hashed.

    The field names are the keys of the manifest's ``segment`` line (docs/formats.md).
    """

    index: int  # 1-based position in the recording
    file: str  # file name inside the recording directory, e.g. "000001.mp4"
    bytes: int  # size of the file
    sha256: str  # lower-case hex SHA-256 of the file's bytes, computed while writing
    # pts of the segment's first and last *video* frames, on the monotonic clock: audio frames
    # straddle a keyframe cut by up to a frame, so video alone defines where segments meet
    first_pts_us: int
    last_pts_us: int
    utc_start: str  # ISO 8601 UTC of first_pts_us, e.g. "2026-11-23T07:04:27.123456Z"
    utc_end: str  # ISO 8601 UTC of last_pts_us
    fragments: int  # number of moof+mdat fragments
    recovered: bool  # True when truncated to its last whole fragment after a power cut

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
