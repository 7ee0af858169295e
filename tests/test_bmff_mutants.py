"""The BMFF reader's exact results and refusals, pinned so that a one-token change fails.

Written against the survivors of a mutation run (mutmut) of ``recorder/integrity/bmff.py``:
every box field the reader returns, every bound at its exact limit (one byte or one box either
side), and every refusal with its error type, byte offset and key words. Files are built here box
by box, so each expected value can be worked out by hand from the bytes.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder.integrity import bmff
from recorder.integrity.bmff import Box, BoxFormatError, TrackRun
from support.synthetic_bmff import box, full_box

VIDEO, AUDIO = 1, 2
#: 24 bytes: major brand isom, minor version 0x200, compatible isom and iso6
FTYP = box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso6")
SAMPLE_FLAGS = bmff.TRUN_SAMPLE_DURATION | bmff.TRUN_SAMPLE_SIZE


def trak(track_id: int, handler: bytes, timescale: int, *, tkhd_version: int = 0,
         mdhd_version: int = 0, entry: bytes = b"avc1", entries: int = 1) -> bytes:
    """A trak with only what the reader reads: tkhd, mdia (mdhd, hdlr, minf/stbl/stsd)."""
    if tkhd_version:
        tkhd = full_box(b"tkhd", 1, 3, struct.pack(">QQI", 0, 0, track_id), bytes(80))
    else:
        tkhd = full_box(b"tkhd", 0, 3, struct.pack(">III", 0, 0, track_id), bytes(68))
    if mdhd_version:
        mdhd = full_box(b"mdhd", 1, 0, struct.pack(">QQIQ", 0, 0, timescale, 0), bytes(4))
    else:
        mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, timescale, 0), bytes(4))
    stsd = full_box(b"stsd", 0, 0, struct.pack(">I", entries), box(entry, bytes(8)))
    return box(b"trak", tkhd, box(b"mdia", mdhd,
                                  full_box(b"hdlr", 0, 0, bytes(4), handler, bytes(13)),
                                  box(b"minf", box(b"stbl", stsd))))


def trex(track_id: int, duration: int, size: int, flags: int) -> bytes:
    return full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, 1, duration, size, flags))


def moov(*children: bytes) -> bytes:
    return box(b"moov", full_box(b"mvhd", 0, 0, bytes(96)), *children)


#: video (track 1, 90 kHz, trex: 3000 ticks, 0 bytes, flags 0x10000) and audio (track 2,
#: 48 kHz, trex: 1024 ticks, 6 bytes, flags 0x2000000)
MOOV = moov(trak(VIDEO, b"vide", 90_000), trak(AUDIO, b"soun", 48_000, entry=b"mp4a"),
            box(b"mvex", trex(VIDEO, 3000, 0, 0x10000), trex(AUDIO, 1024, 6, 0x2000000)))
HEAD = FTYP + MOOV


def trun(flags: int, count: int, *fields: bytes, version: int = 0) -> bytes:
    return full_box(b"trun", version, flags, struct.pack(">I", count), *fields)


def entries(fmt: str, *rows: tuple[int, ...]) -> bytes:
    return b"".join(struct.pack(">" + fmt, *row) for row in rows)


def traf(track_id: int, *truns: bytes, tfhd_flags: int = bmff.TFHD_DEFAULT_BASE_IS_MOOF,
         tfhd_fields: bytes = b"", decode: int = 0, tfdt_version: int = 1) -> bytes:
    tfdt = full_box(b"tfdt", tfdt_version, 0,
                    struct.pack(">Q" if tfdt_version else ">I", decode))
    return box(b"traf", full_box(b"tfhd", 0, tfhd_flags, struct.pack(">I", track_id),
                                 tfhd_fields), tfdt, *truns)


def moof(sequence: int, *trafs: bytes) -> bytes:
    return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)


def mdat(size: int, fill: int = 0xAB) -> bytes:
    return box(b"mdat", bytes([fill]) * size)


def simple_fragment(sequence: int, sizes: tuple[int, ...], decode: int,
                    durations: tuple[int, ...] | None = None) -> bytes:
    """moof + mdat of one video run with per-sample durations and sizes, data right after the
    moof's mdat header (data offset = moof size + 8)."""
    durations = durations or (3000,) * len(sizes)

    def build(offset: int) -> bytes:
        return moof(sequence, traf(VIDEO, trun(SAMPLE_FLAGS | bmff.TRUN_DATA_OFFSET, len(sizes),
                                               struct.pack(">i", offset),
                                               entries("II", *zip(durations, sizes))),
                                   decode=decode))
    size = len(build(0))
    return build(size + 8) + mdat(sum(sizes))


def fragment(sequence: int, trafs: Callable[[int], list[bytes]], mdat_size: int) -> bytes:
    """moof + mdat, ``trafs(offset)`` given the offset of the mdat's data from the moof."""
    size = len(moof(sequence, *trafs(0)))
    return moof(sequence, *trafs(size + 8)) + mdat(mdat_size)


def at(offset: int) -> bytes:
    return struct.pack(">i", offset)


OFFSET = bmff.TRUN_DATA_OFFSET


def read(data: bytes) -> bmff.SegmentFile:
    return bmff.read_segment(data)


def refusal(data: bytes) -> BoxFormatError:
    with pytest.raises(BoxFormatError) as caught:
        read(data)
    return caught.value


# -- box headers -------------------------------------------------------------------------------


def test_a_box_header_gives_type_offset_size_and_header_size() -> None:
    data = bytes(3) + struct.pack(">I4s", 12, b"free") + bytes(4)
    found = bmff.parse_box_header(data, 3, 15, base=100)
    assert found == Box("free", 103, 12, 8)
    assert (found.end, found.payload_offset) == (115, 111)


def test_a_header_needs_eight_bytes_exactly() -> None:
    data = struct.pack(">I4s", 8, b"free")
    assert bmff.parse_box_header(data, 0, 8) == Box("free", 0, 8, 8)
    with pytest.raises(BoxFormatError, match="7 bytes left where a box header") as caught:
        bmff.parse_box_header(data, 0, 7, base=50)
    assert (caught.value.offset, str(caught.value)[:12]) == (50, "at byte 50: ")
    assert caught.value.reason.startswith("7 bytes left")


def test_a_64_bit_size_is_read_and_must_be_whole() -> None:
    data = struct.pack(">I4sQ", 1, b"mdat", 20) + bytes(4)
    assert bmff.parse_box_header(data, 0, 20) == Box("mdat", 0, 20, 16)
    with pytest.raises(BoxFormatError, match="'mdat' has a 64-bit size that is cut off") as caught:
        bmff.parse_box_header(data[:15], 0, 15, base=7)
    assert caught.value.offset == 7
    # exactly 16 bytes: the size is whole (and says 16: an empty box)
    assert bmff.parse_box_header(struct.pack(">I4sQ", 1, b"free", 16), 0, 16) == \
        Box("free", 0, 16, 16)


