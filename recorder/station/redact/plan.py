"""A redaction as data: the list of operations that turn a recording into its redacted copy.
What the audit log and the signed report (``report``) record of a redaction, and what the web
app's editor can read and write later, is this list (``Plan.operations``), not the code that
applied it.

Operations (each a JSON object with ``op``):
  ``mask_faces``     every face track the detector found, masked (``mask``: pixelate or solid)
  ``exclude_track``  one track left visible (``track``: its id), e.g. the requester
  ``mute``           an audio range (``start_ms``, ``end_ms``: milliseconds from the first
                     video frame) made silent
  ``bleep``          an audio range replaced by a 1 kHz tone
  ``box``            a box drawn by hand over what the detector does not find (a number plate,
                     a screen), masked as faces are: ``keyframes``, each ``t_ms`` (milliseconds
                     from the first video frame) and ``x``, ``y``, ``w``, ``h`` (pixels of the
                     footage); the box moves linearly between keyframes and is shown from the
                     first keyframe's time to the last's (one keyframe: the frame at that time)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequestError
from .detect import Box

MASKS = ("pixelate", "solid")
_TIME = r"(?:(\d+):)?(\d+(?:\.\d+)?)"
_RANGE = re.compile(rf"{_TIME}-{_TIME}")
_KEYFRAME = re.compile(rf"{_TIME}:(\d+),(\d+),(\d+),(\d+)")
MAX_KEYFRAMES = 1000


class BadPlanError(BadRequestError):
    """A redaction that cannot be applied: a range outside the footage, an unknown track."""

    code = "bad_redaction"


class BadBoxError(BadPlanError):
    """A manual box outside the footage's frame or time (a usage error at the command line)."""


@dataclass(frozen=True)
class AudioRange:
    """Seconds from the recording's first video frame, ``start`` < ``end``."""

    start: float
    end: float

    def __str__(self) -> str:
        return f"{self.start:g}-{self.end:g}"


def parse_range(text: str) -> AudioRange:
    """``START-END`` in seconds, each ``S[.s]`` or ``M:SS[.s]`` (e.g. ``1.5-4``, ``1:02-1:10``).

    Raises ValueError with a one-line reason."""
    match = _RANGE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a range START-END in seconds (e.g. 1.5-4 or 1:02-1:10)")
    minutes_a, seconds_a, minutes_b, seconds_b = match.groups()
    start = _seconds(minutes_a, seconds_a)
    end = _seconds(minutes_b, seconds_b)
    if end <= start:
        raise ValueError(f"{text!r}: the range ends before it starts")
    return AudioRange(start, end)


def _seconds(minutes: str | None, seconds: str) -> float:
    return 60 * int(minutes or 0) + float(seconds)


@dataclass(frozen=True)
class Keyframe:
    """Where a manual box is at ``t_ms`` (milliseconds from the first video frame), in pixels."""

    t_ms: int
    x: int
    y: int
    w: int
    h: int

    def __str__(self) -> str:
        return f"{self.t_ms / 1000:g}:{self.x},{self.y},{self.w},{self.h}"


@dataclass(frozen=True)
class ManualBox:
    """A box drawn by hand: its keyframes, in time order (at least one)."""

    keyframes: tuple[Keyframe, ...]

    def __str__(self) -> str:
        return ";".join(map(str, self.keyframes))

    def at(self, start_s: float, end_s: float) -> Box | None:
        """The box over a frame shown from ``start_s`` to ``end_s`` (seconds from the first
        frame), or None when the box is not shown then: interpolated linearly between the
        keyframes around the frame's time (clamped to the first and last keyframe, so a frame
        that overlaps the box's span is masked whole)."""
        first, last = self.keyframes[0].t_ms / 1000, self.keyframes[-1].t_ms / 1000
        if end_s <= first or start_s > last:
            return None
        when = min(max(start_s, first), last) * 1000
        before = self.keyframes[0]
        for after in self.keyframes:
            if after.t_ms >= when:
                if after.t_ms == before.t_ms:
                    return Box(after.x, after.y, after.w, after.h)
                share = (when - before.t_ms) / (after.t_ms - before.t_ms)
                return Box(before.x + (after.x - before.x) * share,
                           before.y + (after.y - before.y) * share,
                           before.w + (after.w - before.w) * share,
                           before.h + (after.h - before.h) * share)
            before = after
        return Box(before.x, before.y, before.w, before.h)

    def to_json(self) -> dict[str, Any]:
        return {"op": "box", "keyframes": [{"t_ms": k.t_ms, "x": k.x, "y": k.y, "w": k.w,
                                            "h": k.h} for k in self.keyframes]}


