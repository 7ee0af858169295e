"""The two implementations of each accelerated piece (``recorder._native.PIECES``).

``twin_module(piece, kind)`` imports one of them. The native one is skipped (and listed as
skipped) when RECORDER_NATIVE=off, or under auto when it is not built; under
RECORDER_NATIVE=required a missing native module is an error, never a skip. The tests' fixtures
(tests/conftest.py) and the benches (benches/conftest.py) both come through here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from recorder import _native

IMPLEMENTATIONS = ("native", "pure")


def twin_module(piece: str, kind: str) -> ModuleType:
    """The module of implementation ``kind`` ("native" or "pure") of ``piece``."""
    spec = _native.PIECES[piece]
    if kind == "pure":
        return importlib.import_module(spec.pure_module)
    if kind != "native":
        raise ValueError(f"kind must be one of {IMPLEMENTATIONS}, not {kind!r}")
    policy = _native.policy_from_environ()
    if policy is _native.NativePolicy.OFF:
        pytest.skip("RECORDER_NATIVE=off: native implementation deselected")
    try:
        return importlib.import_module(spec.native_module)
    except ImportError as exc:
        if policy is _native.NativePolicy.REQUIRED:
            raise
        pytest.skip(f"native {piece} not built: {exc}")