def test_size_zero_runs_to_the_end_of_the_parent() -> None:
    data = bytes(4) + struct.pack(">I4s", 0, b"mdat") + bytes(10)
    assert bmff.parse_box_header(data, 4, 22, base=1000) == Box("mdat", 1004, 18, 8)


def test_a_uuid_box_has_sixteen_more_header_bytes() -> None:
    data = struct.pack(">I4s", 24, b"uuid") + bytes(16)
    assert bmff.parse_box_header(data, 0, 24) == Box("uuid", 0, 24, 24)
    large = struct.pack(">I4sQ", 1, b"uuid", 32) + bytes(16)
    assert bmff.parse_box_header(large, 0, 32) == Box("uuid", 0, 32, 32)
    with pytest.raises(BoxFormatError, match="'uuid' declares 23 bytes, less than its own "
                                             "24-byte header"):
        bmff.parse_box_header(struct.pack(">I4s", 23, b"uuid") + bytes(16), 0, 24)


@pytest.mark.parametrize("size", [2, 7])
def test_a_size_below_the_header_is_refused(size: int) -> None:
    data = struct.pack(">I4s", size, b"free")
    with pytest.raises(BoxFormatError, match=f"'free' declares {size} bytes, less than its own "
                                             "8-byte header") as caught:
        bmff.parse_box_header(data, 0, 8, base=9)
    assert caught.value.offset == 9


def test_a_box_may_end_exactly_at_its_limit_and_not_one_byte_after() -> None:
    data = bytes(2) + struct.pack(">I4s", 10, b"skip") + bytes(2)
    assert bmff.parse_box_header(data, 2, 12).end == 12
    with pytest.raises(BoxFormatError, match="'skip' declares 10 bytes but only 9 remain") as \
            caught:
        bmff.parse_box_header(data, 2, 11, base=3)
    assert caught.value.offset == 5


def test_iter_boxes_walks_a_range_with_file_offsets() -> None:
    data = bytes(5) + box(b"aaaa", b"x") + box(b"bbbb") + box(b"cccc", b"yz")
    assert list(bmff.iter_boxes(data, 5, 5 + 9 + 8, base=40)) == [
        Box("aaaa", 45, 9, 8), Box("bbbb", 54, 8, 8)]
    assert [b.type for b in bmff.iter_boxes(data[5:])] == ["aaaa", "bbbb", "cccc"]
    assert list(bmff.iter_boxes(data, 5, 5)) == []


def test_iter_file_boxes_reads_headers_only() -> None:
    data = box(b"ftyp", b"isom") + struct.pack(">I4sQ", 1, b"mdat", 20) + bytes(4) + box(b"free")
    assert list(bmff.iter_file_boxes(io.BytesIO(data), len(data))) == [
        Box("ftyp", 0, 12, 8), Box("mdat", 12, 20, 16), Box("free", 32, 8, 8)]


# -- runs and timing -------------------------------------------------------------------------


def test_a_track_run_reports_its_count_end_and_presentation() -> None:
    run = TrackRun(1, 1000, (10, 20, 30), (1, 2, 3), (5, -15, 0), 7, 64)
    assert run.sample_count == 3
    assert run.end_decode_time == 1060
    assert run.presentation_times() == [1005, 995, 1030]
    assert run.presentation_span() == (995, 1030)
    assert TrackRun(1, 0, (), (), (), None, 0).presentation_times() == []


def test_ticks_are_converted_to_microseconds_rounded_to_nearest() -> None:
    track = bmff.Track(1, "vide", 3, "avc1", 0, 0, 0)
    timing = bmff.TrackTiming(track, 0, 0, 0, 0, 0, 0, ())
    assert [timing.to_us(t) for t in (0, 1, 2, 3)] == [0, 333_333, 666_667, 1_000_000]
    track = bmff.Track(1, "vide", 90_000, "avc1", 0, 0, 0)
    assert bmff.TrackTiming(track, 0, 0, 0, 0, 0, 0, ()).to_us(45) == 500


def test_timing_spans_fragments_and_reports_gaps_by_sequence_number() -> None:
    first = simple_fragment(1, (10, 20), decode=0, durations=(3000, 3003))
    data = HEAD + first
    second = simple_fragment(2, (5,), decode=6003, durations=(2000,))
    data += second
    third = simple_fragment(5, (7, 8), decode=9000, durations=(1000, 4000))
    data += third
    parsed = read(data)
    assert [f.sequence_number for f in parsed.fragments] == [1, 2, 5]
    assert set(parsed.timing()) == {VIDEO}  # the audio track has no samples
    timing = parsed.timing()[VIDEO]
    assert (timing.first_decode, timing.end_decode) == (0, 14_000)
    assert (timing.first_presentation, timing.last_presentation) == (0, 10_000)
    assert (timing.max_sample_duration, timing.samples) == (4000, 5)
    assert timing.internal_gaps == ((5, 997),)  # 8003 -> 9000, at the fragment numbered 5
    assert timing.track.timescale == 90_000


def test_timing_takes_presentation_extremes_across_runs() -> None:
    def fragment(sequence: int, decode: int, offsets: tuple[int, int], at: int) -> bytes:
        def build(offset: int) -> bytes:
            rows = [(1000, 4, o) for o in offsets]
            return moof(sequence, traf(VIDEO, trun(SAMPLE_FLAGS | bmff.TRUN_DATA_OFFSET
                                                   | bmff.TRUN_SAMPLE_COMPOSITION_OFFSET, 2,
                                                   struct.pack(">i", offset),
                                                   entries("IIi", *rows), version=1),
                                       decode=decode))
        return build(len(build(0)) + 8) + mdat(8)
    data = HEAD + fragment(1, 0, (500, -200), len(HEAD))
    data += fragment(2, 2000, (-100, 3000), len(data))
    timing = read(data).timing()[VIDEO]
    # presentation: 500 and 800, then 1900 and 6000
    assert (timing.first_presentation, timing.last_presentation) == (500, 6000)
    assert (timing.first_decode, timing.end_decode, timing.internal_gaps) == (0, 4000, ())


# -- the moov ----------------------------------------------------------------------------------


