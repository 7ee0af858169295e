"""The ISO BMFF reader: real fragmented MP4 from PyAV (checked against ffprobe) and synthetic files.

``write_segments`` is also the source of test recordings for tests/test_verify.py: until the
project's own muxer lands, PyAV (libx264 + AAC, movflags frag_keyframe+empty_moov+
default_base_moof) makes real fragmented segments whose ``tfdt`` continue across files.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.integrity import bmff
from recorder.integrity.bmff import BoxFormatError

FPS = 30
SAMPLE_RATE = 48000
# frag_discont makes the mov muxer write each packet's own dts as tfdt instead of restarting
# every file at 0; avoid_negative_ts=disabled stops it shifting timestamps to start at zero.
SEGMENT_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof+frag_discont",
                   "avoid_negative_ts": "disabled"}


@dataclass(frozen=True)
class WrittenSegment:
    """A segment file written by PyAV, with the pts span of the packets in it (microseconds)."""

    path: Path
    first_pts_us: int
    last_pts_us: int
    video_keyframes: int


def _encode_recording(seconds: int, b_frames: int, audio: bool) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"g": str(FPS), "bf": str(b_frames), "preset": "ultrafast"}
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if audio else None
        for number in range(seconds * FPS):
            frame = av.VideoFrame.from_ndarray(
                np.full((48, 64, 3), (number * 7) % 256, np.uint8), format="rgb24")
            frame.pts, frame.time_base = number, Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            tone = np.sin(np.arange(1024, dtype=np.float32) / 5).reshape(1, -1)
            for start in range(0, seconds * SAMPLE_RATE, 1024):
                chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                chunk.time_base = Fraction(1, SAMPLE_RATE)
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return buffer.getvalue()


def write_segments(directory: Path, seconds: int = 4, segment_seconds: int = 2,
                   b_frames: int = 0, audio: bool = True) -> list[WrittenSegment]:
    """Encode ``seconds`` of test video (and AAC audio) and cut it into fragmented MP4 segments
    000001.mp4 ... at video keyframes every ``segment_seconds``; one fragment per second (GOP)."""
    directory.mkdir(parents=True, exist_ok=True)
    with av.open(io.BytesIO(_encode_recording(seconds, b_frames, audio))) as source:
        streams = list(source.streams)
        packets = [packet for packet in source.demux() if packet.size]
        keyframe_times = sorted(packet.pts * packet.time_base for packet in packets
                                if packet.stream.type == "video" and packet.is_keyframe)
        cuts = keyframe_times[::segment_seconds] + [Fraction(10**9)]
        written = []
        for number in range(len(cuts) - 1):
            chosen = [packet for packet in packets
                      if cuts[number] <= packet.pts * packet.time_base < cuts[number + 1]]
            path = directory / f"{number + 1:06d}.mp4"
            with av.open(str(path), "w", format="mp4", options=SEGMENT_OPTIONS) as out:
                mapping = {stream.index: out.add_stream_from_template(stream)
                           for stream in streams}
                for packet in chosen:
                    packet.stream = mapping[packet.stream.index]
                    out.mux(packet)
            times = [int(packet.pts * packet.time_base * 1_000_000) for packet in chosen]
            keyframes = sum(1 for packet in chosen
                            if packet.stream.type == "video" and packet.is_keyframe)
            written.append(WrittenSegment(path, min(times), max(times), keyframes))
    return written


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


# --- synthetic files: every layout the reader must understand, built box by box


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


@dataclass(frozen=True)
class SynthTrack:
    track_id: int
    handler: bytes
    timescale: int
    trex_duration: int


@dataclass(frozen=True)
class SynthRun:
    track_id: int
    decode_time: int
    durations: tuple[int, ...]
    sizes: tuple[int, ...]
    offsets: tuple[int, ...]


def synth_moov(tracks: list[SynthTrack]) -> bytes:
    traks = []
    for track in tracks:
        entry = b"avc1" if track.handler == b"vide" else b"mp4a"
        traks.append(box(
            b"trak",
            full_box(b"tkhd", 0, 3, struct.pack(">III", 0, 0, track.track_id), bytes(68)),
            box(b"mdia",
                full_box(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, track.timescale, 0),
                         bytes(4)),
                full_box(b"hdlr", 0, 0, bytes(4), track.handler, bytes(13)),
                box(b"minf", box(b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1),
                                                    box(entry, bytes(8))))))))
    trexes = [full_box(b"trex", 0, 0, struct.pack(">IIIII", t.track_id, 1, t.trex_duration,
                                                  0, 0)) for t in tracks]
    return box(b"moov", full_box(b"mvhd", 0, 0, bytes(96)), *traks, box(b"mvex", *trexes))


def synth_fragment(sequence: int, runs: list[SynthRun], file_offset: int, options: dict[str, Any],
                   tracks: dict[int, SynthTrack]) -> bytes:
    payloads = [bytes((run.track_id * 16 + i) % 256 for i in range(sum(run.sizes)))
                for run in runs]

    def build_moof(data_start: int) -> bytes:
        trafs, position = [], data_start
        for run, payload in zip(runs, payloads):
            flags, fields = 0, b""
            if options["base"] == "explicit":
                flags |= bmff.TFHD_BASE_DATA_OFFSET
                fields += struct.pack(">Q", position)
            else:
                flags |= bmff.TFHD_DEFAULT_BASE_IS_MOOF
            uniform = len(set(run.durations)) <= 1
            where = options["durations"] if uniform else "trun"
            if where == "tfhd" and run.durations:
                flags |= bmff.TFHD_DEFAULT_SAMPLE_DURATION
                fields += struct.pack(">I", run.durations[0])
            if where == "trex" and run.durations and \
                    run.durations[0] != tracks[run.track_id].trex_duration:
                where = "trun"
            trun_flags = bmff.TRUN_SAMPLE_SIZE | bmff.TRUN_SAMPLE_COMPOSITION_OFFSET
            if options["base"] == "moof":
                trun_flags |= bmff.TRUN_DATA_OFFSET
            if where == "trun":
                trun_flags |= bmff.TRUN_SAMPLE_DURATION
            entries = b""
            for duration, size, offset in zip(run.durations, run.sizes, run.offsets):
                if where == "trun":
                    entries += struct.pack(">I", duration)
                entries += struct.pack(">I", size)
                entries += struct.pack(">i" if options["trun_version"] else ">I", offset)
            data_offset = struct.pack(">i", position - file_offset) \
                if options["base"] == "moof" else b""
            tfdt_version = options["tfdt_version"]
            trafs.append(box(
                b"traf",
                full_box(b"tfhd", 0, flags, struct.pack(">I", run.track_id), fields),
                full_box(b"tfdt", tfdt_version, 0,
                         struct.pack(">Q" if tfdt_version else ">I", run.decode_time)),
                full_box(b"trun", options["trun_version"], trun_flags,
                         struct.pack(">I", len(run.durations)), data_offset, entries)))
            position += len(payload)
        return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)

    moof_size = len(build_moof(0))
    mdat_header = 16 if options["large_mdat"] else 8
    moof = build_moof(file_offset + moof_size + mdat_header)
    body = b"".join(payloads)
    if options["large_mdat"]:
        mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + len(body)) + body
    else:
        mdat = box(b"mdat", body)
    return moof + mdat


@st.composite
def synthetic_files(draw: st.DrawFn) -> tuple[bytes, list[SynthTrack], list[list[SynthRun]]]:
    track_count = draw(st.integers(1, 2))
    tracks = [SynthTrack(i + 1, b"vide" if i == 0 else b"soun",
                         draw(st.sampled_from([1000, 15360, 48000, 90000])),
                         draw(st.integers(0, 3000))) for i in range(track_count)]
    options = {"base": draw(st.sampled_from(["moof", "explicit"])),
               "durations": draw(st.sampled_from(["trun", "tfhd", "trex"])),
               "trun_version": draw(st.integers(0, 1)),
               "tfdt_version": draw(st.integers(0, 1)),
               "large_mdat": draw(st.booleans())}
    by_id = {track.track_id: track for track in tracks}
    data = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6cmfc") + synth_moov(tracks)
    decode = {track.track_id: draw(st.integers(0, 2**33 if options["tfdt_version"] else 2**31))
              for track in tracks}
    fragments = []
    for sequence in range(1, draw(st.integers(1, 4)) + 1):
        runs = []
        for track in tracks:
            count = draw(st.integers(1, 6))
            uniform = draw(st.booleans())
            first = draw(st.integers(1, 3000))
            durations = tuple(first if uniform else draw(st.integers(1, 3000))
                              for _ in range(count))
            if options["durations"] == "trex" and uniform:
                durations = (track.trex_duration or first,) * count
            low = -1000 if options["trun_version"] else 0
            runs.append(SynthRun(track.track_id, decode[track.track_id], durations,
                                 tuple(draw(st.integers(0, 40)) for _ in range(count)),
                                 tuple(draw(st.integers(low, 1000)) for _ in range(count))))
            decode[track.track_id] += sum(durations)
        data += synth_fragment(sequence, runs, len(data), options, by_id)
        fragments.append(runs)
    return data, tracks, fragments


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
