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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequestError

MASKS = ("pixelate", "solid")
_TIME = r"(?:(\d+):)?(\d+(?:\.\d+)?)"
_RANGE = re.compile(rf"{_TIME}-{_TIME}")


class BadPlanError(BadRequestError):
    """A redaction that cannot be applied: a range outside the footage, an unknown track."""

    code = "bad_redaction"


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
    start = 60 * int(minutes_a or 0) + float(seconds_a)
    end = 60 * int(minutes_b or 0) + float(seconds_b)
    if end <= start:
        raise ValueError(f"{text!r}: the range ends before it starts")
    return AudioRange(start, end)


@dataclass(frozen=True)
class Plan:
    """What to do to one recording."""

    recording_id: str
    mask: str = "pixelate"
    exclude_tracks: tuple[int, ...] = ()
    mute: tuple[AudioRange, ...] = ()
    bleep: tuple[AudioRange, ...] = ()
    detector: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mask not in MASKS:
            raise BadPlanError(f"mask {self.mask!r}: one of {', '.join(MASKS)}")

    def check(self, duration_s: float, track_ids: set[int] | None) -> None:
        """Refuse ranges that start past the footage's end and tracks that were not found
        (``track_ids`` None: not known yet)."""
        for kind, ranges in (("mute", self.mute), ("bleep", self.bleep)):
            for span in ranges:
                if span.start >= duration_s:
                    raise BadPlanError(f"--{kind} {span}: the footage is {duration_s:.2f} s long")
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
        return ops

    def audio_action(self, start_s: float, end_s: float) -> list[tuple[str, AudioRange]]:
        """The audio operations that touch the span [start_s, end_s)."""
        return [(kind, span) for kind, ranges in (("mute", self.mute), ("bleep", self.bleep))
                for span in ranges if span.start < end_s and span.end > start_s]
