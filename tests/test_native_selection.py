"""RECORDER_NATIVE: one parser for build and import time, native by default, loud fallback."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import recorder
from recorder import _native
from recorder._native import (
    NativeFallbackWarning,
    NativePolicy,
    NativePolicyError,
    NativeRequiredError,
    Piece,
    parse_policy,
)

REPO = Path(__file__).resolve().parents[1]


def _native_built(piece: str) -> bool:
    try:
        importlib.import_module(_native.PIECES[piece].native_module)
    except ImportError:
        return False
    return True


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != _native.ENV_VAR}
    environ.update(env)
    # cwd outside the source tree, so the installed package is imported, not ./recorder
    return subprocess.run([sys.executable, "-W", "error", "-c", code], env=environ, cwd="/",
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("value", "policy"), [
    (None, NativePolicy.AUTO), ("", NativePolicy.AUTO), ("auto", NativePolicy.AUTO),
    ("required", NativePolicy.REQUIRED), (" Required ", NativePolicy.REQUIRED),
    ("off", NativePolicy.OFF), ("OFF", NativePolicy.OFF),
])
def test_policy_values_parse(value: str | None, policy: NativePolicy) -> None:
    assert parse_policy(value) is policy


@pytest.mark.parametrize("value", ["0", "1", "false", "no", "native"])
def test_other_values_are_an_error_naming_the_allowed_ones(value: str) -> None:
    # propcache's trap: "0" must not quietly mean anything
    with pytest.raises(NativePolicyError, match="allowed values: auto, required, off"):
        parse_policy(value)


def test_setup_py_uses_the_same_parser() -> None:
    text = (REPO / "setup.py").read_text()
    assert '"recorder" / "_native.py"' in text and "policy_from_environ()" in text


@pytest.mark.parametrize("piece", sorted(_native.PIECES))
def test_native_is_the_default_when_built(piece: str) -> None:
    """With RECORDER_NATIVE unset, a fresh interpreter picks the native twin of every piece."""
    native_module = _native.PIECES[piece].native_module
    if not _native_built(piece):
        if _native.policy_from_environ() is NativePolicy.REQUIRED:
            pytest.fail(f"RECORDER_NATIVE=required but {native_module} is not built")
        pytest.skip(f"native {piece} not built in this install")
    result = run_python("import recorder; from recorder._native import load; "
                        f"choice = load({piece!r}); "
                        "print(recorder.implementation(choice.piece), choice.module.__name__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["native", native_module]


def test_the_default_ring_class_is_the_native_one_when_built() -> None:
    if not _native_built("ring"):
        pytest.skip("native ring not built in this install")
    result = run_python("import recorder; print(recorder.PreEventRing.__module__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["recorder.ring._ring_c"]


def test_off_selects_pure_python_silently() -> None:
    result = run_python("import recorder; print(recorder.implementation('ring'))",
                        RECORDER_NATIVE="off")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pure" and result.stderr == ""


def test_bad_value_stops_the_import_with_a_clear_message() -> None:
    result = run_python("import recorder", RECORDER_NATIVE="yes")
    assert result.returncode != 0
    assert "RECORDER_NATIVE='yes' is not understood" in result.stderr


MISSING = Piece("ghost", "recorder._ghost_c", "recorder.ring._ring_py", "test piece")


def test_auto_falls_back_with_a_warning_naming_cause_and_remedy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_native.PIECES, "ghost", MISSING)
    with pytest.warns(NativeFallbackWarning) as caught:
        choice = _native.load("ghost", NativePolicy.AUTO)
    assert choice.implementation == "pure"
    text = str(caught[0].message)
    assert "recorder._ghost_c" in text and "No module named" in text
    assert "build-essential" in text and "RECORDER_NATIVE=off" in text


def test_required_refuses_to_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_native.PIECES, "ghost", MISSING)
    with pytest.raises(NativeRequiredError, match=r"RECORDER_NATIVE=required .*\(recorder._ghost_c\) did not load"):
        _native.load("ghost", NativePolicy.REQUIRED)


def test_off_never_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_native.PIECES, "ghost", MISSING)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _native.load("ghost", NativePolicy.OFF).reason == "RECORDER_NATIVE=off"


def test_doctor_prints_every_piece_and_exits_zero() -> None:
    result = subprocess.run([sys.executable, "-m", "recorder", "doctor"], cwd="/",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "bwv-recorder" in result.stdout and recorder.__version__ in result.stdout
    lines = result.stdout.splitlines()
    for name in _native.PIECES:
        [line] = [line for line in lines if line.startswith(f"{name} (")]
        assert "  native: " in line or "  pure: " in line
    assert "RECORDER_NATIVE" in result.stdout and "platform" in result.stdout
    assert any(line.startswith("Raspberry Pi ") for line in lines)  # checked, or said to be skipped


def test_bwv_without_a_command_is_a_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "recorder"], cwd="/", capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "usage: bwv" in result.stderr


def test_the_ring_is_loaded_on_first_use_not_by_importing_the_package() -> None:
    # verify, the station and doctor have no use for the ring: importing them must not load it
    # (nor, without a native build, warn about its fallback)
    run = run_python(
        "import sys, recorder, recorder.integrity.verify, recorder.uploader, recorder.cli.station\n"
        "assert not {'recorder.ring._ring_c', 'recorder.ring._ring_py'} & set(sys.modules), "
        "sorted(sys.modules)\n"
        "ring = recorder.PreEventRing(1, 100)\n"
        "assert {'recorder.ring._ring_c', 'recorder.ring._ring_py'} & set(sys.modules)\n"
        "from recorder import PreEventRing\n"
        "assert PreEventRing is type(ring)\n",
        RECORDER_NATIVE="off")
    assert run.returncode == 0, run.stderr


def test_an_unknown_attribute_of_the_package_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'PreEventRings'"):
        recorder.PreEventRings  # noqa: B018