def test_tracks_carry_the_moov_and_trex_fields() -> None:
    parsed = read(HEAD)
    assert parsed.tracks == {
        VIDEO: bmff.Track(VIDEO, "vide", 90_000, "avc1", 3000, 0, 0x10000),
        AUDIO: bmff.Track(AUDIO, "soun", 48_000, "mp4a", 1024, 6, 0x2000000)}
    assert (parsed.size, parsed.major_brand, parsed.compatible_brands) == (
        len(HEAD), "isom", ("isom", "iso6"))
    assert parsed.fragments == () and parsed.timeline_origin_us is None
    assert parsed.top_level == (Box("ftyp", 0, 24, 8), Box("moov", 24, len(MOOV), 8))
    assert parsed.timing() == {}


def test_version_1_tkhd_and_mdhd_are_read() -> None:
    data = FTYP + moov(trak(7, b"vide", 1000, tkhd_version=1, mdhd_version=1),
                       box(b"mvex", trex(7, 40, 3, 9)))
    assert read(data).tracks == {7: bmff.Track(7, "vide", 1000, "avc1", 40, 3, 9)}


def test_trex_for_other_tracks_and_other_mvex_boxes_are_ignored() -> None:
    data = FTYP + moov(trak(3, b"soun", 8000, entry=b"mp4a"),
                       box(b"mvex", full_box(b"mehd", 0, 0, bytes(4)), trex(9, 1, 1, 1),
                           trex(3, 5, 6, 7)))
    assert read(data).tracks == {3: bmff.Track(3, "soun", 8000, "mp4a", 5, 6, 7)}


def _moov_fault(*children: bytes) -> BoxFormatError:
    return refusal(FTYP + moov(*children))


MVEX = box(b"mvex", trex(VIDEO, 3000, 0, 0))


@pytest.mark.parametrize(("children", "offset", "words"), [
    ((trak(VIDEO, b"vide", 90_000),), 24, "moov has no 'mvex' box: this is not a fragmented"),
    ((MVEX,), 24, "moov declares no tracks"),
    ((trak(VIDEO, b"vide", 0), MVEX), None, "track 1 has timescale 0"),
    ((trak(VIDEO, b"vide", 90_000, entries=0), MVEX), None, "track 1 has no sample description"),
    ((trak(VIDEO, b"vide", 90_000), trak(VIDEO, b"vide", 90_000), MVEX), None,
     "track 1 is declared twice"),
])
def test_moov_faults_are_named(children: tuple[bytes, ...], offset: int | None,
                               words: str | None) -> None:
    fault = _moov_fault(*children)
    if words is not None:
        assert words in fault.reason, fault
    if offset is not None:
        assert fault.offset == offset, fault


def test_the_missing_trex_is_blamed_on_the_mvex() -> None:
    children = (trak(VIDEO, b"vide", 90_000), box(b"mvex", trex(2, 1, 1, 1)))
    fault = _moov_fault(*children)
    assert fault.reason == "track 1 has no 'trex' defaults"
    assert fault.offset == 24 + 8 + 108 + len(children[0])


def test_the_timescale_fault_is_at_the_mdia_and_the_twice_at_the_second_trak() -> None:
    first = trak(VIDEO, b"vide", 0)
    fault = _moov_fault(first, MVEX)
    assert fault.offset == 24 + 8 + 108 + 8 + 92  # moov, mvhd, trak header, tkhd
    fault = _moov_fault(trak(VIDEO, b"vide", 5), trak(VIDEO, b"vide", 5), MVEX)
    assert fault.offset == 24 + 8 + 108 + len(first)


@pytest.mark.parametrize(("missing", "parent"), [
    (b"tkhd", "trak"), (b"mdia", "trak"), (b"mdhd", "mdia"), (b"hdlr", "mdia"),
    (b"minf", "mdia"), (b"stbl", "minf"), (b"stsd", "stbl")])
def test_each_required_box_of_a_trak_is_named_when_missing(missing: bytes, parent: str) -> None:
    broken = trak(VIDEO, b"vide", 90_000).replace(missing, b"zzzz", 1)
    fault = _moov_fault(broken, MVEX)
    assert fault.reason == f"box {parent!r} has no {missing.decode()!r} box"
    parent_offset = HEAD.index(parent.encode()) - 4 if parent != "trak" else 24 + 8 + 108
    assert fault.offset == parent_offset


def test_a_sample_description_without_entries_is_refused_at_the_stsd() -> None:
    empty = trak(VIDEO, b"vide", 90_000).replace(box(b"avc1", bytes(8)), b"")
    empty = _resize(empty)
    fault = _moov_fault(empty, MVEX)
    assert fault.reason == "track 1 has no sample description"
    data = FTYP + moov(empty, MVEX)
    assert fault.offset == data.index(b"stsd") - 4


def _resize(trak_bytes: bytes) -> bytes:
    """Rewrite the sizes of the boxes enclosing the stsd after its payload shrank by 16."""
    out = bytearray(trak_bytes)
    for kind in (b"trak", b"mdia", b"minf", b"stbl", b"stsd"):
        at = out.index(kind) - 4
        (size,) = struct.unpack_from(">I", out, at)
        struct.pack_into(">I", out, at, size - 16)
    return bytes(out)


def test_a_field_read_past_its_box_is_refused_with_the_offset() -> None:
    short_trex = full_box(b"trex", 0, 0, struct.pack(">IIII", VIDEO, 1, 3000, 0))  # no flags
    fault = _moov_fault(trak(VIDEO, b"vide", 90_000), box(b"mvex", short_trex))
    data = FTYP + moov(trak(VIDEO, b"vide", 90_000), box(b"mvex", short_trex))
    assert fault.reason == "box 'trex' is too short for its fields"
    assert fault.offset == data.index(b"trex") + 8  # after its header and version/flags


def test_a_box_may_hold_4096_boxes_but_not_4097() -> None:
    for count, fails in ((4096, False), (4097, True)):
        padding = b"".join(box(b"free") for _ in range(count - 3))
        data = FTYP + moov(trak(VIDEO, b"vide", 90_000), MVEX, padding)
        if fails:
            fault = refusal(data)
            assert fault.reason == "box 'moov' holds more than 4096 boxes: it is damaged"
            assert fault.offset == len(data) - 8  # the 4097th
        else:
            assert list(read(data).tracks) == [VIDEO]


# -- ftyp -------------------------------------------------------------------------------------


def test_ftyp_brands_and_their_limits() -> None:
    assert read(box(b"ftyp", b"mp42", bytes(4)) + MOOV).compatible_brands == ()
    three = box(b"ftyp", b"mp42", bytes(4), b"aaaabbbbcc")  # a trailing partial brand: skipped
    assert read(three + MOOV).compatible_brands == ("aaaa", "bbbb")
    fault = refusal(box(b"ftyp", b"mp42") + MOOV)
    assert (fault.offset, fault.reason) == (8, "box 'ftyp' is too short for its fields")
    many = box(b"ftyp", b"mp42", bytes(4), b"abcd" * 4096)
    assert len(read(many + MOOV).compatible_brands) == 4096
    fault = refusal(box(b"ftyp", b"mp42", bytes(4), b"abcd" * 4097) + MOOV)
    assert (fault.offset, fault.reason) == (0, "the ftyp lists more than 4096 brands: it is "
                                               "damaged")


