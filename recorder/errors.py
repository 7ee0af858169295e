"""Exceptions of the recorder, each specific enough that its message tells the user what to fix.

The ring's error messages are built here, once, so the native and pure rings raise the same
exception with the same words for the same mistake.
"""

from __future__ import annotations


class RecorderError(Exception):
    """Base class of every error raised on purpose by bwv-recorder."""


class RingError(RecorderError):
    """Base class of the pre-event ring's errors."""


class PayloadTypeError(RingError, TypeError):
    """The payload of an access unit is not a contiguous bytes-like object."""


class InvalidStreamError(RingError, ValueError):
    """The stream number of an access unit is not 0 (video) or 1 (audio)."""


class EmptyAccessUnitError(RingError, ValueError):
    """An access unit with no bytes: encoders never emit one, so it is refused."""


class AccessUnitTooLargeError(RingError, ValueError):
    """An access unit larger than the whole ring arena."""


class NonMonotonicPtsError(RingError, ValueError):
    """An access unit whose pts_us is not after the previous one of the same stream."""


class RingStateError(RingError, RuntimeError):
    """A call that does not fit the ring's state (double begin/end of consuming, pop while buffering)."""


class RingClosedError(RingStateError):
    """A push or begin_consume on a closed ring."""


def payload_type_error(payload: object) -> PayloadTypeError:
    return PayloadTypeError(
        "payload must be a contiguous bytes-like object (bytes, bytearray, memoryview), "
        f"not {type(payload).__name__}"
    )


def ring_closed_error() -> RingClosedError:
    return RingClosedError("the ring is closed: it accepts no more access units")


def invalid_stream_error(stream: int) -> InvalidStreamError:
    return InvalidStreamError(f"stream must be 0 (video) or 1 (audio), not {stream}")


def empty_access_unit_error(stream: int, pts_us: int) -> EmptyAccessUnitError:
    return EmptyAccessUnitError(
        f"empty access unit on stream {stream} at pts_us={pts_us}: an encoder never emits one"
    )


def access_unit_too_large_error(stream: int, pts_us: int, size: int,
                                capacity: int) -> AccessUnitTooLargeError:
    return AccessUnitTooLargeError(
        f"access unit of {size} bytes (stream {stream}, pts_us={pts_us}) is larger than the "
        f"whole ring ({capacity} bytes): raise capacity_bytes"
    )


def non_monotonic_pts_error(stream: int, pts_us: int, previous_us: int) -> NonMonotonicPtsError:
    return NonMonotonicPtsError(
        f"pts_us={pts_us} on stream {stream} is not after the previous pts_us={previous_us} "
        "of that stream: timestamps must increase"
    )
