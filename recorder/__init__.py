"""bwv-recorder: open software for police body-worn video cameras.

``PreEventRing`` is the active implementation (native if built, else pure Python), chosen once by
``recorder._native`` under the ``RECORDER_NATIVE`` environment variable.
"""

from __future__ import annotations

import signal
import sys

try:
    from typing import TYPE_CHECKING

    from ._native import NativeFallbackWarning, load, policy_from_environ
    from .capture.access_unit import AUDIO, VIDEO, AccessUnit, RingStats
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
except KeyboardInterrupt:
    # Ctrl-C while bwv (`python -m recorder`, whose argv[0] is "-m" until its __main__ runs, or
    # the `bwv` script) imports this package: nothing has begun, so bwv stops as it does for a
    # Ctrl-C anywhere in start-up, exit 130 and no traceback. An import by other code re-raises.
    # A second Ctrl-C right behind the first (a double press) must not land in that exit either:
    # from here SIGINT is ignored, and one that comes before that takes effect ends bwv the same.
    try:
        if sys.argv[:1] == ["-m"] or sys.argv[0].rsplit("/", 1)[-1:] == ["bwv"]:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            raise SystemExit(130) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    raise

__version__ = "0.1.0"

policy_from_environ()  # a RECORDER_NATIVE that is not understood stops here, with its message

if TYPE_CHECKING:  # the fully typed pure twin is the type source for both implementations
    from .ring._ring_py import PreEventRing


def __getattr__(name: str) -> object:
    """``recorder.PreEventRing`` is chosen on first use, not when ``recorder`` is imported: the
    station, ``bwv verify`` and ``bwv doctor`` never load the ring (nor warn about its fallback)."""
    if name == "PreEventRing":
        return load("ring").module.PreEventRing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def implementation(piece: str) -> str:
    """'native' or 'pure': which implementation of ``piece`` (e.g. 'ring') is active."""
    return load(piece).implementation


__all__ = [
    "AUDIO", "VIDEO", "AccessUnit", "AccessUnitTooLargeError", "EmptyAccessUnitError",
    "InvalidStreamError", "NativeFallbackWarning", "NonMonotonicPtsError", "PayloadTypeError",
    "PreEventRing", "RecorderError", "RingClosedError", "RingError", "RingStateError",
    "RingStats", "implementation",
]
