"""The ISO BMFF reader: real fragmented MP4 from PyAV (checked against ffprobe, made by
``support.segments.write_segments``) and synthetic files."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.integrity import bmff
from recorder.integrity.bmff import BoxFormatError
from support.segments import WrittenSegment, write_segments
from support.synthetic_bmff import (SynthRun, SynthTrack, box, synth_fragment, synth_moov,
                                    synthetic_files)

def ffprobe_packets(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                             "packet=stream_index,pts,dts,duration,size,flags", "-of", "json",
                             str(path)], check=True, capture_output=True, text=True)
    packets: list[dict[str, Any]] = json.loads(result.stdout)["packets"]
    return packets


@pytest.fixture(scope="module")
def pyav_segments(tmp_path_factory: pytest.TempPathFactory) -> list[WrittenSegment]:
    return write_segments(tmp_path_factory.mktemp("pyav"), seconds=4, segment_seconds=2,
                          b_frames=2)


def test_pyav_segments_parse_into_an_avc1_and_an_mp4a_track(
        pyav_segments: list[WrittenSegment]) -> None:
    for segment in pyav_segments:
        parsed = bmff.read_segment(segment.path)
        assert parsed.top_level[0].type == "ftyp" and parsed.top_level[1].type == "moov"
        assert sorted((t.handler, t.sample_entry) for t in parsed.tracks.values()) == [
            ("soun", "mp4a"), ("vide", "avc1")]
        assert len(parsed.fragments) == segment.video_keyframes == 2
        assert [f.sequence_number for f in parsed.fragments] == sorted(
            f.sequence_number for f in parsed.fragments)
        assert parsed.size == segment.path.stat().st_size


def test_sample_times_and_sizes_agree_with_ffprobe(pyav_segments: list[WrittenSegment]) -> None:
    for segment in pyav_segments:
        parsed = bmff.read_segment(segment.path)
        ours: dict[int, list[tuple[int, int, int, int]]] = {}
        for fragment in parsed.fragments:
            for run in fragment.runs:
                decode = run.base_decode_time
                for duration, size, offset in zip(run.durations, run.sizes,
                                                  run.composition_offsets):
                    ours.setdefault(run.track_id - 1, []).append(
                        (decode, decode + offset, duration, size))
                    decode += duration
        theirs: dict[int, list[tuple[int, int, int, int]]] = {}
        for packet in ffprobe_packets(segment.path):
            # ffprobe leaves out the duration of the first AAC packet (encoder priming): -1 there
            theirs.setdefault(packet["stream_index"], []).append(
                (packet["dts"], packet["pts"], packet.get("duration", -1), int(packet["size"])))
        assert ours.keys() == theirs.keys()
        for stream in ours:
            ours_sorted = sorted(ours[stream])
            theirs_sorted = sorted(theirs[stream])
            # ffprobe shifts presentation by the edit-list-free B-frame delay; decode side and
            # sizes must match exactly, presentation up to one constant shift per track
            assert [o[0] for o in ours_sorted] == [t[0] for t in theirs_sorted]
            assert [(t[2] if t[2] == -1 else o[2], o[3]) for o, t in zip(
                ours_sorted, theirs_sorted)] == [t[2:] for t in theirs_sorted]
            assert sum(1 for t in theirs_sorted if t[2] == -1) <= 1
            shifts = {t[1] - o[1] for o, t in zip(ours_sorted, theirs_sorted)}
            assert len(shifts) == 1


def test_decode_times_continue_from_one_pyav_segment_to_the_next(
        pyav_segments: list[WrittenSegment]) -> None:
    timings = [bmff.read_segment(segment.path).timing() for segment in pyav_segments]
    for before, after in zip(timings, timings[1:]):
        for track_id, timing in before.items():
            assert after[track_id].first_decode == timing.end_decode
            assert timing.internal_gaps == ()


def test_sample_bytes_located_by_the_runs_are_ffmpegs_packets(
        pyav_segments: list[WrittenSegment]) -> None:
    segment = pyav_segments[0]
    parsed = bmff.read_segment(segment.path)
    data = segment.path.read_bytes()
    with av.open(str(segment.path)) as source:
        packets = {(p.stream.index, p.dts): bytes(p) for p in source.demux() if p.size}
    for fragment in parsed.fragments:
        for run in fragment.runs:
            position, decode = run.data_offset, run.base_decode_time
            for duration, size in zip(run.durations, run.sizes):
                assert data[position:position + size] == packets[(run.track_id - 1, decode)]
                position += size
                decode += duration


@settings(max_examples=150, deadline=None)
@given(synthetic_files())
def test_synthetic_fragmented_files_parse_back_to_what_was_built(
        built: tuple[bytes, list[SynthTrack], list[list[SynthRun]]]) -> None:
    data, tracks, fragments = built
    parsed = _read_bytes(data)
    assert {t.track_id: (t.handler, t.timescale) for t in parsed.tracks.values()} == {
        t.track_id: (t.handler.decode(), t.timescale) for t in tracks}
    assert len(parsed.fragments) == len(fragments)
    for fragment, runs in zip(parsed.fragments, fragments):
        assert [(r.track_id, r.base_decode_time, r.durations, r.sizes, r.composition_offsets)
                for r in fragment.runs] == [
            (r.track_id, r.decode_time, r.durations, r.sizes, r.offsets) for r in runs]
        for run in fragment.runs:
            payload = data[run.data_offset:run.data_offset + sum(run.sizes)]
            assert payload == bytes((run.track_id * 16 + i) % 256 for i in range(len(payload)))
    for track_id, timing in parsed.timing().items():
        assert timing.internal_gaps == ()
        assert timing.end_decode == fragments[-1][track_id - 1].decode_time + sum(
            fragments[-1][track_id - 1].durations)


def _read_bytes(data: bytes) -> bmff.SegmentFile:
    return bmff.read_segment(io.BytesIO(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(synthetic_files(), st.data())
def test_a_file_cut_anywhere_is_refused_or_keeps_only_whole_fragments(
        built: tuple[bytes, list[SynthTrack], list[list[SynthRun]]], data: st.DataObject) -> None:
    whole, _, fragments = built
    cut = data.draw(st.integers(0, len(whole) - 1))
    try:
        parsed = _read_bytes(whole[:cut])
    except BoxFormatError as exc:
        assert 0 <= exc.offset <= len(whole)
        return
    assert len(parsed.fragments) < len(fragments)  # only a cut at a fragment boundary parses


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(synthetic_files(), st.data())
def test_damaged_bytes_raise_only_box_format_errors(
        built: tuple[bytes, list[SynthTrack], list[list[SynthRun]]], data: st.DataObject) -> None:
    whole = bytearray(built[0])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(whole) - 1))
        whole[position] = data.draw(st.integers(0, 255))
    try:
        _read_bytes(bytes(whole))
    except BoxFormatError:
        pass


@pytest.mark.parametrize("damage, message", [
    (lambda d: d[:4] + b"free" + d[8:], "does not start with an 'ftyp'"),
    (lambda d: d[:-3], "truncated"),
    (lambda d: d + b"\0\0\0", "3 bytes left"),
    (lambda d: d.replace(b"mvex", b"mvey", 1), "not a fragmented MP4"),
    (lambda d: d.replace(b"tfdt", b"tfdu", 1), "no 'tfdt'"),
])
def test_structural_faults_are_named(tmp_path: Path, damage: Any, message: str) -> None:
    tracks = [SynthTrack(1, b"vide", 90000, 3000)]
    runs = [SynthRun(1, 0, (3000, 3000), (10, 10), (0, 0))]
    options = {"base": "moof", "durations": "trun", "trun_version": 0, "tfdt_version": 1,
               "large_mdat": False}
    head = box(b"ftyp", b"iso6", bytes(4)) + synth_moov(tracks)
    data = head + synth_fragment(1, runs, len(head), options, {1: tracks[0]})
    with pytest.raises(BoxFormatError, match=message):
        _read_bytes(damage(data))


def test_a_run_pointing_outside_its_mdat_is_refused() -> None:
    tracks = [SynthTrack(1, b"vide", 90000, 3000)]
    runs = [SynthRun(1, 0, (3000,), (10,), (0,))]
    options = {"base": "explicit", "durations": "trun", "trun_version": 0, "tfdt_version": 0,
               "large_mdat": False}
    head = box(b"ftyp", b"iso6", bytes(4)) + synth_moov(tracks)
    fragment = synth_fragment(1, runs, len(head) + 100, options, {1: tracks[0]})
    with pytest.raises(BoxFormatError, match="outside the fragment's mdat"):
        _read_bytes(head + fragment)
