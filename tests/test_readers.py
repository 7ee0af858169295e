"""The one ISO BMFF reader in its torn mode (what recovery keeps of a segment a power cut cut
short) and the one manifest reader's typed records, on real segments and real signed manifests."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.media import aac, h264, interleave
from support.synthetic_bmff import (SynthRun, SynthTrack, box, full_box, synth_moov,
                                    synthetic_files)

from recorder.integrity import bmff, manifest
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import EventKind, ManifestWriter, RecordingHeader
from recorder.integrity.sealed_segment import SealedSegment
from recorder.storage import _mux_py

# --- the BMFF reader's torn mode


def _real_segment() -> bytes:
    """One segment of libx264 video and AAC audio from the project's muxer, short fragments."""
    config, audio = aac(1.0)
    units = interleave(h264(64, 48, frames=24, gop=6), audio)
    muxer = _mux_py.FragmentedMp4Muxer(config, segment_seconds=60, fragment_seconds=0.1)
    parts = [fragment.data for unit in units
             if (fragment := muxer.push(unit.stream, unit.pts_us, unit.is_keyframe, unit.payload,
                                        unit.dts_us)) is not None]
    last = muxer.close()
    assert last is not None
    return b"".join(parts) + last.data


def _shape(segment: bmff.SegmentFile) -> list[tuple[int, int, tuple[bmff.TrackRun, ...], int]]:
    return [(f.offset, f.sequence_number, f.runs, f.mdat.end) for f in segment.fragments]


def test_a_segment_cut_at_every_byte_of_its_last_fragment_keeps_the_fragments_before() -> None:
    data = _real_segment()
    whole = bmff.read_segment(data)
    assert len(whole.fragments) >= 3 and whole.timeline_origin_us is not None
    last = whole.fragments[-1]
    before = _shape(whole)[:-1]
    for cut in range(last.offset, len(data)):
        kept = bmff.read_whole_fragments(data[:cut])
        assert kept.segment is not None, cut
        assert _shape(kept.segment) == before, cut
        assert kept.end == last.offset, cut
        assert (kept.stopped is None) == (cut == last.offset), cut
        if kept.stopped is not None:
            assert last.offset <= kept.stopped.offset <= cut
        assert kept.segment.tracks == whole.tracks
        assert kept.segment.timeline_origin_us == whole.timeline_origin_us
    complete = bmff.read_whole_fragments(data)
    assert complete.stopped is None and complete.end == len(data)
    assert complete.segment == whole


def test_a_cut_inside_the_header_boxes_keeps_nothing() -> None:
    data = _real_segment()
    moov_end = bmff.read_segment(data).top_level[1].end
    for cut in (0, 7, 30, moov_end - 1):
        kept = bmff.read_whole_fragments(data[:cut])
        assert kept.segment is None and kept.end == 0 and kept.stopped is not None
    kept = bmff.read_whole_fragments(data[:moov_end])
    assert kept.segment is not None and kept.segment.fragments == () and kept.end == moov_end


def test_a_zero_size_box_at_the_end_is_not_taken_as_whole_by_torn_mode() -> None:
    data = _real_segment()
    last = bmff.read_segment(data).fragments[-1]
    zeroed = data[:last.offset] + bytes(len(data) - last.offset)
    kept = bmff.read_whole_fragments(zeroed)
    assert kept.segment is not None and kept.end == last.offset
    assert kept.stopped is not None and "size 0" in kept.stopped.reason


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(synthetic_files(), st.data())
def test_torn_mode_never_raises_and_keeps_a_prefix_of_what_strict_mode_reads(
        built: tuple[bytes, list[SynthTrack], list[list[SynthRun]]], data: st.DataObject) -> None:
    whole = built[0]
    strict = bmff.read_segment(whole)
    assert bmff.read_whole_fragments(whole).segment == strict
    damaged = bytearray(whole[:data.draw(st.integers(0, len(whole)))])
    for _ in range(data.draw(st.integers(0, 3))):
        if damaged:
            damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    kept = bmff.read_whole_fragments(bytes(damaged))
    assert 0 <= kept.end <= len(damaged)
    if kept.segment is not None and kept.end <= len(damaged):
        assert all(fragment.mdat.end <= kept.end for fragment in kept.segment.fragments)


def _one_run_file(count: int) -> bytes:
    """A file whose only trun declares ``count`` samples without per-sample fields (so of the
    trex default size, 0): nothing in the file's length bounds the count but the reader."""
    tracks = [SynthTrack(1, b"vide", 90000, 3000)]
    head = box(b"ftyp", b"iso6", bytes(4)) + synth_moov(tracks)
    traf = box(b"traf", full_box(b"tfhd", 0, bmff.TFHD_DEFAULT_BASE_IS_MOOF,
                                 struct.pack(">I", 1)),
               full_box(b"tfdt", 0, 0, struct.pack(">I", 0)),
               full_box(b"trun", 0, 0, struct.pack(">I", count)))
    moof = box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", 1)), traf)
    return head + moof + box(b"mdat", b"")


def test_a_sample_count_beyond_the_file_size_is_refused_before_anything_is_built() -> None:
    small = _one_run_file(3)
    assert bmff.read_segment(small).fragments[0].runs[0].sample_count == 3
    crafted = _one_run_file(900_000)
    with pytest.raises(bmff.BoxFormatError, match="more than the file has bytes"):
        bmff.read_segment(crafted)
    assert bmff.read_whole_fragments(crafted).segment.fragments == ()  # type: ignore[union-attr]


# --- the manifest reader's typed records

