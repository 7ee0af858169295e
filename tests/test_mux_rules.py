"""The muxer's rules are written once (recorder/storage/_mux_rules.py) and both twins run them.

The native twin compiles that file into recorder.storage._mux_c (an include in native/_mux_c.pyx)
as a typed extension type, which keeps it fast; the pure twin runs it as plain Python, also
where Cython is not installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from recorder.storage import _mux_py, _mux_rules
from support.media import aac, h264, interleave, mux_all

TESTS = Path(__file__).resolve().parent


def test_pure_twin_runs_the_shared_rules() -> None:
    assert issubclass(_mux_py.FragmentedMp4Muxer, _mux_rules.MuxRules)
    # the pure twin keeps only byte hooks: the rules are not written in it again
    for rule in ("push", "close", "_push_video", "_push_audio", "_finish_fragment",
                 "_open_segment"):
        assert rule not in vars(_mux_py.FragmentedMp4Muxer), rule


def test_native_twin_runs_the_same_rules_compiled(
        both_mux_impls: tuple[ModuleType, ModuleType]) -> None:
    native, _ = both_mux_impls
    base = native.FragmentedMp4Muxer.__mro__[1]
    assert base.__name__ == "MuxRules"
    assert base.__module__ == native.__name__  # compiled into the native module, not imported
    muxer = native.FragmentedMp4Muxer(None)
    # an extension type with C fields: the rules' state is not a Python attribute dictionary
    assert not hasattr(muxer, "__dict__")
    with pytest.raises(AttributeError):
        muxer._segment_us = 5  # type: ignore[attr-defined]


def test_base_rules_leave_the_bytes_to_a_subclass() -> None:
    config, _ = aac(seconds=0.2)
    first = h264(frames=1)[0]
    rules = _mux_rules.MuxRules(config)
    with pytest.raises(NotImplementedError):
        rules.push(first.stream, first.pts_us, first.is_keyframe, first.payload)


def test_pure_twin_without_cython_installed_makes_the_same_bytes(tmp_path: Path) -> None:
    config, audio = aac(seconds=1.5)
    units = interleave(h264(frames=45, gop=15), audio)
    expected = b"".join(mux_all(_mux_py, units, config, segment_seconds=0.5,
                                fragment_seconds=0.2))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["cython"] = None  # as if Cython were not installed: import cython fails
        sys.path.insert(0, {str(TESTS)!r})
        from recorder.storage import _mux_py
        from support.media import aac, h264, interleave, mux_all
        config, audio = aac(seconds=1.5)
        units = interleave(h264(frames=45, gop=15), audio)
        data = b"".join(mux_all(_mux_py, units, config, segment_seconds=0.5,
                                fragment_seconds=0.2))
        sys.stdout.buffer.write(data)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=tmp_path,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout == expected


@pytest.mark.parametrize("first", ["_mux_rules", "_mux_py", "mux"])
def test_either_module_may_be_imported_first(first: str, tmp_path: Path) -> None:
    script = (f"from recorder.storage import {first}\n"
              "from recorder.storage import _mux_py, _mux_rules\n"
              "assert issubclass(_mux_py.FragmentedMp4Muxer, _mux_rules.MuxRules)\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=tmp_path,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stderr.decode()
