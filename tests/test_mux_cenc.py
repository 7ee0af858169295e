"""ISO Common Encryption ('cenc') in the pure muxer twin, with ffprobe and ffmpeg as oracles.

ffprobe sees ``encv``/``enca`` entries that stand for H.264 and AAC; ``ffmpeg -decryption_key``
decodes every frame, video and audio, to exactly the frames of the same units muxed in the clear;
without the key the decode fails or differs. ffmpeg 5.1 (Debian 12) is given ``-seekable 0``: on
a seekable file of several fragments it reads every ``moof`` ahead and then applies the last
fragment's encryption information to every packet (read through a pipe, it decodes the same
file correctly).
"""

from __future__ import annotations

import struct
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.capture.access_unit import AccessUnit
from recorder.capture.clock import ClockAnchor
from recorder.integrity.content_key import ContentKey
from recorder.station.media import MediaTypeError, mime_type
from recorder.storage._mux_cenc import (
    MAX_CLEAR_BYTES, EncryptingMp4Muxer, TooManySubsamplesError, sample_iv, subsamples,
)
from recorder.storage._mux_py import FragmentedMp4Muxer
from recorder.storage.segment_writer import SegmentWriter, recover_segments
from support.media import Unit, aac, boxes, h264, interleave

KEY = ContentKey(bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
                 bytes.fromhex("00112233445566778899aabbccddeeff"))


def mux(muxer: FragmentedMp4Muxer, units: list[Unit]) -> list[bytes]:
    segments: dict[int, list[bytes]] = {}
    for unit in units:
        fragment = muxer.push(unit.stream, unit.pts_us, unit.is_keyframe, unit.payload,
                              unit.dts_us)
        if fragment is not None:
            segments.setdefault(fragment.segment, []).append(fragment.data)
    last = muxer.close()
    if last is not None:
        segments.setdefault(last.segment, []).append(last.data)
    return [b"".join(parts) for _, parts in sorted(segments.items())]


def frame_hashes(path: Path, stream: str, key: ContentKey | None) -> tuple[int, list[str], str]:
    """(exit status, the MD5 of every decoded frame of ``stream``, errors) from ffmpeg."""
    decrypt = ["-decryption_key", key.key.hex()] if key is not None else []
    result = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", *decrypt, "-seekable", "0",
                             "-i", str(path), "-map", stream, "-f", "framemd5", "-"],
                            capture_output=True, text=True)
    hashes = [line.rsplit(",", 1)[1].strip() for line in result.stdout.splitlines()
              if line and not line.startswith("#")]
    return result.returncode, hashes, result.stderr


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[Path]]:
    """Two segments of video and audio, muxed encrypted and in the clear."""
    directory = tmp_path_factory.mktemp("cenc")
    config, audio = aac(3.0)
    units = interleave(h264(160, 120, frames=90, gop=30), audio)
    clear = mux(FragmentedMp4Muxer(config, segment_seconds=1.5), units)
    encrypted = mux(EncryptingMp4Muxer(config, content_key=KEY, segment_seconds=1.5), units)
    paths: tuple[list[Path], list[Path]] = ([], [])
    for kind, segments, out in (("clear", clear, paths[0]), ("cenc", encrypted, paths[1])):
        for index, data in enumerate(segments, 1):
            path = directory / f"{kind}-{index}.mp4"
            path.write_bytes(data)
            out.append(path)
    return paths


def test_ffprobe_sees_encrypted_entries_for_h264_and_aac(
        recorded: tuple[list[Path], list[Path]]) -> None:
    data = recorded[1][0].read_bytes()
    assert b"encv" in data and b"enca" in data and b"avc1" in data  # avc1 in frma
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_name,codec_tag_string", "-of", "csv=p=0",
                          str(recorded[1][0])], check=True, capture_output=True, text=True)
    assert [line.rstrip(",") for line in out.stdout.split()] == ["h264,avc1", "aac,mp4a"]
    trace = subprocess.run(["ffprobe", "-v", "trace", str(recorded[1][0])],
                           capture_output=True, text=True).stderr
    for box in ("encv", "enca", "frma", "schm", "tenc", "senc", "saiz", "saio", "pssh"):
        assert f"'{box}'" in trace or f"4CC={box}" in trace, box


def test_the_station_player_names_an_encrypted_track_by_the_codec_it_protects(
        recorded: tuple[list[Path], list[Path]]) -> None:
    clear, encrypted = recorded[0][0].read_bytes(), recorded[1][0].read_bytes()
    assert mime_type(clear).startswith('video/mp4; codecs="avc1.')
    assert mime_type(encrypted) == mime_type(clear)  # from the frma in encv's and enca's sinf
    with pytest.raises(MediaTypeError, match=r"track 1 \(encv\) has no valid sinf/frma box"):
        mime_type(encrypted.replace(b"frma", b"frmz"))


@pytest.mark.parametrize("stream", ["0:v", "0:a"])
def test_ffmpeg_with_the_key_decodes_every_frame_as_in_the_clear(
        recorded: tuple[list[Path], list[Path]], stream: str) -> None:
    for clear, encrypted in zip(*recorded):
        status, expected, errors = frame_hashes(clear, stream, None)
        assert status == 0 and expected and not errors
        status, decoded, errors = frame_hashes(encrypted, stream, KEY)
        assert (status, errors) == (0, "")
        assert decoded == expected


