"""The camera's clock is evidence, not authority. A recording's manifest says when it was recorded
(``utc_start``) and where that time came from (``clock_source``); the station judges whether to
believe it, flags the recordings whose clock it does not, and counts retention from its own
clock: a recording is kept at least the retention period after the station received it, whatever
the camera's clock said (a camera stuck at 2020-01-01 must not have its footage swept at once,
one at 9999-12-31 must not keep it for ever).
"""

from __future__ import annotations

from . import catalogue

# how far a camera's clock may run ahead of the station's before its times are "in the future"
# (the signed-request skew the station already accepts), and how far before enrolment a recording
# may start (a camera recorded while it was being set up)
ALLOWANCE_US = 300 * 1_000_000
# clock sources whose time the camera itself vouches for (docs/formats.md, the header line)
SYNCHRONISED_SOURCES = frozenset({"ntp", "gps", "rtc"})


class ClockFlag:
    """Why the station does not believe a recording's times (the ``clock_flag`` column)."""

    UNSYNCHRONISED = "unsynchronised"  # the camera said its clock was not set (or said nothing)
    IN_FUTURE = "in_future"  # recorded after the station received it
    BEFORE_ENROLMENT = "before_enrolment"  # recorded before the camera was enrolled
    INVALID = "invalid_date"  # a time the station cannot represent (before year 1, after 9999)


def judge(clock_source: str | None, recorded_us: int | None, ended_us: int | None,
          received_us: int, now_us: int, enrolled_us: int | None) -> str | None:
    """The ClockFlag of a recording, or None when its camera's clock is believable. A camera
    that says its clock was not set is flagged for that first (it explains any odd date); then
    the times the station can check against its own: receipt, and the camera's enrolment."""
    if recorded_us is None:
        return ClockFlag.INVALID
    if clock_source not in SYNCHRONISED_SOURCES:
        return ClockFlag.UNSYNCHRONISED
    if recorded_us > received_us + ALLOWANCE_US or (
            ended_us is not None and ended_us > now_us + ALLOWANCE_US):
        return ClockFlag.IN_FUTURE
    if enrolled_us is not None and recorded_us < enrolled_us - ALLOWANCE_US:
        return ClockFlag.BEFORE_ENROLMENT
    return None


def retain_until(received_us: int, recorded_us: int | None, flag: str | None,
                 retention_us: int) -> int:
    """When the sweep may delete a recording: the retention period after it was recorded, as
    the camera says, but never before the retention period after the station received it; a
    flagged camera clock is not used at all. Clamped so that it is always a showable time."""
    start = received_us
    if flag is None and recorded_us is not None:
        start = max(received_us, recorded_us)
    return catalogue.clamp_us(start + retention_us)