HEADER = RecordingHeader(recording_id="r1", device_id="cam7", officer_id="PC 1",
                         utc_start="2026-11-23T07:04:27.000000Z", monotonic_start_us=5,
                         clock_source="ntp")


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> DeviceKey:
    return DeviceKey.load_or_create(tmp_path_factory.mktemp("key"))


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
small_ints = st.integers(0, 2**40)
events = st.tuples(st.sampled_from(list(EventKind)), texts, st.none() | small_ints,
                   st.none() | st.dictionaries(st.sampled_from(["a", "b", "on"]),
                                               st.booleans() | small_ints | texts, max_size=3))
segments = st.tuples(small_ints, st.text("0123456789abcdef", min_size=64, max_size=64),
                     small_ints, small_ints, texts, texts, st.integers(0, 100), st.booleans())
entries = st.lists(st.one_of(events, segments), max_size=8)


def _write(directory: Path, key: DeviceKey, header: RecordingHeader,
           lines: list[tuple[object, ...]], seal: tuple[str, str] | None) -> list[object]:
    """Write a manifest of ``lines``; returns what each line was written from."""
    written: list[object] = [header]
    with ManifestWriter.create(directory, key, header) as writer:
        for entry in lines:
            if len(entry) == 4:
                kind, utc, pts, detail = entry
                writer.append_event(kind, utc, pts_us=pts, detail=detail)  # type: ignore[arg-type]
                written.append(entry)
            else:
                size, sha, first, length, utc_start, utc_end, fragments, recovered = entry
                index = sum(isinstance(item, SealedSegment) for item in written) + 1
                segment = SealedSegment(index, f"{index:06d}.mp4", size, sha, first,
                                        first + length, utc_start, utc_end, fragments, recovered)
                writer.append_segment(segment)  # type: ignore[arg-type]
                written.append(segment)
        if seal is not None:
            writer.seal(*seal)
            written.append(seal)
    return written


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.tuples(texts, texts, texts, texts, small_ints, texts,
                 st.dictionaries(st.sampled_from(["fps", "stealth", "name"]),
                                 st.booleans() | small_ints | texts, max_size=3)),
       entries, st.none() | st.tuples(texts, texts))
def test_random_valid_manifests_round_trip_through_the_typed_records(
        key: DeviceKey, header_fields: tuple, lines: list, seal: tuple[str, str] | None) -> None:
    header = RecordingHeader(*header_fields)
    with tempfile.TemporaryDirectory() as scratch:
        written = _write(Path(scratch), key, header, lines, seal)
        data = (Path(scratch) / manifest.MANIFEST_NAME).read_bytes()
    read = manifest.read_lines(data)
    assert read.problems == () and read.tail == b""
    records = manifest.read_records(data)
    assert records == read.records and len(records) == len(written)
    assert manifest.check_manifest(data, trusted_key=key.public_key,
                                   require_sealed=seal is not None).ok
    stored = data.splitlines(keepends=True)
    previous = manifest.GENESIS_PREV
    for number, (record, source) in enumerate(zip(records, written), 1):
        assert (record.number, record.seq, record.prev, record.stored) == (
            number, number, previous, stored[number - 1])
        assert manifest.canonical_bytes(record.obj) + b"\n" == record.stored
        assert len(record.sig) == 88
        previous = record.hash
        if isinstance(source, RecordingHeader):
            assert isinstance(record, manifest.Header) and read.header == record
            assert (record.recording_id, record.device_id, record.officer_id, record.utc_start,
                    record.monotonic_start_us, record.clock_source, record.settings) == (
                source.recording_id, source.device_id, source.officer_id, source.utc_start,
                source.monotonic_start_us, source.clock_source, source.settings)
            assert record.key_fingerprint == key.fingerprint and record.format == manifest.FORMAT
        elif isinstance(source, SealedSegment):
            assert isinstance(record, manifest.SegmentLine)
            assert {name: getattr(record, name) for name in source.as_dict()} == source.as_dict()
        elif len(source) == 4:
            assert isinstance(record, manifest.EventLine)
            assert (record.event, record.utc, record.pts_us, record.detail) == (
                source[0].value, source[1], source[2], source[3] or None)
        else:
            assert isinstance(record, manifest.SealedLine)
            assert (record.utc, record.reason) == source
            assert record.segments == len(read.segments())
            assert record.bytes == sum(segment.bytes for segment in read.segments())


@pytest.fixture(scope="module")
def signed(key: DeviceKey, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    directory = tmp_path_factory.mktemp("signed")
    _write(directory, key, HEADER,
           [(1000, "a" * 64, 0, 10, "u", "v", 2, False), (EventKind.MARKER, "t", 7, None),
            (EventKind.STEALTH, "t", None, {"on": True})], ("t", "stopped"))
    return (directory / manifest.MANIFEST_NAME).read_bytes()


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_manifests_raise_nothing_but_the_readers_own_error(signed: bytes,
                                                                    data: st.DataObject) -> None:
    damaged = bytearray(signed[:data.draw(st.integers(0, len(signed)))])
    for _ in range(data.draw(st.integers(0, 4))):
        if damaged:
            damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    read = manifest.read_lines(bytes(damaged))  # never raises
    assert b"".join(line.stored for line in read.lines) + read.tail == bytes(damaged)
    try:
        records = manifest.read_records(bytes(damaged))
    except manifest.ManifestReadError as exc:
        assert exc.problem in read.problems or (read.tail and not read.problems)
    else:
        assert records == read.records and not read.problems and not read.tail
    manifest.check_manifest(bytes(damaged))  # reports, never raises
