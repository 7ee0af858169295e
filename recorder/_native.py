"""The one switch between native (C/Cython) and pure-Python implementations.

`RECORDER_NATIVE` is read by `policy_from_environ` both by `setup.py` at build time (it loads this
file on its own, so this module imports nothing from the package) and by `load` at import time, so
the two can never disagree about what a value means.

    auto      (default) native if it loads; otherwise pure Python and a NativeFallbackWarning
    required  native or an error: at build time a compile failure fails the build (CI, wheels)
    off       pure Python everywhere, no warning; at build time nothing is compiled
"""

from __future__ import annotations

import enum
import importlib
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

ENV_VAR = "RECORDER_NATIVE"


class NativePolicy(enum.Enum):
    AUTO = "auto"
    REQUIRED = "required"
    OFF = "off"


class NativePolicyError(ValueError):
    """RECORDER_NATIVE holds a value that is not one of auto, required, off."""


class NativeRequiredError(ImportError):
    """RECORDER_NATIVE=required, but a native module did not load."""


class NativeFallbackWarning(RuntimeWarning):
    """A native module did not load under RECORDER_NATIVE=auto; the pure-Python twin is in use.

    Filter it with ``warnings.filterwarnings("ignore", category=NativeFallbackWarning)`` or,
    better, choose pure Python on purpose with ``RECORDER_NATIVE=off``.
    """


def parse_policy(value: str | None) -> NativePolicy:
    """Parse a RECORDER_NATIVE value. Unset or empty means auto; case and spaces are ignored."""
    text = (value or "").strip().lower()
    if not text:
        return NativePolicy.AUTO
    for policy in NativePolicy:
        if policy.value == text:
            return policy
    allowed = ", ".join(p.value for p in NativePolicy)
    raise NativePolicyError(f"{ENV_VAR}={value!r} is not understood; allowed values: {allowed}")


def policy_from_environ(environ: Mapping[str, str] | None = None) -> NativePolicy:
    """The policy in force, from ``environ`` (default: this process's environment)."""
    return parse_policy((os.environ if environ is None else environ).get(ENV_VAR))


@dataclass(frozen=True)
class Piece:
    """An accelerated piece of the recorder and the two modules that implement it."""

    name: str
    native_module: str
    pure_module: str
    summary: str


#: Every accelerated piece. setup.py builds one extension per native module named here.
PIECES: dict[str, Piece] = {
    "ring": Piece("ring", "recorder.ring._ring_c", "recorder.ring._ring_py",
                  "pre-event ring buffer"),
    "mux": Piece("mux", "recorder.storage._mux_c", "recorder.storage._mux_py",
                 "fragmented-MP4 muxer"),
    "sha256": Piece("sha256", "recorder.integrity._sha256_c", "recorder.integrity._sha256_py",
                    "SHA-256 hasher"),
}


@dataclass(frozen=True)
class Choice:
    """Which implementation of a piece is active, and why."""

    piece: str
    implementation: str  # "native" or "pure"
    module: ModuleType
    reason: str


_choices: dict[str, Choice] = {}


def load(name: str, policy: NativePolicy | None = None) -> Choice:
    """Choose and import the implementation of piece ``name`` under ``policy`` (default: environ).

    The first choice for a piece is kept for the life of the process, so every caller sees the
    same class; pass ``policy`` explicitly (as the tests do) to get a fresh, uncached choice.
    """
    if policy is None and name in _choices:
        return _choices[name]
    cached = policy is None
    policy = policy_from_environ() if policy is None else policy
    piece = PIECES[name]
    choice = _choose(piece, policy)
    if cached:
        _choices[name] = choice
    return choice


def _choose(piece: Piece, policy: NativePolicy) -> Choice:
    if policy is NativePolicy.OFF:
        return Choice(piece.name, "pure", importlib.import_module(piece.pure_module),
                      f"{ENV_VAR}=off")
    try:
        module = importlib.import_module(piece.native_module)
    except ImportError as exc:
        cause = f"{type(exc).__name__}: {exc}"
        if policy is NativePolicy.REQUIRED:
            raise NativeRequiredError(
                f"{ENV_VAR}=required but the native {piece.summary} ({piece.native_module}) "
                f"did not load ({cause}). Rebuild with a C compiler: "
                "apt-get install build-essential python3-dev && pip install --force-reinstall ."
            ) from exc
        warnings.warn(
            f"native {piece.summary} ({piece.native_module}) did not load ({cause}); using the "
            f"slower pure-Python twin. Remedy: install a C compiler (apt-get install "
            f"build-essential python3-dev) and reinstall bwv-recorder, or set {ENV_VAR}=off "
            "to choose pure Python without this warning.",
            NativeFallbackWarning,
            stacklevel=4,
        )
        return Choice(piece.name, "pure", importlib.import_module(piece.pure_module),
                      f"native module did not load ({cause})")
    return Choice(piece.name, "native", module, f"native module loaded ({ENV_VAR}={policy.value})")


def active_choices() -> list[Choice]:
    """The active choice for every piece (loading any not loaded yet)."""
    return [load(name) for name in PIECES]
