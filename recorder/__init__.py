"""bwv-recorder: open software for police body-worn video cameras.

``PreEventRing`` is the active implementation (native if built, else pure Python), chosen once by
``recorder._native`` under the ``RECORDER_NATIVE`` environment variable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._native import NativeFallbackWarning, load
from .access_unit import AUDIO, VIDEO, AccessUnit, RingStats
from .errors import (
    AccessUnitTooLargeError,
    EmptyAccessUnitError,
    InvalidStreamError,
    NonMonotonicPtsError,
    PayloadTypeError,
    RecorderError,
    RingClosedError,
    RingError,
    RingStateError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:  # the fully typed pure twin is the type source for both implementations
    from ._ring_py import PreEventRing
else:
    PreEventRing = load("ring").module.PreEventRing


def implementation(piece: str) -> str:
    """'native' or 'pure': which implementation of ``piece`` (e.g. 'ring') is active."""
    return load(piece).implementation


__all__ = [
    "AUDIO", "VIDEO", "AccessUnit", "AccessUnitTooLargeError", "EmptyAccessUnitError",
    "InvalidStreamError", "NativeFallbackWarning", "NonMonotonicPtsError", "PayloadTypeError",
    "PreEventRing", "RecorderError", "RingClosedError", "RingError", "RingStateError",
    "RingStats", "implementation",
]