# -- fragments ---------------------------------------------------------------------------------


def test_a_fragment_with_default_base_is_moof_and_every_trun_field() -> None:
    flags = (bmff.TRUN_DATA_OFFSET | bmff.TRUN_FIRST_SAMPLE_FLAGS | bmff.TRUN_SAMPLE_DURATION
             | bmff.TRUN_SAMPLE_SIZE | bmff.TRUN_SAMPLE_FLAGS | bmff.TRUN_SAMPLE_COMPOSITION_OFFSET)

    def build(offset: int) -> bytes:
        return moof(3, traf(VIDEO, trun(flags, 2, struct.pack(">iI", offset, 0x2000000),
                                        entries("IIIi", (3000, 11, 0x10000, -3000),
                                                (3001, 12, 0x20000, 6000)), version=1),
                            decode=2**40))
    fragment = build(len(build(0)) + 8) + mdat(23)
    parsed = read(HEAD + fragment)
    (frag,) = parsed.fragments
    moof_size = len(build(0))
    assert (frag.offset, frag.sequence_number) == (len(HEAD), 3)
    assert frag.mdat == Box("mdat", len(HEAD) + moof_size, 31, 8)
    assert frag.runs == (TrackRun(VIDEO, 2**40, (3000, 3001), (11, 12), (-3000, 6000),
                                  0x2000000, len(HEAD) + moof_size + 8),)


def test_unsigned_composition_offsets_in_a_version_0_trun() -> None:
    flags = bmff.TRUN_DATA_OFFSET | bmff.TRUN_SAMPLE_SIZE | bmff.TRUN_SAMPLE_COMPOSITION_OFFSET

    def build(offset: int) -> bytes:
        return moof(1, traf(VIDEO, trun(flags, 1, struct.pack(">i", offset),
                                        entries("II", (4, 0xFFFFFFFF))), decode=5,
                            tfdt_version=0))
    parsed = read(HEAD + build(len(build(0)) + 8) + mdat(4))
    (run,) = parsed.fragments[0].runs
    assert (run.base_decode_time, run.durations, run.sizes, run.composition_offsets,
            run.first_sample_flags) == (5, (3000,), (4,), (0xFFFFFFFF,), None)


def test_defaults_come_from_the_tfhd_before_the_trex() -> None:
    tfhd_flags = (bmff.TFHD_BASE_DATA_OFFSET | bmff.TFHD_SAMPLE_DESCRIPTION_INDEX
                  | bmff.TFHD_DEFAULT_SAMPLE_DURATION | bmff.TFHD_DEFAULT_SAMPLE_SIZE
                  | bmff.TFHD_DEFAULT_SAMPLE_FLAGS)
    moof_box = moof(1, traf(AUDIO, trun(0, 3), tfhd_flags=tfhd_flags,
                            tfhd_fields=struct.pack(">QIIII", 0, 1, 960, 4, 0), decode=77))
    data_start = len(HEAD) + len(moof_box) + 8
    moof_box = moof(1, traf(AUDIO, trun(0, 3), tfhd_flags=tfhd_flags,
                            tfhd_fields=struct.pack(">QIIII", data_start, 1, 960, 4, 0),
                            decode=77))
    parsed = read(HEAD + moof_box + mdat(12))
    assert parsed.fragments[0].runs == (TrackRun(AUDIO, 77, (960,) * 3, (4,) * 3, (0,) * 3,
                                                 None, data_start),)


def test_trex_defaults_and_two_truns_joined_in_one_traf() -> None:
    # audio: trex gives 1024 ticks and 6 bytes; the second run has no data offset: its bytes
    # follow the first run's
    def trafs(offset: int) -> list[bytes]:
        return [traf(AUDIO, trun(OFFSET, 2, at(offset)),
                     trun(bmff.TRUN_SAMPLE_SIZE, 1, entries("I", (9,))))]
    data = HEAD + fragment(1, trafs, 21)
    start = len(data) - 21
    assert read(data).fragments[0].runs == (TrackRun(AUDIO, 0, (1024, 1024, 1024), (6, 6, 9),
                                                     (0, 0, 0), None, start),)
    fault = refusal(HEAD + fragment(1, trafs, 20))  # the second run needs the 21st byte
    assert fault.reason.startswith(f"track 2's samples (bytes {start + 12}-{start + 21}) lie "
                                   f"outside the fragment's mdat (bytes {start}-{start + 20})")


def test_without_a_base_a_traf_starts_where_the_previous_one_ended() -> None:
    def build(offset: int) -> bytes:
        first = traf(VIDEO, trun(SAMPLE_FLAGS | bmff.TRUN_DATA_OFFSET, 1,
                                 struct.pack(">i", offset), entries("II", (3000, 10))))
        second = traf(AUDIO, trun(bmff.TRUN_SAMPLE_SIZE, 2, entries("I", (3,), (4,))),
                      tfhd_flags=0, decode=9)
        return moof(1, first, second)
    size = len(build(0))
    parsed = read(HEAD + build(size + 8) + mdat(17))
    video, audio = parsed.fragments[0].runs
    data_start = len(HEAD) + size + 8
    assert video.data_offset == data_start
    assert audio == TrackRun(AUDIO, 9, (1024, 1024), (3, 4), (0, 0), None, data_start + 10)


def test_the_first_traf_without_a_base_starts_at_the_moof() -> None:
    moof_box = moof(1, traf(AUDIO, trun(bmff.TRUN_SAMPLE_SIZE, 1, entries("I", (2,))),
                            tfhd_flags=0))
    fault = refusal(HEAD + moof_box + mdat(2))  # its bytes would be the moof's own
    assert fault.reason.startswith(f"track 2's samples (bytes {len(HEAD)}-{len(HEAD) + 2}) lie "
                                   "outside the fragment's mdat")


def test_a_traf_without_samples_adds_no_run() -> None:
    moof_box = moof(1, traf(VIDEO), traf(AUDIO, trun(bmff.TRUN_SAMPLE_SIZE, 1,
                                                     entries("I", (2,))), tfhd_flags=0))
    # the audio traf starts at the moof (the video traf had no run to end anywhere)
    data = HEAD + moof_box + mdat(2)
    fault = refusal(data)
    assert f"(bytes {len(HEAD)}-{len(HEAD) + 2})" in fault.reason


