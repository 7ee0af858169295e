"""The muxer's moof + mdat, byte for byte, against a reference written here from the spec.

Written against the survivors of a mutation run (mutmut) of ``recorder/storage/_mux_py.py``,
the pure twin's byte hooks: every field of ``mfhd``, ``tfhd``, ``tfdt`` and ``trun`` (flags,
counts, data offsets, durations, sizes, sample flags, composition offsets), the mdat's
length-prefixed NAL units, the state emptied between fragments, and the 32-bit mdat bound. The
reference builds each box from the module docstring's layout with its own code, so a change to the
writer cannot change the expectation with it. Access units are hand-made Annex B around a real
libx264 SPS and PPS: no encoder runs.
"""

from __future__ import annotations

import struct
from types import ModuleType

import pytest

from recorder.capture.access_unit import AUDIO, VIDEO
from recorder.integrity import bmff
from recorder.storage import _mux_py
from support.synthetic_bmff import box, full_box

#: libx264's SPS and PPS for a 64x48 picture (Constrained Baseline, level 1)
SPS = bytes.fromhex("6742c00ada11e840000003004007a12003c489a8")
PPS = bytes.fromhex("68ce0fc8")
ASC = bytes.fromhex("1188")  # AAC-LC, 48 kHz, mono: 1024 samples a frame
ORIGIN = 1_000_000  # pts_us of the first keyframe
FRAME = 40_000  # 25 fps: 3600 ticks at 90 kHz


def keyframe(tag: int) -> tuple[bytes, list[bytes]]:
    """An IDR access unit with in-band SPS and PPS, a 4-byte start code, trailing zeros and an
    empty NAL unit at the end; and the NAL units the muxer must keep."""
    idr = bytes([0x65, tag, 0xCD, 0xEF])
    payload = (b"\0\0\0\1" + SPS + b"\0\0\1" + PPS + b"\0\0\1" + idr + b"\0\0" + b"\0\0\0\1")
    return payload, [SPS, PPS, idr]


def delta(tag: int, size: int = 3) -> tuple[bytes, list[bytes]]:
    nal = bytes([0x41]) + bytes([tag]) * (size - 1)
    return b"\0\0\1" + nal, [nal]


def ticks(us: int, rate: int) -> int:
    """The docstring's rounding of a time relative to the origin."""
    return ((us - ORIGIN) * rate + 500_000) // 1_000_000


def sample_bytes(nals: list[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(nal)) + nal for nal in nals)


def reference(sequence: int, video: list[tuple[int, int, list[bytes], bool]], last_duration: int,
              audio: list[tuple[int, bytes]] = ()) -> bytes:
    """moof + mdat of one fragment. ``video``: (dts tick, cto, NAL units, keyframe) per sample;
    ``audio``: (tick, payload) per sample."""
    v_data = [sample_bytes(nals) for _, _, nals, _ in video]
    v_ticks = [t for t, _, _, _ in video]
    v_durations = [b - a for a, b in zip(v_ticks, v_ticks[1:])] + [last_duration]
    with_cto = any(cto for _, cto, _, _ in video)
    a_ticks = [t for t, _ in audio]
    a_durations = [b - a for a, b in zip(a_ticks, a_ticks[1:])] + [1024] if audio else []

    def build(moof_size: int) -> bytes:
        rows = b""
        for duration, data, (_, cto, _, key) in zip(v_durations, v_data, video):
            rows += struct.pack(">III", duration, len(data), 0x0200_0000 if key else 0x0101_0000)
            if with_cto:
                rows += struct.pack(">I", cto)
        flags = 0x000001 | 0x000100 | 0x000200 | 0x000400 | (0x000800 if with_cto else 0)
        trafs = [box(b"traf", full_box(b"tfhd", 0, 0x020000, struct.pack(">I", 1)),
                     full_box(b"tfdt", 1, 0, struct.pack(">Q", v_ticks[0])),
                     full_box(b"trun", 0, flags, struct.pack(">II", len(video), moof_size + 8),
                              rows))]
        if audio:
            rows = b"".join(struct.pack(">II", d, len(p)) for d, (_, p) in zip(a_durations, audio))
            start = moof_size + 8 + sum(map(len, v_data))
            trafs.append(box(b"traf", full_box(b"tfhd", 0, 0x020000, struct.pack(">I", 2)),
                             full_box(b"tfdt", 1, 0, struct.pack(">Q", a_ticks[0])),
                             full_box(b"trun", 0, 0x000301, struct.pack(">II", len(audio), start),
                                      rows)))
        return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)

    moof = build(len(build(0)))
    return moof + box(b"mdat", *v_data, *(p for _, p in audio))


