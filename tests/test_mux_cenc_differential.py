"""The native and pure encrypting muxers ('cenc') return identical bytes, fragments and errors for
identical input and key: frames near the subsample limit and real libx264 and AAC output (the
hypothesis sequences, valid and damaged, run encrypted in tests/test_mux_differential.py, on the
same draws as the clear ones). The pure twin's bytes are checked by ffmpeg in
tests/test_mux_cenc.py.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.capture.access_unit import VIDEO
from recorder.integrity.content_key import ContentKey
from recorder.storage import _mux_cenc
from support.media import aac, h264, interleave
from test_mux_differential import PARAMETER_SETS, encrypting, run

def test_each_twin_has_its_own_encrypting_muxer(
        both_mux_impls: tuple[ModuleType, ModuleType]) -> None:
    native, pure = both_mux_impls
    assert encrypting(native) is native.EncryptingMp4Muxer  # not the pure class borrowed
    assert encrypting(pure) is _mux_cenc.EncryptingMp4Muxer


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