def test_samples_may_fill_their_mdat_exactly_and_not_one_byte_more() -> None:
    def build(offset: int, sizes: tuple[int, ...]) -> bytes:
        return moof(1, traf(VIDEO, trun(SAMPLE_FLAGS | bmff.TRUN_DATA_OFFSET, len(sizes),
                                        struct.pack(">i", offset),
                                        entries("II", *[(3000, s) for s in sizes]))))
    size = len(build(0, (5, 5)))
    assert read(HEAD + build(size + 8, (5, 5)) + mdat(10)).fragments[0].runs[0].sizes == (5, 5)
    fault = refusal(HEAD + build(size + 8, (5, 6)) + mdat(10))
    start = len(HEAD) + size + 8
    assert fault.offset == len(HEAD)
    assert fault.reason == (f"track 1's samples (bytes {start}-{start + 11}) lie outside the "
                            f"fragment's mdat (bytes {start}-{start + 10})")
    fault = refusal(HEAD + build(size + 7, (5, 4)) + mdat(10))  # one byte before the mdat data
    assert fault.offset == len(HEAD)


def test_a_run_without_entries_must_be_paid_for_by_mdat_bytes() -> None:
    def samples(count: int, mdat_size: int) -> bytes:  # 6-byte trex samples
        return fragment(1, lambda o: [traf(AUDIO, trun(OFFSET, count, at(o)))], mdat_size)
    assert read(HEAD + samples(3, 18)).fragments[0].runs[0].sizes == (6, 6, 6)
    fault = refusal(HEAD + samples(3, 17))
    assert fault.offset == len(HEAD) + 8 + 16 + 8 + 16 + 20  # the trun: after mfhd, tfhd, tfdt
    assert fault.reason == ("trun declares 3 samples of 6 bytes without per-sample entries, "
                            "more than the fragment's mdat holds (17 bytes left): the box is "
                            "damaged")


def test_the_mdat_budget_is_shared_by_the_runs_of_a_fragment() -> None:
    def trafs(offset: int) -> list[bytes]:
        return [traf(AUDIO, trun(OFFSET, 2, at(offset)), trun(0, 1))]
    assert read(HEAD + fragment(1, trafs, 18)).fragments[0].runs[0].sample_count == 3
    fault = refusal(HEAD + fragment(1, trafs, 17))
    assert "trun declares 1 samples of 6 bytes" in fault.reason
    assert "(5 bytes left)" in fault.reason


def test_a_few_empty_samples_pass_but_not_seventeen() -> None:
    def fragment(count: int) -> bytes:  # video's trex size is 0: samples of no bytes
        return moof(1, traf(VIDEO, trun(0, count))) + box(b"mdat")
    assert read(HEAD + fragment(16)).fragments[0].runs[0].sizes == (0,) * 16
    fault = refusal(HEAD + fragment(17))
    assert fault.reason.startswith("trun declares 17 samples of 0 bytes without per-sample")
    assert "(0 bytes left)" in fault.reason
    # 17 samples of no bytes need 17 bytes of mdat (one each), and have them here
    parsed = read(HEAD + moof(1, traf(VIDEO, trun(0, 17))) + mdat(17))
    assert parsed.fragments[0].runs[0].sample_count == 17


def test_a_fragment_without_an_mdat_the_budget_is_zero() -> None:
    moof_box = moof(1, traf(AUDIO, trun(0, 1)))
    fault = refusal(HEAD + moof_box + box(b"free", bytes(10)))
    assert "(0 bytes left)" in fault.reason


def test_declared_entries_must_fit_in_the_trun() -> None:
    body = entries("II", (3000, 1), (3000, 1))
    ok = fragment(1, lambda o: [traf(VIDEO, trun(SAMPLE_FLAGS | OFFSET, 2, at(o), body))], 2)
    assert read(HEAD + ok).fragments[0].runs[0].sample_count == 2
    short = fragment(1, lambda o: [traf(VIDEO, trun(SAMPLE_FLAGS | OFFSET, 3, at(o), body))], 3)
    fault = refusal(HEAD + short)
    assert fault.reason == "trun declares 3 samples but holds fewer entries"
    assert fault.offset == len(HEAD) + 8 + 16 + 8 + 16 + 20


