"""bwv-recorder: open software for police body-worn video cameras.

``PreEventRing`` is the active implementation (native if built, else pure Python), chosen once by
``recorder._native`` under the ``RECORDER_NATIVE`` environment variable.
"""

from __future__ import annotations

import os
import signal
import sys


def _starting_bwv() -> bool:
    """Whether this import is bwv's own start-up, not code importing recorder as a library:
    `python -m recorder` (whose argv[0] is "-m" until its __main__ runs) or the `bwv` script."""
    argv0 = str((getattr(sys, "argv", None) or [""])[0])
    if argv0 == "-m":
        given = list(getattr(sys, "orig_argv", []))
        return "-mrecorder" in given or any(flag == "-m" and name == "recorder"
                                            for flag, name in zip(given, given[1:]))
    return os.path.basename(argv0) == "bwv"


def stop_quietly(signum: int, frame: object) -> None:
    """SIGINT while bwv starts up (imports, reads its command line): nothing has begun, so bwv
    exits 130, as a shell reports Ctrl-C, with no traceback. ``os._exit``, not an exception: a
    second Ctrl-C right behind the first (a double press) lands in here again, and can only
    exit the same way, where an ``except KeyboardInterrupt`` could itself be interrupted. The
    command puts Python's own handler back once it begins its work (``recorder.cli.main``)."""
    os._exit(130)


if _starting_bwv():
    signal.signal(signal.SIGINT, stop_quietly)  # a SIGINT before this line is the interpreter's

from typing import TYPE_CHECKING  # noqa: E402  (after the handler: these imports take a while)

from ._native import NativeFallbackWarning, load, policy_from_environ  # noqa: E402
from .capture.access_unit import AUDIO, VIDEO, AccessUnit, RingStats  # noqa: E402
from .errors import (  # noqa: E402
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
