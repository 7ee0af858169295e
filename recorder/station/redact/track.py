"""Detections linked across frames into tracks, one id each (1, 2, ... in order of first
appearance): a detection joins the live track whose last box it overlaps most (or whose centre
is near), else starts a new one; a track survives ``max_gap`` frames without a detection, and
the frames between two of its detections take a box interpolated between them (so a missed
frame, or a frame the detector skipped, is still masked). Each box is padded (hair, chin, ears:
the cascade's box is the face from brows to mouth) and held ``linger`` frames before the first
detection and after the last one.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from .detect import Box

MIN_IOU = 0.2
MAX_CENTRE_DISTANCE = 0.6  # of the larger box's side


@dataclass
class Track:
    """One face across frames: its detections by frame number."""

    id: int
    detections: dict[int, Box] = field(default_factory=dict)

    @property
    def first(self) -> int:
        return min(self.detections)

    @property
    def last(self) -> int:
        return max(self.detections)

    def summary(self) -> dict[str, int]:
        return {"id": self.id, "first_frame": self.first, "last_frame": self.last,
                "detections": len(self.detections)}


@dataclass(frozen=True)
class Tracking:
    """The settings of the tracker and of each box's padding."""

    max_gap: int = 8  # frames without a detection a track survives
    pad: float = 0.3  # added to each side, as a share of the box's width and height
    linger: int = 15  # frames masked before a track's first detection and after its last (0.5 s at 30 fps)

    def link(self, detections: dict[int, list[Box]]) -> list[Track]:
        """Tracks from each frame's detections (frames with no entry were not looked at)."""
        tracks: list[Track] = []
        live: list[Track] = []
        for frame in sorted(detections):
            live = [track for track in live if frame - track.last <= self.max_gap + 1]
            free = list(live)
            for box in sorted(detections[frame], key=lambda b: -b.w * b.h):
                best = max(free, key=lambda track: box.iou(track.detections[track.last]),
                           default=None)
                if best is not None and not _near(box, best.detections[best.last]):
                    best = min(free, key=lambda t: box.centre_distance(t.detections[t.last]))
                    if not _near(box, best.detections[best.last]):
                        best = None
                if best is None:
                    best = Track(len(tracks) + 1)
                    tracks.append(best)
                    live.append(best)
                else:
                    free.remove(best)
                best.detections[frame] = box
        return tracks

    def box_at(self, track: Track, frame: int) -> Box | None:
        """The padded box of ``track`` in ``frame``, or None when it is not there."""
        if not track.first - self.linger <= frame <= track.last + self.linger:
            return None
        frames = sorted(track.detections)
        at = bisect.bisect_left(frames, frame)
        if at < len(frames) and frames[at] == frame:
            box = track.detections[frame]
        elif at == 0 or at == len(frames):
            box = track.detections[frames[min(at, len(frames) - 1)]]
        else:
            before, after = frames[at - 1], frames[at]
            if after - before > self.max_gap + 1:  # two sightings too far apart: not bridged
                nearest = before if frame - before <= after - frame else after
                if abs(frame - nearest) > self.linger:
                    return None
                box = track.detections[nearest]
            else:
                box = _between(track.detections[before], track.detections[after],
                               (frame - before) / (after - before))
        return Box(box.x - self.pad * box.w, box.y - self.pad * box.h,
                   box.w * (1 + 2 * self.pad), box.h * (1 + 2 * self.pad))


def _near(box: Box, other: Box) -> bool:
    return box.iou(other) >= MIN_IOU or box.centre_distance(other) <= MAX_CENTRE_DISTANCE


def _between(a: Box, b: Box, share: float) -> Box:
    return Box(a.x + (b.x - a.x) * share, a.y + (b.y - a.y) * share,
               a.w + (b.w - a.w) * share, a.h + (b.h - a.h) * share)
