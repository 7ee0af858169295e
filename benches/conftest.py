"""Bench fixtures: the same implementations as the tests, plus the baselines a user would pick.

Run: .venv/bin/pytest benches/ --benchmark-json=bench.json && .venv/bin/python benches/table.py bench.json
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from recorder import _native


def implementation(piece: str, kind: str) -> ModuleType:
    spec = _native.PIECES[piece]
    if kind == "pure":
        return importlib.import_module(spec.pure_module)
    try:
        return importlib.import_module(spec.native_module)
    except ImportError as exc:
        if _native.policy_from_environ() is _native.NativePolicy.REQUIRED:
            raise
        pytest.skip(f"native {piece} not built: {exc}")
