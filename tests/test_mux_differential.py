"""Native and pure muxers return identical bytes, fragments and errors for identical input, in
the clear and encrypted ('cenc'; more of that in tests/test_mux_cenc_differential.py).

The main test of the muxer: hypothesis drives both with random but valid (and, in a second test,
random and often invalid) access-unit sequences; real libx264 and AAC output from PyAV at several
picture sizes and GOP lengths must give byte-identical segment files.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.capture.access_unit import AUDIO, VIDEO
from recorder.integrity.content_key import ContentKey
from recorder.storage import _mux_cenc
from recorder.storage._mux_py import split_annexb
from support.media import aac, h264, interleave, mux_all


def _parameter_sets(width: int, height: int) -> bytes:
    """The SPS and PPS NAL units libx264 puts in front of its first keyframe, Annex B."""
    payload = h264(width, height, frames=2, gop=2)[0].payload
    keep = [payload[s:e] for s, e in split_annexb(payload, 0) if payload[s] & 0x1F in (7, 8)]
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in keep)


PARAMETER_SETS = [_parameter_sets(w, h) for w, h in ((64, 48), (160, 120), (176, 144))]
AUDIO_CONFIGS = [aac(0.1)[0], aac(0.1, sample_rate=44_100, channels=2)[0]]


def _escape(body: bytes) -> bytes:
    """Insert emulation prevention bytes so that no 00 00 0x (x <= 3) appears."""
    out = bytearray()
    zeros = 0
    for byte in body:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    if out and out[-1] == 0:
        out.append(0x80)  # rbsp_stop_one_bit: a NAL unit never ends in a zero byte
    return bytes(out)


# Strategies are built once, here: hypothesis validates and labels a strategy each time one is
# made, which, made afresh inside the draw loops, cost more than drawing from it.
_BOOLEANS = st.booleans()
_SLICE_COUNTS = st.integers(1, 3)
_SLICE_BODIES = st.binary(min_size=0, max_size=300)
_START_CODES = st.sampled_from([b"\x00\x00\x01", b"\x00\x00\x00\x01",
                                b"\x00\x00\x01\x00\x00\x01"])
_TRAILING_ZEROS = st.sampled_from([b"", b"\x00", b"\x00\x00"])


@st.composite
def nal_units(draw: st.DrawFn, first_type: int) -> bytes:
    """An Annex B access unit: optional AUD/SEI, slices of random bytes, varied start codes."""
    parts = []
    if draw(_BOOLEANS):
        parts.append(b"\x09\xf0")
    for _ in range(draw(_SLICE_COUNTS)):
        parts.append(bytes([first_type]) + _escape(draw(_SLICE_BODIES)))
    out = b""
    for part in parts:
        out += draw(_START_CODES) + part
        out += draw(_TRAILING_ZEROS)
    return out


_KEYFRAMES = nal_units(0x65)
_DELTA_FRAMES = nal_units(0x41)
_PARAMETER_SETS = st.sampled_from(PARAMETER_SETS)
_KEY_EVERY = st.integers(0, 5)
_NEW_PARAMETERS = st.integers(0, 3)
_REORDER = st.integers(0, 200_000)
_FRAME_GAPS = st.integers(12, 400_000)
_AUDIO_SIZES = st.integers(1, 40)  # an empty AU is refused, as the ring does
_AUDIO_STEPS = st.sampled_from([21_333, 21_334, 23_219, 60_000])


@st.composite
def valid_sequences(draw: st.DrawFn) -> dict[str, Any]:
    """Options and access units that a correct encoder and capture clock could produce."""
    with_audio = draw(st.booleans())
    bframes = draw(st.booleans())
    units: list[tuple[int, int, bool, bytes, int | None]] = []
    video_dts = draw(st.integers(0, 10**9))
    audio_pts = video_dts + draw(st.integers(-50_000, 50_000))
    params = draw(_PARAMETER_SETS)
    for index in range(draw(st.integers(1, 60))):
        key = index == 0 or draw(_KEY_EVERY) == 0
        if key and index and draw(_NEW_PARAMETERS) == 0:
            params = draw(_PARAMETER_SETS)
        body = draw(_KEYFRAMES if key else _DELTA_FRAMES)
        if key and (index == 0 or draw(_BOOLEANS)):
            body = params + body
        pts = video_dts + (draw(_REORDER) if bframes else 0)
        units.append((VIDEO, pts, key, body, video_dts if bframes else None))
        video_dts += draw(_FRAME_GAPS)
        while with_audio and audio_pts < video_dts:
            size = draw(_AUDIO_SIZES)
            units.append((AUDIO, audio_pts, True, bytes(range(size)), None))
            audio_pts += draw(_AUDIO_STEPS)
    return {"units": units,
            "audio_config": draw(st.sampled_from(AUDIO_CONFIGS)) if with_audio else None,
            "segment_seconds": draw(st.sampled_from([0.05, 0.5, 1.0, 30.0])),
            "fragment_seconds": draw(st.sampled_from([0.01, 0.3, 2.0]))}


KEYS = st.builds(ContentKey, st.binary(min_size=16, max_size=16),
                 st.binary(min_size=16, max_size=16))


def encrypting(module: ModuleType) -> Any:
    """The encrypting muxer class ('cenc') of one twin."""
    return getattr(module, "EncryptingMp4Muxer", None) or _mux_cenc.EncryptingMp4Muxer


def run(module: ModuleType, case: dict[str, Any], key: ContentKey | None = None) -> list[Any]:
    """Everything observable: each push's result or error, then close() and the counters; with
    ``key``, of the encrypting muxer."""
    options = {"segment_seconds": case["segment_seconds"],
               "fragment_seconds": case["fragment_seconds"]}
    muxer = (module.FragmentedMp4Muxer(case["audio_config"], **options) if key is None
             else encrypting(module)(case["audio_config"], content_key=key, **options))
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


# Each drawn sequence goes through both twins twice, in the clear and encrypted ('cenc'):
# drawing a sequence costs about as much as muxing it four times.
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=valid_sequences(), key=KEYS)
def test_valid_random_sequences_give_identical_bytes_clear_and_encrypted(
        both_mux_impls: tuple[ModuleType, ModuleType], case: dict[str, Any],
        key: ContentKey) -> None:
    native, pure = both_mux_impls
    for content_key in (None, key):
        expected = run(pure, case, content_key)
        assert not any(isinstance(x, tuple) and isinstance(x[0], str) for x in expected), expected
        assert run(native, case, content_key) == expected


@st.composite
def messy_sequences(draw: st.DrawFn) -> dict[str, Any]:
    """Valid sequences with random damage: raw bytes, repeated or backward timestamps."""
    case = draw(valid_sequences())
    units = case["units"]
    for _ in range(draw(st.integers(0, 6))):
        if not units:
            break
        at = draw(st.integers(0, len(units) - 1))
        stream, pts, key, payload, dts = units[at]
        damage = draw(st.integers(0, 4))
        if damage == 0:
            payload = draw(st.binary(max_size=40))
        elif damage == 1:
            pts -= draw(st.integers(0, 100_000))
        elif damage == 2:
            stream = draw(st.sampled_from([AUDIO, 2, -1]))
        elif damage == 3:
            dts = pts + draw(st.integers(1, 1000))
        else:
            key = not key
        units[at] = (stream, pts, key, payload, dts)
    return case


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=messy_sequences(), key=KEYS)
def test_damaged_sequences_give_identical_results_and_errors_clear_and_encrypted(
        both_mux_impls: tuple[ModuleType, ModuleType], case: dict[str, Any],
        key: ContentKey) -> None:
    native, pure = both_mux_impls
    for content_key in (None, key):
        assert run(native, case, content_key) == run(pure, case, content_key)


@pytest.mark.parametrize("width, height, gop, bframes, audio", [
    (64, 48, 10, 0, False),
    (160, 120, 30, 0, True),
    (176, 144, 45, 2, True),
    (320, 240, 60, 3, False),
])
def test_real_encoder_output_gives_identical_files(
        both_mux_impls: tuple[ModuleType, ModuleType], width: int, height: int, gop: int,
        bframes: int, audio: bool) -> None:
    native, pure = both_mux_impls
    video = h264(width, height, frames=120, gop=gop, bframes=bframes)
    config, sound = aac(4.0) if audio else (None, ())
    units = interleave(video, sound)
    expected = mux_all(pure, units, config, segment_seconds=1.0, fragment_seconds=0.5)
    assert len(expected) >= 2
    assert mux_all(native, units, config, segment_seconds=1.0, fragment_seconds=0.5) == expected


def test_identical_bytes_when_payloads_are_not_bytes(
        both_mux_impls: tuple[ModuleType, ModuleType]) -> None:
    native, pure = both_mux_impls
    video = h264(64, 48, frames=30, gop=10)
    results = []
    for module in (native, pure):
        muxer = module.FragmentedMp4Muxer(None)
        for unit in video:
            muxer.push(unit.stream, unit.pts_us, unit.is_keyframe, bytearray(unit.payload))
        results.append(muxer.close())
    assert results[0] == results[1]


@settings(max_examples=300, deadline=None)
@given(payloads=st.lists(st.lists(st.sampled_from([0, 0, 0, 1, 3, 0x41, 0x65, 0xFF]),
                                  max_size=40).map(bytes), min_size=1, max_size=8))
def test_start_code_dense_payloads_split_identically(
        both_mux_impls: tuple[ModuleType, ModuleType], payloads: list[bytes]) -> None:
    """Payloads made mostly of 00, 01 and 03 bytes: every start-code corner case, both twins."""
    native, pure = both_mux_impls
    first = PARAMETER_SETS[0] + b"\x00\x00\x01\x65\x88"
    case = {"units": [(VIDEO, 0, True, first, None)]
            + [(VIDEO, 40_000 * (i + 1), False, p, None) for i, p in enumerate(payloads)],
            "audio_config": None, "segment_seconds": 30.0, "fragment_seconds": 2.0}
    assert run(native, case) == run(pure, case)
