"""The one monotonic clock both streams are stamped with, and its anchor to UTC.

Every access unit's ``pts_us`` is ``monotonic_us()`` at capture. A `ClockAnchor` taken when the
recorder starts maps those microseconds to UTC for file names, manifests and burned-in stamps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


def monotonic_us() -> int:
    """Microseconds on CLOCK_MONOTONIC (never jumps when the wall clock is set)."""
    return time.monotonic_ns() // 1000


@dataclass(frozen=True)
class ClockAnchor:
    """One instant read on both clocks: maps monotonic microseconds to UTC."""

    utc: datetime
    monotonic_us: int

    @classmethod
    def now(cls) -> ClockAnchor:
        mono_before = monotonic_us()
        utc = datetime.now(timezone.utc)
        mono_after = monotonic_us()
        return cls(utc, (mono_before + mono_after) // 2)

    def to_utc(self, pts_us: int) -> datetime:
        return self.utc + timedelta(microseconds=pts_us - self.monotonic_us)

    @staticmethod
    def parse_utc(text: str) -> datetime:
        """The inverse of `iso`: "2026-11-23T07:04:27.123456Z" as an aware datetime."""
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)

    def iso(self, pts_us: int) -> str:
        """ISO 8601 UTC with microseconds, e.g. "2026-11-23T07:04:27.123456Z"."""
        return self.to_utc(pts_us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
