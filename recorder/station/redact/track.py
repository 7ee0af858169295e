"""Detections linked across frames into tracks, one id each (1, 2, ... in order of first
appearance): a detection joins the live track whose last box it overlaps most (or whose centre
is near), else starts a new one; a track survives ``max_gap`` frames without a detection, and
the frames between two of its detections take a box interpolated between them (so a missed
frame, or a frame the detector skipped, is still masked). Each box is padded (hair, chin, ears:
the cascade's box is the face from brows to mouth) and carried on ``linger`` frames before the
first detection and after the last one, at the speed the face had there.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from .detect import Box

MIN_IOU = 0.2
MAX_CENTRE_DISTANCE = 0.6  # of the larger box's side
VELOCITY_SPAN = 6  # frames over which a track's speed at either end is measured


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
    # frames masked before a track's first detection and after its last (1 s at 30 fps)
    linger: int = 30

    def link(self, detections: dict[int, list[Box]]) -> list[Track]:
        """Tracks from each frame's detections (frames with no entry were not looked at)."""
        linker = Linker(self)
        for frame in sorted(detections):
            linker.add(frame, detections[frame])
        return linker.tracks

    def settled(self, stride: int) -> int:
        """How many frames after a frame the detections must be known for its boxes to be
        final: a gap bridged (``max_gap`` + 1), a track carried back ``linger`` frames before
        its first detection at the speed of its first ``VELOCITY_SPAN`` frames, and the
        detector's stride, as ``box_at`` reads them."""
        return self.max_gap + 1 + self.linger + VELOCITY_SPAN + stride

    def box_at(self, track: Track, frame: int) -> Box | None:
        """The padded box of ``track`` in ``frame``, or None when it is not there."""
        if not track.first - self.linger <= frame <= track.last + self.linger:
            return None
        frames = sorted(track.detections)
        at = bisect.bisect_left(frames, frame)
        if at < len(frames) and frames[at] == frame:
            box = track.detections[frame]
        elif at == 0 or at == len(frames):  # before the first sighting or after the last
            box = self._carried(track, frames, frame)
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


    def _carried(self, track: Track, frames: list[int], frame: int) -> Box:
        """The box of an end of the track carried on to ``frame`` at the speed the face had
        over that end's last ``VELOCITY_SPAN`` frames: a face leaving the picture (or
        entering it) is followed while the detector no longer (or not yet) sees all of it."""
        if frame < frames[0]:
            end, other = frames[0], next((f for f in frames if f - frames[0] >= VELOCITY_SPAN),
                                         frames[-1])
        else:
            end, other = frames[-1], next((f for f in reversed(frames)
                                           if frames[-1] - f >= VELOCITY_SPAN), frames[0])
        box = track.detections[end]
        if other == end:
            return box
        moved = _between(box, track.detections[other], (frame - end) / (other - end))
        return Box(moved.x + (moved.w - box.w) / 2, moved.y + (moved.h - box.h) / 2, box.w,
                   box.h)  # the centre moves on; the size stays the end's


class Linker:
    """``Tracking.link`` one frame at a time, frames in increasing order: a detection only
    ever joins a track through the frames before it, so the tracks so far are those ``link``
    gives for the detections so far."""

    def __init__(self, tracking: Tracking) -> None:
        self.tracking = tracking
        self.tracks: list[Track] = []
        self._live: list[Track] = []

    def add(self, frame: int, boxes: list[Box]) -> None:
        """The detections of ``frame`` (later than any added before)."""
        gap = self.tracking.max_gap + 1
        self._live = [track for track in self._live if frame - track.last <= gap]
        free = list(self._live)
        for box in sorted(boxes, key=lambda b: -b.w * b.h):
            best = max(free, key=lambda track: box.iou(track.detections[track.last]),
                       default=None)
            if best is not None and not _near(box, best.detections[best.last]):
                best = min(free, key=lambda t: box.centre_distance(t.detections[t.last]))
                if not _near(box, best.detections[best.last]):
                    best = None
            if best is None:
                best = Track(len(self.tracks) + 1)
                self.tracks.append(best)
                self._live.append(best)
            else:
                free.remove(best)
            best.detections[frame] = box


def _near(box: Box, other: Box) -> bool:
    return box.iou(other) >= MIN_IOU or box.centre_distance(other) <= MAX_CENTRE_DISTANCE


def _between(a: Box, b: Box, share: float) -> Box:
    return Box(a.x + (b.x - a.x) * share, a.y + (b.y - a.y) * share,
               a.w + (b.w - a.w) * share, a.h + (b.h - a.h) * share)