def parse_box(text: str) -> ManualBox:
    """``T:X,Y,W,H[;T:X,Y,W,H...]``: keyframes, T in seconds as a range's times (``S[.s]`` or
    ``M:SS[.s]``), X, Y, W, H whole pixels; the times must increase.

    Raises ValueError with a one-line reason."""
    keyframes: list[Keyframe] = []
    parts = [part.strip() for part in text.strip().split(";")]
    if len(parts) > MAX_KEYFRAMES:
        raise ValueError(f"a box has at most {MAX_KEYFRAMES} keyframes")
    for part in parts:
        match = _KEYFRAME.fullmatch(part)
        if match is None:
            raise ValueError(f"{part!r} is not a keyframe T:X,Y,W,H (T in seconds, the rest "
                             "in pixels; e.g. 1.5:100,80,60,40)")
        minutes, seconds, x, y, w, h = match.groups()
        keyframe = Keyframe(round(_seconds(minutes, seconds) * 1000), int(x), int(y), int(w),
                            int(h))
        if keyframe.w < 1 or keyframe.h < 1:
            raise ValueError(f"{part!r}: a box is at least one pixel wide and high")
        if keyframes and keyframe.t_ms <= keyframes[-1].t_ms:
            raise ValueError(f"{part!r}: the keyframes' times must increase")
        keyframes.append(keyframe)
    return ManualBox(tuple(keyframes))


@dataclass(frozen=True)
class Plan:
    """What to do to one recording."""

    recording_id: str
    mask: str = "pixelate"
    exclude_tracks: tuple[int, ...] = ()
    mute: tuple[AudioRange, ...] = ()
    bleep: tuple[AudioRange, ...] = ()
    detector: dict[str, Any] = field(default_factory=dict)
    boxes: tuple[ManualBox, ...] = ()

    def __post_init__(self) -> None:
        if self.mask not in MASKS:
            raise BadPlanError(f"mask {self.mask!r}: one of {', '.join(MASKS)}")

    def check(self, duration_s: float, track_ids: set[int] | None,
              size: tuple[int, int] | None = None) -> None:
        """Refuse ranges that start past the footage's end, boxes outside its frame (``size``:
        width and height) or its time, and tracks that were not found (``track_ids`` None: not
        known yet)."""
        for kind, ranges in (("mute", self.mute), ("bleep", self.bleep)):
            for span in ranges:
                if span.start >= duration_s:
                    raise BadPlanError(f"--{kind} {span}: the footage is {duration_s:.2f} s long")
        for box in self.boxes:
            for key in box.keyframes:
                if key.t_ms > round(duration_s * 1000):
                    raise BadBoxError(f"--box {box}: {key.t_ms / 1000:g} s is past the end "
                                       f"(the footage is {duration_s:.2f} s long)")
                if size is not None and (key.x + key.w > size[0] or key.y + key.h > size[1]):
                    raise BadBoxError(f"--box {box}: {key} is outside the {size[0]}x{size[1]} "
                                       "frame")
        if track_ids is None:
            return
        unknown = sorted(set(self.exclude_tracks) - track_ids)
        if unknown:
            found = ", ".join(map(str, sorted(track_ids))) or "none"
            raise BadPlanError(f"--exclude-track {unknown[0]}: no such face track (found: "
                               f"{found})")

    def operations(self) -> list[dict[str, Any]]:
        """The plan as a list of operations (module docstring): integers and strings only, as
        the audit log's canonical JSON takes them."""
        ops: list[dict[str, Any]] = [{"op": "mask_faces", "mask": self.mask,
                                      "detector": dict(self.detector)}]
        ops += [{"op": "exclude_track", "track": track} for track in self.exclude_tracks]
        ops += [{"op": kind, "start_ms": round(span.start * 1000),
                 "end_ms": round(span.end * 1000)}
                for kind, ranges in (("mute", self.mute), ("bleep", self.bleep))
                for span in ranges]
        ops += [box.to_json() for box in self.boxes]
        return ops

    def boxes_at(self, start_s: float, end_s: float) -> list[Box]:
        """The manual boxes over a frame shown from ``start_s`` to ``end_s``."""
        return [found for box in self.boxes if (found := box.at(start_s, end_s)) is not None]

    def audio_action(self, start_s: float, end_s: float) -> list[tuple[str, AudioRange]]:
        """The audio operations that touch the span [start_s, end_s)."""
        return [(kind, span) for kind, ranges in (("mute", self.mute), ("bleep", self.bleep))
                for span in ranges if span.start < end_s and span.end > start_s]