def body(fragment: object, init: bool) -> bytes:
    """The fragment's bytes after its init segment (ftyp + moov) when it carries one."""
    data: bytes = fragment.data  # type: ignore[attr-defined]
    if not init:
        assert data[4:8] == b"moof"
        return data
    top = list(bmff.iter_boxes(data))
    assert [b.type for b in top[:2]] == ["ftyp", "moov"]
    return data[top[2].offset:]


def test_video_fragments_byte_for_byte(mux_impl: ModuleType) -> None:
    muxer = mux_impl.FragmentedMp4Muxer(None)
    k0, k0_nals = keyframe(1)
    d1, d1_nals = delta(2)
    d2, d2_nals = delta(3, size=7)
    k3, k3_nals = keyframe(4)
    assert muxer.push(VIDEO, ORIGIN, True, k0) is None
    assert muxer.push(VIDEO, ORIGIN + FRAME, False, d1) is None
    assert muxer.push(VIDEO, ORIGIN + 2 * FRAME + 1, False, d2) is None  # 3600 ticks + 0.09
    first = muxer.push(VIDEO, ORIGIN + 3 * FRAME + 20, True, k3)  # 10802 ticks (rounded up)
    assert first is not None
    assert (first.segment, first.sequence, first.starts_segment, first.ends_segment) == (
        1, 1, True, False)
    assert (first.first_pts_us, first.last_pts_us) == (ORIGIN, ORIGIN + 2 * FRAME + 1)
    assert body(first, init=True) == reference(1, [(0, 0, k0_nals, True),
                                                   (3600, 0, d1_nals, False),
                                                   (7200, 0, d2_nals, False)], 10_802 - 7200)
    d4, d4_nals = delta(5, size=1)
    assert muxer.push(VIDEO, ORIGIN + 4 * FRAME, False, d4) is None
    last = muxer.close()
    assert last is not None
    assert (last.segment, last.sequence, last.starts_segment, last.ends_segment) == (
        1, 2, False, True)
    # at close the last sample lasts as long as the one before it
    assert body(last, init=False) == reference(2, [(10_802, 0, k3_nals, True),
                                                   (14_400, 0, d4_nals, False)], 14_400 - 10_802)
    assert muxer.close() is None


def test_composition_offsets_when_any_frame_is_reordered(mux_impl: ModuleType) -> None:
    muxer = mux_impl.FragmentedMp4Muxer(None)
    k0, k0_nals = keyframe(1)
    p1, p1_nals = delta(2)
    b2, b2_nals = delta(3)
    muxer.push(VIDEO, ORIGIN, True, k0, ORIGIN)  # cto 0: only some frames are reordered
    muxer.push(VIDEO, ORIGIN + 3 * FRAME, False, p1, ORIGIN + FRAME)
    muxer.push(VIDEO, ORIGIN + 2 * FRAME, False, b2, ORIGIN + 2 * FRAME)
    last = muxer.close()
    assert last is not None and (last.first_pts_us, last.last_pts_us) == (ORIGIN,
                                                                        ORIGIN + 3 * FRAME)
    assert body(last, init=True) == reference(1, [(0, 0, k0_nals, True),
                                                  (3600, 7200, p1_nals, False),
                                                  (7200, 0, b2_nals, False)], 3600)


