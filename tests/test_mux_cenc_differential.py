"""The native and pure encrypting muxers ('cenc') return identical bytes, fragments and errors for
identical input and key: hypothesis sequences (valid and damaged) and real libx264 and AAC output.
The pure twin's bytes are themselves checked by ffmpeg in tests/test_mux_cenc.py.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.capture.access_unit import VIDEO
from recorder.integrity.content_key import ContentKey
from recorder.storage import _mux_cenc
from support.media import aac, h264, interleave
from test_mux_differential import PARAMETER_SETS, messy_sequences, valid_sequences

KEYS = st.builds(ContentKey, st.binary(min_size=16, max_size=16),
                 st.binary(min_size=16, max_size=16))


def encrypting(module: ModuleType) -> Any:
    """The encrypting muxer class of one twin."""
    return getattr(module, "EncryptingMp4Muxer", None) or _mux_cenc.EncryptingMp4Muxer


def run(module: ModuleType, case: dict[str, Any], key: ContentKey) -> list[Any]:
    """Everything observable: each push's result or error, then close() and the counters."""
    muxer = encrypting(module)(case["audio_config"], content_key=key,
                               segment_seconds=case["segment_seconds"],
                               fragment_seconds=case["fragment_seconds"])
    seen: list[Any] = []
    for stream, pts, is_key, payload, dts in case["units"]:
        try:
            seen.append(muxer.push(stream, pts, is_key, payload, dts))
        except Exception as exc:  # compared, not swallowed: both must raise the same
            seen.append((type(exc).__name__, str(exc)))
        seen.append((muxer.segment, muxer.dropped_units))
    seen.append(muxer.close())
    seen.append(muxer.close())
    return seen


def test_each_twin_has_its_own_encrypting_muxer(
        both_mux_impls: tuple[ModuleType, ModuleType]) -> None:
    native, pure = both_mux_impls
    assert encrypting(native) is native.EncryptingMp4Muxer  # not the pure class borrowed
    assert encrypting(pure) is _mux_cenc.EncryptingMp4Muxer


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=valid_sequences(), key=KEYS)
def test_valid_random_sequences_give_identical_encrypted_bytes(
        both_mux_impls: tuple[ModuleType, ModuleType], case: dict[str, Any],
        key: ContentKey) -> None:
    native, pure = both_mux_impls
    expected = run(pure, case, key)
    assert not any(isinstance(x, tuple) and isinstance(x[0], str) for x in expected), expected
    assert run(native, case, key) == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=messy_sequences(), key=KEYS)
def test_damaged_sequences_give_identical_results_and_errors(
        both_mux_impls: tuple[ModuleType, ModuleType], case: dict[str, Any],
        key: ContentKey) -> None:
    native, pure = both_mux_impls
    assert run(native, case, key) == run(pure, case, key)


@settings(max_examples=60, deadline=None)
@given(slices=st.integers(1, 60), size=st.integers(1, 300), clear=st.integers(0, 140_000))
def test_many_slices_and_long_clear_runs_give_identical_bytes_or_errors(
        both_mux_impls: tuple[ModuleType, ModuleType], slices: int, size: int,
        clear: int) -> None:
    """Frames near the 40-subsample limit, and SEI long enough to split a clear run."""
    native, pure = both_mux_impls
    sei = b"\x00\x00\x01\x06" + b"\x80" * clear if clear else b""
    frame = PARAMETER_SETS[0] + sei + (b"\x00\x00\x01\x65" + b"\x11" * size) * slices
    case = {"units": [(VIDEO, 0, True, frame, None), (VIDEO, 40_000, False,
                                                      b"\x00\x00\x01\x41" + b"\x22" * size, None)],
            "audio_config": None, "segment_seconds": 30.0, "fragment_seconds": 2.0}
    key = ContentKey(bytes(range(16)), bytes(range(16, 32)))
    assert run(native, case, key) == run(pure, case, key)


@pytest.mark.parametrize("width, height, gop, bframes, audio", [
    (64, 48, 10, 0, False),
    (160, 120, 30, 0, True),
    (176, 144, 45, 2, True),
])
def test_real_encoder_output_gives_identical_encrypted_files(
        both_mux_impls: tuple[ModuleType, ModuleType], width: int, height: int, gop: int,
        bframes: int, audio: bool) -> None:
    native, pure = both_mux_impls
    video = h264(width, height, frames=120, gop=gop, bframes=bframes)
    config, sound = aac(4.0) if audio else (None, ())
    case = {"units": [tuple(unit) for unit in interleave(video, sound)], "audio_config": config,
            "segment_seconds": 1.0, "fragment_seconds": 0.5}
    key = ContentKey.new()
    expected = run(pure, case, key)
    assert sum(1 for x in expected if hasattr(x, "starts_segment") and x.starts_segment) >= 2
    assert run(native, case, key) == expected