def test_the_sample_budget_is_one_per_eight_bytes_of_the_file() -> None:
    body = HEAD + moof(1, traf(VIDEO, trun(SAMPLE_FLAGS, 2, entries("II", (1, 1), (1, 1)))))
    size = len(body) + 8 + 2
    assert size // 8 >= 2
    assert bmff.MIN_BYTES_PER_SAMPLE == 8
    budget = bmff._SampleBudget(size)
    assert budget.remaining == size // 8 and budget.mdat_bytes == 0
    where = Box("trun", 77, 20, 8)
    budget.spend(size // 8, where)
    assert budget.remaining == 0
    with pytest.raises(BoxFormatError, match="trun declares 1 samples, more than the file has "
                                             "bytes left for") as caught:
        budget.spend(1, where)
    assert caught.value.offset == 77
    budget = bmff._SampleBudget(80)
    budget.mdat_bytes = 10
    budget.spend_data(5, 2, where)
    assert budget.mdat_bytes == 0
    budget.spend_data(16, 0, where)  # placeholders: free
    with pytest.raises(BoxFormatError, match="trun declares 1 samples of 1 bytes"):
        budget.spend_data(1, 1, where)


def test_a_count_above_the_file_budget_is_refused_before_reading() -> None:
    moof_box = moof(1, traf(VIDEO, trun(SAMPLE_FLAGS, 1000, entries("II", (1, 1)))))
    data = HEAD + moof_box + mdat(1)
    fault = refusal(data)
    assert fault.reason == ("trun declares 1000 samples, more than the file has bytes left "
                            "for: the box is damaged")


def test_more_samples_than_a_run_may_hold_are_refused() -> None:
    limit = bmff.MAX_SAMPLES_PER_RUN
    assert limit == 1_000_000
    moof_box = moof(1, traf(VIDEO, trun(SAMPLE_FLAGS, limit + 1)))
    fault = refusal(HEAD + moof_box + mdat(1))
    assert fault.reason == ("trun declares 1000001 samples, more than 1000000: the box is "
                            "damaged")
    assert fault.offset == len(HEAD) + 8 + 16 + 8 + 16 + 20
    # exactly the limit passes that check and meets the file's budget instead
    fault = refusal(HEAD + moof(1, traf(VIDEO, trun(SAMPLE_FLAGS, limit))) + mdat(1))
    assert "more than the file has bytes left for" in fault.reason


def test_fragment_faults_are_named_with_their_offsets() -> None:
    unknown = moof(1, traf(5, trun(0, 0)))
    fault = refusal(HEAD + unknown + mdat(0))
    assert (fault.offset, fault.reason) == (len(HEAD) + 24, "fragment refers to track 5, which "
                                                            "the moov does not declare")
    no_tfdt = moof(1, box(b"traf", full_box(b"tfhd", 0, 0x20000, struct.pack(">I", VIDEO))))
    fault = refusal(HEAD + no_tfdt + mdat(0))
    assert (fault.offset, fault.reason) == (len(HEAD) + 24, "track 1's fragment has no 'tfdt' "
                                                            "(decode time): its timing cannot be "
                                                            "checked")
    no_mfhd = box(b"moof", traf(VIDEO))
    fault = refusal(HEAD + no_mfhd + mdat(0))
    assert (fault.offset, fault.reason) == (len(HEAD), "box 'moof' has no 'mfhd' box")


def test_sequence_numbers_must_increase() -> None:
    first = simple_fragment(4, (1,), 0)
    assert [f.sequence_number for f in read(HEAD + first + simple_fragment(5, (1,), 3000))
            .fragments] == [4, 5]
    for repeated in (4, 3):
        data = HEAD + first
        fault = refusal(data + simple_fragment(repeated, (1,), 3000))
        assert (fault.offset, fault.reason) == (
            len(data), f"fragment sequence number {repeated} does not follow 4")
    fault = refusal(HEAD + simple_fragment(0, (1,), 0))
    assert fault.reason == "fragment sequence number 0 does not follow 0"


def test_top_level_order_faults() -> None:
    fault = refusal(HEAD + MOOV)
    assert (fault.offset, fault.reason) == (len(HEAD), "a second 'moov' box")
    fragment = simple_fragment(1, (1,), 0)
    fault = refusal(FTYP + fragment)
    assert (fault.offset, fault.reason) == (24, "a 'moof' before the 'moov'")
    fault = refusal(FTYP + box(b"free"))
    assert (fault.offset, fault.reason) == (32, "the file has no 'moov' box")
    fault = refusal(MOOV + FTYP)
    assert (fault.offset, fault.reason) == (0, "the file does not start with an 'ftyp' box: "
                                               "not an MP4")
    fault = refusal(b"")
    assert fault.offset == 0 and "does not start with an 'ftyp'" in fault.reason


def test_a_moof_without_its_mdat_is_refused() -> None:
    moof_only = simple_fragment(1, (2,), 0)[:-10]
    fault = refusal(HEAD + moof_only)
    assert (fault.offset, fault.reason) == (
        len(HEAD) + len(moof_only), f"the fragment at byte {len(HEAD)} has no 'mdat' after its "
                                    "'moof'")
    second = simple_fragment(2, (2,), 3000)
    fault = refusal(HEAD + moof_only + second)
    assert fault.offset == len(HEAD) + len(moof_only)
    assert fault.reason.startswith(f"the fragment at byte {len(HEAD)} has no 'mdat'")


def test_boxes_around_fragments_are_kept_in_the_top_level() -> None:
    fragment = simple_fragment(1, (3,), 0)
    data = HEAD + box(b"free", b"xx") + fragment + mdat(4) + box(b"skip")
    parsed = read(data)
    assert [b.type for b in parsed.top_level] == ["ftyp", "moov", "free", "moof", "mdat", "mdat",
                                                  "skip"]
    assert len(parsed.fragments) == 1 and parsed.size == len(data)


def test_the_timeline_origin_is_read_from_its_uuid_box() -> None:
    def with_uuid(kind: bytes, payload: bytes) -> bytes:
        return FTYP + moov(trak(VIDEO, b"vide", 90_000), MVEX,
                           box(b"uuid", kind, payload))
    origin = struct.pack(">Iq", 0, -1_234_567_890_123)
    assert read(with_uuid(bmff.TIMELINE_UUID, origin)).timeline_origin_us == -1_234_567_890_123
    assert read(with_uuid(bmff.TIMELINE_UUID, origin[:11])).timeline_origin_us is None
    assert read(with_uuid(bytes(16), origin)).timeline_origin_us is None
    plain = FTYP + moov(trak(VIDEO, b"vide", 90_000), MVEX, box(b"free", bytes(16) + origin))
    assert read(plain).timeline_origin_us is None


@pytest.mark.parametrize("kind", ["bytes", "str", "path", "file"])
def test_every_kind_of_source_reads_the_same(tmp_path: Path, kind: str) -> None:
    data = HEAD + simple_fragment(1, (4,), 0)
    path = tmp_path / "segment.mp4"
    path.write_bytes(data)
    source = {"bytes": data, "str": str(path), "path": path, "file": io.BytesIO(data)}[kind]
    assert bmff.read_segment(source) == read(data)


# -- torn files -------------------------------------------------------------------------------


def test_a_torn_segment_keeps_its_whole_fragments() -> None:
    first = simple_fragment(1, (4,), 0)
    second = simple_fragment(2, (6,), 3000)
    data = HEAD + first + second
    whole = bmff.read_whole_fragments(data[:-1])
    assert whole.segment is not None
    assert whole.end == len(HEAD + first)
    assert [f.sequence_number for f in whole.segment.fragments] == [1]
    assert whole.segment.top_level == read(HEAD + first).top_level
    assert whole.segment.size == len(data) - 1
    assert whole.stopped is not None and whole.stopped.offset == len(HEAD + first) + \
        len(second) - 14
    assert "declares 14 bytes but only 13 remain" in whole.stopped.reason
    clean = bmff.read_whole_fragments(data)
    assert (clean.end, clean.stopped) == (len(data), None)
    assert clean.segment == read(data)


def test_a_torn_segment_cut_in_its_first_moof_keeps_the_moov() -> None:
    first = simple_fragment(1, (4,), 0)
    whole = bmff.read_whole_fragments(HEAD + first[:20])
    assert whole.segment is not None and whole.segment.fragments == ()
    assert whole.end == len(HEAD)
    assert whole.segment.top_level == read(HEAD).top_level


def test_a_moof_whose_mdat_was_torn_off_is_not_kept() -> None:
    first = simple_fragment(1, (4,), 0)
    moof_only = simple_fragment(2, (4,), 3000)[:-12]
    whole = bmff.read_whole_fragments(HEAD + first + moof_only)
    assert whole.segment is not None and whole.end == len(HEAD + first)
    assert whole.stopped is not None
    assert whole.stopped.reason.startswith(f"the fragment at byte {len(HEAD + first)} has no")
    assert [b.type for b in whole.segment.top_level] == ["ftyp", "moov", "moof", "mdat"]


def test_a_fault_inside_a_later_fragment_ends_the_reading_there() -> None:
    first = simple_fragment(1, (4,), 0)
    data = HEAD + first + simple_fragment(1, (4,), 3000)  # sequence 1 again
    whole = bmff.read_whole_fragments(data)
    assert whole.segment is not None and whole.end == len(HEAD + first)
    assert whole.stopped is not None and "does not follow 1" in whole.stopped.reason


def test_a_torn_file_without_its_moov_has_no_segment() -> None:
    for data in (b"", FTYP[:10], FTYP + MOOV[:-1], FTYP + box(b"free")):
        whole = bmff.read_whole_fragments(data)
        assert (whole.segment, whole.end) == (None, 0), data[:16]
        assert isinstance(whole.stopped, BoxFormatError)
    assert bmff.read_whole_fragments(FTYP + box(b"free")).stopped.reason == \
        "the file has no 'moov' box"
    torn_moov = bmff.read_whole_fragments(FTYP + MOOV[:-1]).stopped
    assert torn_moov is not None and torn_moov.offset == 24


def test_a_last_box_of_size_zero_cannot_be_told_whole() -> None:
    first = simple_fragment(1, (4,), 0)
    open_ended = struct.pack(">I4s", 0, b"mdat") + bytes(9)
    whole = bmff.read_whole_fragments(HEAD + first + open_ended)
    assert whole.end == len(HEAD + first)
    assert whole.stopped is not None and whole.stopped.offset == len(HEAD + first)
    assert whole.stopped.reason == ("box 'mdat' declares size 0 (to the end of the file): it "
                                    "cannot be told whole")
    # read strictly, the same box is fine: it runs to the end of the file
    assert [b.size for b in read(HEAD + first + open_ended).top_level][-1] == 17


def test_the_top_level_box_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bmff.MAX_TOP_LEVEL_BOXES == 200_000
    monkeypatch.setattr(bmff, "MAX_TOP_LEVEL_BOXES", 4)
    assert len(read(HEAD + box(b"free") + box(b"free")).top_level) == 4
    data = HEAD + box(b"free") + box(b"free") + box(b"free")
    fault = refusal(data)
    assert (fault.offset, fault.reason) == (len(data) - 8, "more than 4 top-level boxes: the "
                                                           "file is damaged")
    whole = bmff.read_whole_fragments(data)
    assert whole.segment is not None and whole.end == len(HEAD)
    assert whole.stopped is not None and whole.stopped.offset == len(data) - 8


# -- edges found by the mutation run ------------------------------------------------------------


def test_box_types_are_latin_1() -> None:
    data = struct.pack(">I", 8) + b"\xa9too"
    assert bmff.parse_box_header(data, 0, 8).type == "\xa9too"


def test_trailing_partial_brands_are_skipped() -> None:
    assert read(box(b"ftyp", b"mp42", bytes(4), b"aaaabbbb") + MOOV).compatible_brands == (
        "aaaa", "bbbb")
    assert read(box(b"ftyp", b"mp42", bytes(4), b"aaaabbb") + MOOV).compatible_brands == (
        "aaaa",)


def test_a_run_of_no_samples_is_kept_and_left_out_of_the_timing() -> None:
    moof_box = moof(1, traf(VIDEO, trun(SAMPLE_FLAGS, 0)), traf(AUDIO, decode=5))
    parsed = read(HEAD + moof_box + box(b"mdat"))
    assert parsed.fragments[0].runs == (TrackRun(VIDEO, 0, (), (), (), None, len(HEAD)),)
    assert parsed.timing() == {}


def test_samples_of_no_bytes_may_point_anywhere() -> None:
    moof_box = moof(1, traf(VIDEO, trun(OFFSET, 2, at(100_000))))  # trex: 0 bytes a sample
    (run,) = read(HEAD + moof_box + box(b"mdat")).fragments[0].runs
    assert (run.sizes, run.data_offset) == ((0, 0), len(HEAD) + 100_000)


def test_the_mdat_budget_counts_the_data_of_a_64_bit_mdat() -> None:
    def large(count: int, data_bytes: int) -> bytes:
        def build(offset: int) -> bytes:
            return moof(1, traf(AUDIO, trun(OFFSET, count, at(offset))))
        size = len(build(0))
        return build(size + 16) + struct.pack(">I4sQ", 1, b"mdat", 16 + data_bytes) + \
            bytes(data_bytes)
    assert read(HEAD + large(2, 12)).fragments[0].mdat.header_size == 16
    fault = refusal(HEAD + large(2, 11))
    assert "(11 bytes left)" in fault.reason


def test_a_torn_first_box_is_the_reason_given() -> None:
    whole = bmff.read_whole_fragments(FTYP[:10])
    assert whole.stopped is not None and whole.stopped.offset == 0
    assert whole.stopped.reason.startswith("box 'ftyp' declares 24 bytes but only 10 remain")
    empty = bmff.read_whole_fragments(b"")
    assert empty.stopped is not None and "does not start with an 'ftyp'" in empty.stopped.reason


def test_header_bounds_count_from_the_box_not_the_buffer() -> None:
    data = bytes(3) + struct.pack(">I4s", 8, b"free")
    with pytest.raises(BoxFormatError) as caught:
        bmff.parse_box_header(data, 3, 10)  # 7 bytes left, 3 bytes into the buffer
    assert caught.value.reason == ("7 bytes left where a box header (8 bytes) is needed: the "
                                   "file is truncated or has trailing garbage")
    data = bytes(9) + struct.pack(">I4sQ", 1, b"mdat", 16)
    with pytest.raises(BoxFormatError) as caught:
        bmff.parse_box_header(data, 9, 24)  # 15 bytes left, 9 into the buffer
    assert caught.value.reason == "box 'mdat' has a 64-bit size that is cut off"
    assert caught.value.offset == 9


@pytest.mark.parametrize(("header", "declared", "left"), [
    (struct.pack(">I4s", 0x8000_0000, b"free"), 0x8000_0000, 8),
    (struct.pack(">I4sQ", 1, b"free", 2**63 + 1), 2**63 + 1, 16)])
def test_box_sizes_are_unsigned(header: bytes, declared: int, left: int) -> None:
    with pytest.raises(BoxFormatError) as caught:
        bmff.parse_box_header(header, 0, len(header))
    assert caught.value.reason == (f"box 'free' declares {declared} bytes but only {left} remain: "
                                   "the file is truncated or the box size was changed")


def test_iter_boxes_offsets_default_to_the_buffer() -> None:
    assert list(bmff.iter_boxes(box(b"aaaa") + box(b"bbbb", b"x"))) == [
        Box("aaaa", 0, 8, 8), Box("bbbb", 8, 9, 8)]


def test_to_us_is_an_int_rounded_half_up() -> None:
    track = bmff.Track(1, "vide", 90_000, "avc1", 0, 0, 0)
    timing = bmff.TrackTiming(track, 0, 0, 0, 0, 0, 0, ())
    assert timing.to_us(5) == 56 and type(timing.to_us(5)) is int  # 55.56 us


def test_every_field_is_read_unsigned_where_the_format_says_so() -> None:
    big_video, big_audio = 0x8000_0001, 0x8000_0002
    head = FTYP + moov(trak(big_video, b"\xa9vid", 0x8000_0000, tkhd_version=1, mdhd_version=1),
                       trak(big_audio, b"soun", 0x9000_0000, entries=0x8000_0001),
                       box(b"mvex", trex(big_video, 0x9000_0000, 0, 0xF000_0000),
                           trex(big_audio, 1, 1, 1)))
    flags = bmff.TFHD_DEFAULT_BASE_IS_MOOF | bmff.TFHD_DEFAULT_SAMPLE_DURATION

    def trafs(offset: int) -> list[bytes]:
        first = trun(OFFSET | bmff.TRUN_FIRST_SAMPLE_FLAGS | SAMPLE_FLAGS, 1,
                     struct.pack(">iI", offset, 0xA000_0000), entries("II", (0x9000_0001, 4)))
        return [traf(big_video, first, trun(bmff.TRUN_SAMPLE_SIZE, 1, entries("I", (3,))),
                     tfhd_flags=flags, tfhd_fields=struct.pack(">I", 0x9000_0002),
                     decode=2**63 + 5)]
    data = head + fragment(0x8000_0000, trafs, 7)
    parsed = read(data)
    assert parsed.tracks == {
        big_video: bmff.Track(big_video, "\xa9vid", 0x8000_0000, "avc1", 0x9000_0000, 0,
                              0xF000_0000),
        big_audio: bmff.Track(big_audio, "soun", 0x9000_0000, "avc1", 1, 1, 1)}
    (frag,) = parsed.fragments
    assert frag.sequence_number == 0x8000_0000
    assert frag.runs == (TrackRun(big_video, 2**63 + 5, (0x9000_0001, 0x9000_0002), (4, 3),
                                  (0, 0), 0xA000_0000, len(data) - 7),)
    huge = moof(1, traf(VIDEO, trun(SAMPLE_FLAGS, 0x8000_0000)))
    assert refusal(HEAD + huge + mdat(1)).reason == (
        "trun declares 2147483648 samples, more than 1000000: the box is damaged")


def test_a_trun_data_offset_is_signed() -> None:
    """With an explicit base after the data, a negative offset points back into the mdat."""
    def build(base: int) -> bytes:
        return moof(1, traf(VIDEO, trun(OFFSET | SAMPLE_FLAGS, 1, at(-6), entries("II", (1, 6))),
                            tfhd_flags=bmff.TFHD_BASE_DATA_OFFSET,
                            tfhd_fields=struct.pack(">Q", base)))
    size = len(build(0))
    data_start = len(HEAD) + size + 8
    parsed = read(HEAD + build(data_start + 6) + mdat(6))
    assert parsed.fragments[0].runs[0].data_offset == data_start


def test_timing_skips_a_track_without_samples_whatever_its_place() -> None:
    def audio_only(offset: int) -> list[bytes]:
        return [traf(AUDIO, trun(OFFSET, 1, at(offset)), decode=1024)]
    data = HEAD + simple_fragment(1, (2,), 0) + fragment(2, audio_only, 6)
    data += simple_fragment(3, (2,), 3500)
    timing = read(data).timing()
    assert timing[VIDEO].internal_gaps == ((3, 500),)  # video's fragments are 1 and 3
    assert (timing[AUDIO].first_decode, timing[AUDIO].samples) == (1024, 1)
    audio_first = HEAD + fragment(1, audio_only, 6)
    assert set(read(audio_first).timing()) == {AUDIO}  # the video track, first, has none


def test_a_trun_with_durations_but_no_sizes_uses_the_default_size() -> None:
    def trafs(offset: int) -> list[bytes]:
        return [traf(AUDIO, trun(OFFSET | bmff.TRUN_SAMPLE_DURATION, 2, at(offset),
                                 entries("I", (1000,), (1048,))))]
    (run,) = read(HEAD + fragment(1, trafs, 12)).fragments[0].runs
    assert (run.durations, run.sizes, run.composition_offsets) == ((1000, 1048), (6, 6), (0, 0))


def test_joined_runs_keep_the_first_runs_first_sample_flags() -> None:
    def trafs(offset: int) -> list[bytes]:
        return [traf(AUDIO, trun(OFFSET | bmff.TRUN_FIRST_SAMPLE_FLAGS, 1,
                                 struct.pack(">iI", offset, 0x0200_0000)), trun(0, 1))]
    (run,) = read(HEAD + fragment(1, trafs, 12)).fragments[0].runs
    assert (run.first_sample_flags, run.sizes) == (0x0200_0000, (6, 6))


def test_4096_brands_and_a_partial_one_are_not_too_many() -> None:
    ftyp = box(b"ftyp", b"mp42", bytes(4), b"abcd" * 4096 + b"xyz")
    assert len(read(ftyp + MOOV).compatible_brands) == 4096


def test_a_box_between_a_moof_and_its_mdat_is_skipped() -> None:
    def build(offset: int) -> bytes:
        return moof(1, traf(VIDEO, trun(SAMPLE_FLAGS | OFFSET, 1, at(offset),
                                        entries("II", (3000, 5)))))
    size = len(build(0))
    data = HEAD + build(size + 16 + 8) + box(b"free", bytes(8)) + mdat(5)
    (frag,) = read(data).fragments
    assert frag.mdat.offset == len(HEAD) + size + 16


def test_moov_messages_in_full() -> None:
    assert _moov_fault(trak(VIDEO, b"vide", 90_000)).reason == (
        "moov has no 'mvex' box: this is not a fragmented MP4")
    assert _moov_fault(MVEX).reason == "moov declares no tracks"


def test_a_tfhd_default_size_is_unsigned() -> None:
    flags = bmff.TFHD_DEFAULT_BASE_IS_MOOF | bmff.TFHD_DEFAULT_SAMPLE_SIZE
    trafs = [traf(AUDIO, trun(OFFSET, 1, at(0)), tfhd_flags=flags,
                  tfhd_fields=struct.pack(">I", 0x8000_0000))]
    fault = refusal(HEAD + moof(1, *trafs) + mdat(1))
    assert fault.reason.startswith("trun declares 1 samples of 2147483648 bytes without "
                                   "per-sample entries")