def test_audio_goes_into_a_second_traf_after_the_video_bytes(mux_impl: ModuleType) -> None:
    muxer = mux_impl.FragmentedMp4Muxer(ASC)
    k0, k0_nals = keyframe(1)
    d1, d1_nals = delta(2)
    k2, k2_nals = keyframe(3)
    audio = [(ORIGIN + 5, b"\x21\x10aaaa"), (ORIGIN + 21_338, b"\x21\x10bbbbbbb"),
             (ORIGIN + 42_672, b"\x21\x10c")]
    muxer.push(VIDEO, ORIGIN, True, k0)
    muxer.push(AUDIO, audio[0][0], True, audio[0][1])
    muxer.push(VIDEO, ORIGIN + FRAME, False, d1)
    muxer.push(AUDIO, audio[1][0], True, audio[1][1])
    muxer.push(AUDIO, audio[2][0], True, audio[2][1])
    first = muxer.push(VIDEO, ORIGIN + 2 * FRAME, True, k2)
    assert first is not None
    expected_audio = [(ticks(pts, 48_000), payload) for pts, payload in audio]
    assert [t for t, _ in expected_audio] == [0, 1024, 2048]
    assert body(first, init=True) == reference(1, [(0, 0, k0_nals, True),
                                                   (3600, 0, d1_nals, False)], 3600,
                                               expected_audio)
    # a fragment of a muxer with audio, but no audio in it: one traf
    d3, d3_nals = delta(4)
    muxer.push(VIDEO, ORIGIN + 3 * FRAME, False, d3)
    k4, k4_nals = keyframe(5)
    second = muxer.push(VIDEO, ORIGIN + 4 * FRAME, True, k4)
    assert second is not None
    assert body(second, init=False) == reference(2, [(7200, 0, k2_nals, True),
                                                     (10_800, 0, d3_nals, False)], 3600)
    # and audio again in the next one: nothing of the earlier fragments' samples is left
    muxer.push(AUDIO, ORIGIN + 4 * FRAME + 30, False, b"\x21\x10dd")
    last = muxer.close()
    assert last is not None
    assert body(last, init=False) == reference(3, [(14_400, 0, k4_nals, True)], 3600,
                                               [(ticks(ORIGIN + 4 * FRAME + 30, 48_000),
                                                 b"\x21\x10dd")])


def test_one_audio_sample_lasts_one_aac_frame(mux_impl: ModuleType) -> None:
    muxer = mux_impl.FragmentedMp4Muxer(ASC)
    k0, k0_nals = keyframe(1)
    muxer.push(VIDEO, ORIGIN, True, k0)
    muxer.push(AUDIO, ORIGIN + 100_000, False, b"\x21\x10z")
    last = muxer.close()
    assert last is not None
    assert body(last, init=True) == reference(1, [(0, 0, k0_nals, True)], 3000,
                                              [(4800, b"\x21\x10z")])


def test_a_delta_carrying_parameter_sets_does_not_change_them(mux_impl: ModuleType) -> None:
    """Only a keyframe's SPS and PPS count: a delta frame with others in-band keeps the segment."""
    muxer = mux_impl.FragmentedMp4Muxer(None)
    k0, _ = keyframe(1)
    other_sps = SPS[:-1] + bytes([SPS[-1] ^ 1])
    odd = b"\0\0\1" + other_sps + b"\0\0\1\x41\x07"
    muxer.push(VIDEO, ORIGIN, True, k0)
    muxer.push(VIDEO, ORIGIN + FRAME, False, odd)
    k2, _ = keyframe(2)
    fragment = muxer.push(VIDEO, ORIGIN + 2 * FRAME, True, k2)
    assert fragment is not None and not fragment.ends_segment  # same segment goes on
    changed = b"\0\0\1" + other_sps + b"\0\0\1" + PPS + b"\0\0\1\x65\x09"
    fragment = muxer.push(VIDEO, ORIGIN + 3 * FRAME, True, changed)
    assert fragment is not None and fragment.ends_segment  # a keyframe's new SPS: a new segment
    last = muxer.close()
    assert last is not None and (last.segment, last.starts_segment) == (2, True)
    moov = next(b for b in bmff.iter_boxes(last.data) if b.type == "moov")
    assert other_sps in last.data[moov.offset:moov.end]  # the new SPS went into the avcC