@pytest.mark.parametrize("stream", ["0:v", "0:a"])
def test_without_the_key_or_with_another_nothing_decodes_as_it_should(
        recorded: tuple[list[Path], list[Path]], stream: str) -> None:
    clear, encrypted = recorded[0][0], recorded[1][0]
    expected = frame_hashes(clear, stream, None)[1]
    wrong = ContentKey(KEY.key_id, bytes(16))
    for key in (None, wrong):
        status, decoded, errors = frame_hashes(encrypted, stream, key)
        assert status != 0 or errors or decoded != expected
        assert not set(decoded) & set(expected[1:])  # no frame but perhaps a first blank one


def test_the_same_key_and_units_give_the_same_bytes(
        recorded: tuple[list[Path], list[Path]]) -> None:
    config, audio = aac(3.0)
    units = interleave(h264(160, 120, frames=90, gop=30), audio)
    again = mux(EncryptingMp4Muxer(config, content_key=KEY, segment_seconds=1.5), units)
    assert again == [path.read_bytes() for path in recorded[1]]


def test_ivs_count_each_tracks_samples_over_the_whole_recording(
        recorded: tuple[list[Path], list[Path]]) -> None:
    ivs: dict[int, list[int]] = {1: [], 2: []}
    for path in recorded[1]:
        data = path.read_bytes()
        at = data.find(b"senc")
        while at >= 0:
            flags, count = struct.unpack(">II", data[at + 4:at + 12])
            position = at + 12
            for _ in range(count):
                iv = int.from_bytes(data[position:position + 8], "big")
                ivs[iv >> 56].append(iv & (1 << 56) - 1)
                position += 8
                if flags & 2:
                    position += 2 + 6 * struct.unpack(">H", data[position:position + 2])[0]
            at = data.find(b"senc", at + 4)
    assert ivs[1] == list(range(1, 91))
    assert ivs[2] == list(range(1, len(ivs[2]) + 1)) and len(ivs[2]) > 100
    assert sample_iv(2, 5) == bytes([2, 0, 0, 0, 0, 0, 0, 5])


def test_a_slice_keeps_its_length_and_header_clear_and_whole_blocks_encrypted() -> None:
    # SEI (6), SPS (7), PPS (8): clear; an IDR slice of 1 + 40 bytes: 4 + 1 + 8 clear, 32 not
    assert subsamples([(6, 20), (7, 10), (8, 5), (5, 41)]) == [(24 + 14 + 9 + 13, 32)]
    assert subsamples([(1, 17), (1, 33)]) == [(5, 16), (5, 32)]
    assert subsamples([(9, 2)]) == [(6, 0)]  # an access unit delimiter alone
    assert subsamples([(6, 70_000), (1, 100)]) == [(MAX_CLEAR_BYTES, 0), (70_004 + 5 + 3
                                                                          - MAX_CLEAR_BYTES, 96)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 31), st.integers(1, 200_000)), min_size=1, max_size=40))
def test_subsamples_cover_the_sample_exactly(nals: list[tuple[int, int]]) -> None:
    layout = subsamples(nals)
    assert sum(clear + protected for clear, protected in layout) == sum(4 + s for _, s in nals)
    assert all(protected % 16 == 0 and 0 <= clear <= MAX_CLEAR_BYTES
               for clear, protected in layout)
    protected_total = sum(protected for _, protected in layout)
    assert protected_total == sum(s - 1 - (s - 1) % 16 for t, s in nals
                                  if 1 <= t <= 5 and s > 16)


def test_a_frame_of_too_many_slices_is_refused_with_a_message() -> None:
    video = h264(160, 120, frames=1, gop=30)
    first = video[0].payload
    start = first.rfind(b"\x00\x00\x01")
    slice_nal = first[start:]
    payload = first + slice_nal * 60
    muxer = EncryptingMp4Muxer(None, content_key=KEY)
    with pytest.raises(TooManySubsamplesError, match="fewer slices per frame"):
        muxer.push(0, 1_000_000, True, payload)


def test_a_power_cut_encrypted_segment_recovers_and_still_decrypts(tmp_path: Path) -> None:
    """Recovery works as for a segment in the clear: cut to the last whole fragment, and every
    frame of what is kept decrypts as the same frames muxed in the clear."""
    config, audio = aac(3.0)
    units = interleave(h264(160, 120, frames=90, gop=15), audio)
    clock = ClockAnchor(datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc), 0)
    source = tmp_path / "source"
    source.mkdir()
    writer = SegmentWriter(source, audio_config=config, segment_seconds=100,
                           fragment_seconds=2.0, clock=clock, content_key=KEY)
    for unit in units:
        writer.write(AccessUnit(unit.stream, unit.pts_us, unit.is_keyframe, unit.payload))
    writer.close()
    whole = (source / "000001.mp4").read_bytes()
    ends = [offset + size for kind, offset, size in boxes(whole) if kind == "mdat"]
    assert len(ends) >= 4
    clear = tmp_path / "clear.mp4"
    clear.write_bytes(mux(FragmentedMp4Muxer(config, segment_seconds=100), units)[0])
    expected = frame_hashes(clear, "0:v", None)[1]
    for cut in (ends[1] + 500, ends[2] + 3):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        (directory / "000001.mp4.partial").write_bytes(whole[:cut])
        (segment,) = recover_segments(directory, clock=clock)
        kept = directory / segment.file
        assert kept.read_bytes() == whole[:max(end for end in ends if end <= cut)]
        status, decoded, errors = frame_hashes(kept, "0:v", KEY)
        assert (status, errors) == (0, "")
        assert decoded and decoded == expected[:len(decoded)]