def test_the_mdat_may_reach_the_32_bit_limit_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pure twin only: the limit (4 GiB) is lowered to the size of a small fragment's mdat, which
    is what the bound compares (a real 4 GiB fragment would take the suite minutes)."""
    k0, k0_nals = keyframe(1)
    mdat_size = 8 + len(sample_bytes(k0_nals))
    assert _mux_py.MAX_FRAGMENT_BYTES == 0xFFFF_FFFF - 8
    monkeypatch.setattr(_mux_py, "MAX_FRAGMENT_BYTES", mdat_size)
    muxer = _mux_py.FragmentedMp4Muxer(None)
    muxer.push(VIDEO, ORIGIN, True, k0)
    last = muxer.close()
    assert last is not None and last.data.endswith(sample_bytes(k0_nals))
    monkeypatch.setattr(_mux_py, "MAX_FRAGMENT_BYTES", mdat_size - 1)
    muxer = _mux_py.FragmentedMp4Muxer(None)
    muxer.push(VIDEO, ORIGIN, True, k0)
    with pytest.raises(_mux_py.MuxError, match=f"a fragment of {mdat_size} bytes does not fit a "
                                               "32-bit mdat"):
        muxer.close()


def test_payload_views_are_copied_when_pushed(mux_impl: ModuleType) -> None:
    muxer = mux_impl.FragmentedMp4Muxer(ASC)
    k0, k0_nals = keyframe(1)
    video = bytearray(k0)
    sound = bytearray(b"\x21\x10snd")
    muxer.push(VIDEO, ORIGIN, True, memoryview(video))
    muxer.push(AUDIO, ORIGIN, False, sound)
    video[-9] ^= 0xFF  # inside the IDR NAL unit
    sound[2] = 0
    last = muxer.close()
    assert last is not None
    assert body(last, init=True) == reference(1, [(0, 0, k0_nals, True)], 3000,
                                              [(0, b"\x21\x10snd")])


def test_the_default_cuts_are_two_second_fragments_and_thirty_second_segments(
        mux_impl: ModuleType) -> None:
    muxer = mux_impl.FragmentedMp4Muxer(None)
    k0, _ = keyframe(1)
    muxer.push(VIDEO, ORIGIN, True, k0)
    assert muxer.push(VIDEO, ORIGIN + 1_990_000, False, delta(2)[0]) is None
    split = muxer.push(VIDEO, ORIGIN + 2_000_000, False, delta(3)[0])  # a long GOP is split
    assert split is not None and (split.sequence, split.ends_segment) == (1, False)
    kept = muxer.push(VIDEO, ORIGIN + 29_990_000, True, keyframe(4)[0])
    assert kept is not None and (kept.segment, kept.ends_segment) == (1, False)
    cut = muxer.push(VIDEO, ORIGIN + 30_000_000, True, keyframe(5)[0])
    assert cut is not None and (cut.segment, cut.ends_segment) == (1, True)
    last = muxer.close()
    assert last is not None and (last.segment, last.starts_segment) == (2, True)


def test_a_payload_that_is_not_annex_b_is_refused_with_its_time(mux_impl: ModuleType) -> None:
    muxer = mux_impl.FragmentedMp4Muxer(None)
    with pytest.raises(_mux_py.AnnexBError, match=r"video access unit at pts_us=1234567 is not "
                                                  r"H.264 Annex B: no start code"):
        muxer.push(VIDEO, 1_234_567, True, b"\x65\x01\x02")
