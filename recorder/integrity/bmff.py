"""Reads the structure of fragmented MP4 (ISO BMFF) segment files: boxes, tracks, fragment timing.

Only box headers and the small ``moov``/``moof`` boxes are read; media data (``mdat``) is skipped
by seeking, so checking a 40 MB segment reads a few kilobytes. Every inconsistency (a box running
past its parent or the file, a sample run pointing outside its ``mdat``, an unknown track) raises
``BoxFormatError`` naming the byte offset, so `bwv verify` can say where a segment breaks.

`read_whole_fragments` is the same reader for a segment a power cut left torn: it stops at the
first box that is not whole (or not valid) and returns the whole fragments before it, and where
and why it stopped; recovery (recorder.storage.segment_writer) keeps exactly those bytes.

Every read is bounded by the file's own size: a box may not claim more bytes than remain, and a
file may not declare more samples than it has bytes, so a crafted size or count field cannot make
the reader allocate or loop beyond what the file holds. Each sample must be paid for by bytes of
the file (ISO/IEC 14496-12 8.8.8): a ``trun`` with per-sample fields by its own entries, one
without by its samples' data in the fragment's ``mdat`` (at least one byte each); and no box may
hold more than `MAX_CHILD_BOXES` boxes, no file more than `MAX_TOP_LEVEL_BOXES`. Time and memory
are thus linear in the file's size with a small constant, whatever its count fields say.
"""

from __future__ import annotations

import io
import itertools
import operator
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from ..errors import RecorderError

#: Extended type of the ``uuid`` box in ``moov`` that records the recording's timeline origin
#: (uuid5(NAMESPACE_URL, "bwv-recorder:timeline")); players skip it, recovery reads it.
TIMELINE_UUID = bytes.fromhex("c561d76e99bb5327a123c4a25c94c155")

# tfhd flags (ISO/IEC 14496-12 8.8.7)
TFHD_BASE_DATA_OFFSET = 0x000001
TFHD_SAMPLE_DESCRIPTION_INDEX = 0x000002
TFHD_DEFAULT_SAMPLE_DURATION = 0x000008
TFHD_DEFAULT_SAMPLE_SIZE = 0x000010
TFHD_DEFAULT_SAMPLE_FLAGS = 0x000020
TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
# trun flags (8.8.8)
TRUN_DATA_OFFSET = 0x000001
TRUN_FIRST_SAMPLE_FLAGS = 0x000004
TRUN_SAMPLE_DURATION = 0x000100
TRUN_SAMPLE_SIZE = 0x000200
TRUN_SAMPLE_FLAGS = 0x000400
TRUN_SAMPLE_COMPOSITION_OFFSET = 0x000800

# A fragment holds at most a few seconds: 48 kHz AAC is 47 samples a second, 240 fps video 240.
# Far above any real run, this bound stops a damaged count from allocating gigabytes.
MAX_SAMPLES_PER_RUN = 1_000_000
# Every sample takes at least this many bytes of its file: 4 or more of trun entries (a real
# muxer writes at least size and duration) and bytes of data (an AAC frame is 6 or more).
MIN_BYTES_PER_SAMPLE = 8
# A trun without per-sample fields whose samples have no data is backed by nothing in the file:
# a few such samples are let through (placeholders), not millions.
MAX_EMPTY_SAMPLES_PER_RUN = 16
# A moof holds a traf per track, a moov a trak per track: thousands of boxes in one are damage.
MAX_CHILD_BOXES = 4096
# A segment holds two top-level boxes per fragment: 200,000 is hours of 0.1 s fragments.
MAX_TOP_LEVEL_BOXES = 200_000


class BoxFormatError(RecorderError, ValueError):
    """The bytes are not a well-formed fragmented MP4; ``offset`` is where the fault was found."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"at byte {offset}: {message}")
        self.offset = offset
        self.reason = message


@dataclass(frozen=True)
class Box:
    """One box header: its four-character type, where it starts and how long it is."""

    type: str
    offset: int  # of the box's first byte, from the start of the file
    size: int  # whole box, header included
    header_size: int  # 8, or 16 with a 64-bit size (and +16 for a uuid type)

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def payload_offset(self) -> int:
        return self.offset + self.header_size


def _box_type(raw: bytes) -> str:
    return raw.decode("latin-1")


def parse_box_header(data: bytes, position: int, limit: int, base: int = 0) -> Box:
    """The box starting at ``data[position]`` that must end by ``data[limit]``.

    ``base`` is the file offset of ``data[0]``, so errors and boxes carry file offsets.
    """
    where = base + position
    if limit - position < 8:
        raise BoxFormatError(where, f"{limit - position} bytes left where a box header (8 bytes) "
                                    "is needed: the file is truncated or has trailing garbage")
    size, raw_type = struct.unpack_from(">I4s", data, position)
    box_type = _box_type(raw_type)
    header = 8
    if size == 1:
        if limit - position < 16:
            raise BoxFormatError(where, f"box {box_type!r} has a 64-bit size that is cut off")
        (size,) = struct.unpack_from(">Q", data, position + 8)
        header = 16
    elif size == 0:
        size = limit - position  # the box runs to the end of its parent (or the file)
    if box_type == "uuid":
        header += 16
    if size < header:
        raise BoxFormatError(where, f"box {box_type!r} declares {size} bytes, less than its "
                                    f"own {header}-byte header")
    if position + size > limit:
        raise BoxFormatError(where, f"box {box_type!r} declares {size} bytes but only "
                                    f"{limit - position} remain: the file is truncated or the "
                                    "box size was changed")
    return Box(box_type, where, size, header)


def iter_boxes(data: bytes, start: int = 0, end: int | None = None,
               base: int = 0) -> Iterator[Box]:
    """The boxes laid end to end in ``data[start:end]`` (file offsets shifted by ``base``)."""
    limit = len(data) if end is None else end
    position = start
    while position < limit:
        box = parse_box_header(data, position, limit, base)
        yield box
        position += box.size


def iter_file_boxes(file: BinaryIO, size: int) -> Iterator[Box]:
    """The top-level boxes of an open file of ``size`` bytes, reading only their headers."""
    position = 0
    while position < size:
        file.seek(position)
        head = file.read(16)
        box = parse_box_header(head, 0, size - position, position)
        yield box
        position = box.end


@dataclass(frozen=True)
class Track:
    """One track of a segment as its ``moov`` declares it."""

    track_id: int
    handler: str  # "vide", "soun" ...
    timescale: int  # ticks per second of this track's decode times
    sample_entry: str  # "avc1", "mp4a" ...
    default_sample_duration: int  # from trex: used when a fragment gives none
    default_sample_size: int
    default_sample_flags: int


@dataclass(frozen=True)
class TrackRun:
    """The samples of one track in one fragment (a ``traf``, its ``trun`` boxes joined)."""

    track_id: int
    base_decode_time: int  # tfdt, in the track's timescale
    durations: tuple[int, ...]
    sizes: tuple[int, ...]
    composition_offsets: tuple[int, ...]
    first_sample_flags: int | None
    data_offset: int  # file offset of the first sample's bytes

    @property
    def sample_count(self) -> int:
        return len(self.durations)

    @property
    def end_decode_time(self) -> int:
        return self.base_decode_time + sum(self.durations)

    def presentation_span(self) -> tuple[int, int]:
        """(earliest, latest) presentation time of a run with samples, in ticks: computed
        in C-level passes without a list, so a run of millions of samples costs no memory."""
        def times() -> Iterator[int]:
            decodes = itertools.accumulate(self.durations[:-1], initial=self.base_decode_time)
            return map(operator.add, decodes, self.composition_offsets)
        return min(times()), max(times())

    def presentation_times(self) -> list[int]:
        """Each sample's presentation time (decode time + composition offset), in ticks."""
        times = []
        decode = self.base_decode_time
        for duration, offset in zip(self.durations, self.composition_offsets):
            times.append(decode + offset)
            decode += duration
        return times


@dataclass(frozen=True)
class Fragment:
    """One ``moof`` and the ``mdat`` holding its samples."""

    offset: int  # of the moof box
    sequence_number: int  # mfhd
    runs: tuple[TrackRun, ...]
    mdat: Box


@dataclass(frozen=True)
class TrackTiming:
    """Where one track's samples lie in time within a segment, in that track's ticks."""

    track: Track
    first_decode: int
    end_decode: int  # decode time just after the last sample
    first_presentation: int
    last_presentation: int  # presentation time of the latest-presented sample's start
    max_sample_duration: int
    samples: int
    internal_gaps: tuple[tuple[int, int], ...]  # (fragment sequence number, gap in ticks)

    def to_us(self, ticks: int) -> int:
        """Ticks of this track in microseconds, rounded to nearest."""
        return (ticks * 1_000_000 + self.track.timescale // 2) // self.track.timescale


@dataclass(frozen=True)
class SegmentFile:
    """The parsed structure of one fragmented MP4 segment."""

    size: int
    major_brand: str
    compatible_brands: tuple[str, ...]
    tracks: dict[int, Track]
    fragments: tuple[Fragment, ...]
    top_level: tuple[Box, ...]
    # the pts_us of decode time 0, from the moov's timeline ``uuid`` box (docs/formats.md); None
    # when there is none, or it is too short to hold one
    timeline_origin_us: int | None = None

    def timing(self) -> dict[int, TrackTiming]:
        """Per track with samples: its decode and presentation span, and gaps between fragments."""
        result: dict[int, TrackTiming] = {}
        for track_id, track in self.tracks.items():
            runs = [run for fragment in self.fragments for run in fragment.runs
                    if run.track_id == track_id and run.sample_count]
            if not runs:
                continue
            gaps = []
            for previous, run, fragment in zip(runs, runs[1:], self._fragments_of(track_id)[1:]):
                if run.base_decode_time != previous.end_decode_time:
                    gaps.append((fragment.sequence_number,
                                 run.base_decode_time - previous.end_decode_time))
            spans = [run.presentation_span() for run in runs]
            result[track_id] = TrackTiming(
                track=track, first_decode=runs[0].base_decode_time,
                end_decode=runs[-1].end_decode_time,
                first_presentation=min(first for first, _ in spans),
                last_presentation=max(last for _, last in spans),
                max_sample_duration=max(max(run.durations) for run in runs),
                samples=sum(run.sample_count for run in runs), internal_gaps=tuple(gaps))
        return result

    def _fragments_of(self, track_id: int) -> list[Fragment]:
        return [fragment for fragment in self.fragments
                if any(run.track_id == track_id and run.sample_count for run in fragment.runs)]


class _Reader:
    """Big-endian fields from one box's payload, with errors at file offsets."""

    def __init__(self, data: bytes, box: Box, base: int) -> None:
        self.data = data
        self.box = box
        self.position = box.payload_offset - base
        self.end = box.end - base
        self.base = base

    def take(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if self.position + size > self.end:
            raise BoxFormatError(self.base + self.position,
                                 f"box {self.box.type!r} is too short for its fields")
        values = struct.unpack_from(fmt, self.data, self.position)
        self.position += size
        return values

    def full_box(self) -> tuple[int, int]:
        (word,) = self.take(">I")
        return word >> 24, word & 0xFFFFFF


def _children(data: bytes, box: Box, base: int) -> list[Box]:
    """The boxes inside ``box``; at most `MAX_CHILD_BOXES`, so a box packed with thousands of
    empty 8-byte boxes cannot make the reader build a list of millions."""
    children: list[Box] = []
    for child in iter_boxes(data, box.payload_offset - base, box.end - base, base):
        if len(children) == MAX_CHILD_BOXES:
            raise BoxFormatError(child.offset, f"box {box.type!r} holds more than "
                                               f"{MAX_CHILD_BOXES} boxes: it is damaged")
        children.append(child)
    return children


def _find(boxes: list[Box], box_type: str) -> Box | None:
    return next((box for box in boxes if box.type == box_type), None)


def _need(boxes: list[Box], box_type: str, parent: Box) -> Box:
    box = _find(boxes, box_type)
    if box is None:
        raise BoxFormatError(parent.offset, f"box {parent.type!r} has no {box_type!r} box")
    return box


def _parse_moov(data: bytes, moov: Box) -> dict[int, Track]:
    base = moov.offset
    children = _children(data, moov, base)
    trex: dict[int, tuple[int, int, int]] = {}
    mvex = _find(children, "mvex")
    if mvex is None:
        raise BoxFormatError(moov.offset, "moov has no 'mvex' box: this is not a fragmented MP4")
    for box in _children(data, mvex, base):
        if box.type == "trex":
            reader = _Reader(data, box, base)
            reader.full_box()
            track_id, _, duration, size, flags = reader.take(">IIIII")
            trex[track_id] = (duration, size, flags)
    tracks: dict[int, Track] = {}
    for trak in (box for box in children if box.type == "trak"):
        track_id, mdia, media = _trak_media(data, trak, base)
        reader = _Reader(data, _need(media, "mdhd", mdia), base)
        version, _ = reader.full_box()
        (timescale,) = reader.take(">QQI" if version == 1 else ">III")[2:]
        if timescale == 0:
            raise BoxFormatError(mdia.offset, f"track {track_id} has timescale 0")
        handler, stsd = _handler_and_stsd(data, mdia, media, base)
        reader = _Reader(data, stsd, base)
        reader.full_box()
        (count,) = reader.take(">I")
        entries = list(iter_boxes(data, reader.position, stsd.end - base, base))
        if count < 1 or not entries:
            raise BoxFormatError(stsd.offset, f"track {track_id} has no sample description")
        if track_id not in trex:
            raise BoxFormatError(mvex.offset, f"track {track_id} has no 'trex' defaults")
        if track_id in tracks:
            raise BoxFormatError(trak.offset, f"track {track_id} is declared twice")
        duration, size, flags = trex[track_id]
        tracks[track_id] = Track(track_id, _box_type(handler), timescale, entries[0].type,
                                 duration, size, flags)
    if not tracks:
        raise BoxFormatError(moov.offset, "moov declares no tracks")
    return tracks


@dataclass
class _RunLayout:
    run: TrackRun
    data_start: int  # file offset of the run's first sample byte
    data_size: int


class _SampleBudget:
    """How many more samples the file may declare: one per `MIN_BYTES_PER_SAMPLE` bytes, so a
    crafted count cannot make the reader build more entries than the file can describe."""

    def __init__(self, file_size: int) -> None:
        self.remaining = file_size // MIN_BYTES_PER_SAMPLE
        self.mdat_bytes = 0  # data bytes of the fragment being read not yet given to samples

    def spend(self, count: int, trun: Box) -> None:
        if count > self.remaining:
            raise BoxFormatError(trun.offset, f"trun declares {count} samples, more than the "
                                              "file has bytes left for: the box is damaged")
        self.remaining -= count

    def spend_data(self, count: int, sample_size: int, trun: Box) -> None:
        """A run without per-sample fields: nothing in the moof backs its samples, so their
        data must, in the fragment's mdat, at least one byte each (a count of millions in a
        few bytes of trun would otherwise cost seconds and gigabytes); a few empty samples
        (`MAX_EMPTY_SAMPLES_PER_RUN`) are let through."""
        if sample_size == 0 and count <= MAX_EMPTY_SAMPLES_PER_RUN:
            return
        needed = count * max(sample_size, 1)
        if needed > self.mdat_bytes:
            raise BoxFormatError(trun.offset, f"trun declares {count} samples of "
                                              f"{sample_size} bytes without per-sample entries, "
                                              f"more than the fragment's mdat holds "
                                              f"({self.mdat_bytes} bytes left): the box is "
                                              "damaged")
        self.mdat_bytes -= needed


Columns = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def _sample_columns(reader: _Reader, run_flags: int, fields: str, count: int, duration: int,
                    size: int) -> Columns:
    """(durations, sizes, composition offsets) of a trun's ``count`` samples: its per-sample
    ``fields`` (already checked to fit the box) unpacked in one pass, defaults elsewhere."""
    if not fields:
        return (duration,) * count, (size,) * count, (0,) * count
    width = len(fields) * 4
    start = reader.position
    reader.position += count * width
    rows = struct.iter_unpack(">" + fields, reader.data[start:start + count * width])
    columns = list(zip(*rows)) if count else [() for _ in fields]
    column = iter(columns)
    durations = next(column) if run_flags & TRUN_SAMPLE_DURATION else (duration,) * count
    sizes = next(column) if run_flags & TRUN_SAMPLE_SIZE else (size,) * count
    if run_flags & TRUN_SAMPLE_FLAGS:
        next(column)
    offsets = next(column) if run_flags & TRUN_SAMPLE_COMPOSITION_OFFSET else (0,) * count
    return tuple(durations), tuple(sizes), tuple(offsets)


def _parse_traf(data: bytes, traf: Box, moof: Box, tracks: dict[int, Track],
                implicit_base: int, budget: _SampleBudget) -> list[_RunLayout]:
    base = moof.offset
    parts = _children(data, traf, base)
    reader = _Reader(data, _need(parts, "tfhd", traf), base)
    _, flags = reader.full_box()
    (track_id,) = reader.take(">I")
    track = tracks.get(track_id)
    if track is None:
        raise BoxFormatError(traf.offset, f"fragment refers to track {track_id}, which the "
                                          "moov does not declare")
    if flags & TFHD_BASE_DATA_OFFSET:
        (data_base,) = reader.take(">Q")
    elif flags & TFHD_DEFAULT_BASE_IS_MOOF:
        data_base = moof.offset
    else:
        data_base = implicit_base
    if flags & TFHD_SAMPLE_DESCRIPTION_INDEX:
        reader.take(">I")
    duration = reader.take(">I")[0] if flags & TFHD_DEFAULT_SAMPLE_DURATION \
        else track.default_sample_duration
    size = reader.take(">I")[0] if flags & TFHD_DEFAULT_SAMPLE_SIZE \
        else track.default_sample_size
    tfdt = _find(parts, "tfdt")
    if tfdt is None:
        raise BoxFormatError(traf.offset, f"track {track_id}'s fragment has no 'tfdt' "
                                          "(decode time): its timing cannot be checked")
    reader = _Reader(data, tfdt, base)
    version, _ = reader.full_box()
    (decode_time,) = reader.take(">Q" if version == 1 else ">I")
    layouts: list[_RunLayout] = []
    next_data = data_base
    for trun in (box for box in parts if box.type == "trun"):
        reader = _Reader(data, trun, base)
        version, run_flags = reader.full_box()
        (count,) = reader.take(">I")
        if count > MAX_SAMPLES_PER_RUN:
            raise BoxFormatError(trun.offset, f"trun declares {count} samples, more than "
                                              f"{MAX_SAMPLES_PER_RUN}: the box is damaged")
        budget.spend(count, trun)
        start = next_data
        if run_flags & TRUN_DATA_OFFSET:
            (offset,) = reader.take(">i")
            start = data_base + offset
        first_flags = reader.take(">I")[0] if run_flags & TRUN_FIRST_SAMPLE_FLAGS else None
        fields = "".join(code for flag, code in ((TRUN_SAMPLE_DURATION, "I"),
                                                 (TRUN_SAMPLE_SIZE, "I"),
                                                 (TRUN_SAMPLE_FLAGS, "I"),
                                                 (TRUN_SAMPLE_COMPOSITION_OFFSET,
                                                  "i" if version else "I"))
                         if run_flags & flag)
        if count * len(fields) * 4 > reader.end - reader.position:
            raise BoxFormatError(trun.offset, f"trun declares {count} samples but holds "
                                              "fewer entries")
        if not fields:
            budget.spend_data(count, size, trun)
        durations, sizes, offsets = _sample_columns(reader, run_flags, fields, count,
                                                    duration, size)
        run = TrackRun(track_id, decode_time, durations, sizes, offsets, first_flags, start)
        layouts.append(_RunLayout(run, start, sum(sizes)))
        decode_time += sum(durations)
        next_data = start + sum(sizes)
    return layouts


def _join_runs(layouts: list[_RunLayout]) -> TrackRun:
    first = layouts[0].run
    if len(layouts) == 1:
        return first
    chain = itertools.chain.from_iterable
    return TrackRun(first.track_id, first.base_decode_time,
                    tuple(chain(item.run.durations for item in layouts)),
                    tuple(chain(item.run.sizes for item in layouts)),
                    tuple(chain(item.run.composition_offsets for item in layouts)),
                    first.first_sample_flags, first.data_offset)


def _parse_moof(data: bytes, moof: Box, tracks: dict[int, Track],
                budget: _SampleBudget) -> tuple[int, list[_RunLayout], list[TrackRun]]:
    children = _children(data, moof, moof.offset)
    reader = _Reader(data, _need(children, "mfhd", moof), moof.offset)
    reader.full_box()
    (sequence,) = reader.take(">I")
    layouts: list[_RunLayout] = []
    runs: list[TrackRun] = []
    implicit_base = moof.offset
    for traf in (box for box in children if box.type == "traf"):
        traf_layouts = _parse_traf(data, traf, moof, tracks, implicit_base, budget)
        if traf_layouts:
            implicit_base = traf_layouts[-1].data_start + traf_layouts[-1].data_size
            layouts.extend(traf_layouts)
            runs.append(_join_runs(traf_layouts))
    return sequence, layouts, runs


def _timeline_origin(data: bytes, moov: Box) -> int | None:
    """The pts_us of decode time 0 from the moov's timeline ``uuid`` box, if it holds one."""
    for box in _children(data, moov, moov.offset):
        payload = box.payload_offset - moov.offset
        if box.type == "uuid" and data[payload - 16:payload] == TIMELINE_UUID \
                and box.end - box.payload_offset >= 12:
            (origin,) = struct.unpack_from(">q", data, payload + 4)  # after version and flags
            return int(origin)
    return None


# Bytes of a sample entry's own fields before its child boxes (ISO/IEC 14496-12 8.5.2, 12.1.3,
# 12.2.3): 8 of every SampleEntry, then 70 of a VisualSampleEntry or 20 of an AudioSampleEntry.
# A QuickTime sound description of version 1 or 2 (the u16 at byte 8) adds 16 or 36 more.
_SAMPLE_ENTRY_FIELDS = {"vide": 78, "soun": 28}
_SOUND_VERSION_FIELDS = {0: 0, 1: 16, 2: 36}


@dataclass(frozen=True)
class SampleEntry:
    """The first sample description of one track: what a player needs to name its codec."""

    track_id: int
    handler: str  # "vide", "soun" ...
    type: str  # "avc1", "mp4a" ...
    boxes: dict[str, bytes]  # payloads of the entry's child boxes ("avcC", "esds" ...), by type


def read_sample_entries(source: Path | str | BinaryIO | bytes) -> dict[int, SampleEntry]:
    """Each track's first sample entry, by track id, from the segment's ``moov``: only the box
    headers and the moov are read. Raises BoxFormatError when the moov is missing or damaged, or
    a sample entry is too short for its own fields."""
    def read(file: BinaryIO) -> dict[int, SampleEntry]:
        size = file.seek(0, os.SEEK_END)
        top, _ = _top_level(file, size, torn=False)
        moov = _find(top, "moov")
        if moov is None:
            raise BoxFormatError(size, "the file has no 'moov' box")
        file.seek(moov.offset)
        return _sample_entries(file.read(moov.size), moov)
    return _with_file(source, read)


def _trak_media(data: bytes, trak: Box, base: int) -> tuple[int, Box, list[Box]]:
    """A trak's track id (from its tkhd), its mdia box and the mdia's children."""
    parts = _children(data, trak, base)
    reader = _Reader(data, _need(parts, "tkhd", trak), base)
    version, _ = reader.full_box()
    (track_id,) = reader.take(">QQI" if version == 1 else ">III")[2:]
    mdia = _need(parts, "mdia", trak)
    return track_id, mdia, _children(data, mdia, base)


def _handler_and_stsd(data: bytes, mdia: Box, media: list[Box], base: int) -> tuple[bytes, Box]:
    """A track's handler type (the hdlr's four bytes) and its sample description box."""
    reader = _Reader(data, _need(media, "hdlr", mdia), base)
    reader.full_box()
    handler = struct.pack(">I", reader.take(">II")[1])
    minf = _need(media, "minf", mdia)
    stbl = _need(_children(data, minf, base), "stbl", minf)
    return handler, _need(_children(data, stbl, base), "stsd", stbl)


def _sample_entries(data: bytes, moov: Box) -> dict[int, SampleEntry]:
    base = moov.offset
    entries: dict[int, SampleEntry] = {}
    for trak in (box for box in _children(data, moov, base) if box.type == "trak"):
        track_id, mdia, media = _trak_media(data, trak, base)
        code, stsd = _handler_and_stsd(data, mdia, media, base)
        handler = _box_type(code)
        reader = _Reader(data, stsd, base)
        reader.full_box()
        reader.take(">I")  # the entry count: the first entry is the one fragments use
        entry = next(iter_boxes(data, reader.position, stsd.end - base, base), None)
        if entry is None:
            raise BoxFormatError(stsd.offset, f"track {track_id} has no sample description")
        entries[track_id] = SampleEntry(track_id, handler, entry.type,
                                        _entry_boxes(data, entry, handler, base))
    return entries


def _entry_boxes(data: bytes, entry: Box, handler: str, base: int) -> dict[str, bytes]:
    """The payloads of a sample entry's child boxes (none for a handler of unknown layout)."""
    fields = _SAMPLE_ENTRY_FIELDS.get(handler)
    if fields is None:
        return {}
    start = entry.payload_offset - base
    if handler == "soun" and entry.end - entry.payload_offset >= 10:
        (version,) = struct.unpack_from(">H", data, start + 8)
        fields += _SOUND_VERSION_FIELDS.get(version, 0)
    if entry.end - entry.payload_offset < fields:
        raise BoxFormatError(entry.offset, f"sample entry {entry.type!r} is too short for its "
                                           f"{fields} bytes of fields")
    inner = Box(entry.type, entry.offset, entry.size, entry.header_size + fields)
    return {child.type: data[child.payload_offset - base:child.end - base]
            for child in _children(data, inner, base)}


def read_segment(source: Path | str | BinaryIO | bytes) -> SegmentFile:
    """Parse a fragmented MP4 file's structure; raises BoxFormatError at the first fault."""
    return _with_file(source, lambda file: _read_segment(file, torn=False).segment)


@dataclass(frozen=True)
class WholeFragments:
    """What `read_whole_fragments` keeps of a segment that may end in a torn box."""

    segment: SegmentFile | None  # the whole fragments; None when the ftyp or moov is not whole
    end: int  # file offset just past the last whole fragment (past the moov when none is)
    stopped: BoxFormatError | None  # why reading stopped at ``end``; None at a clean end of file


def read_whole_fragments(source: Path | str | BinaryIO | bytes) -> WholeFragments:
    """The whole fragments of a segment a power cut may have torn: reading stops at the first
    box that is cut short or does not parse, and keeps every fragment before it. Never raises
    BoxFormatError: a file without a whole ``ftyp`` and ``moov`` has ``segment`` None."""
    def read(file: BinaryIO) -> WholeFragments:
        try:
            parsed = _read_segment(file, torn=True)
        except BoxFormatError as exc:
            return WholeFragments(None, 0, exc)
        return WholeFragments(parsed.segment, parsed.end, parsed.stopped)
    return _with_file(source, read)


_T = TypeVar("_T")


def _with_file(source: Path | str | BinaryIO | bytes, read: Callable[[BinaryIO], _T]) -> _T:
    if isinstance(source, bytes):
        return read(io.BytesIO(source))
    if isinstance(source, (str, Path)):
        with open(source, "rb") as opened:
            return read(opened)
    return read(source)


def _top_level(file: BinaryIO, size: int,
               torn: bool) -> tuple[list[Box], BoxFormatError | None]:
    """The top-level boxes; in torn mode those before the first one that is not whole, and the
    fault there. A size of 0 ("to the end of the file") cannot be told whole: torn mode stops."""
    boxes: list[Box] = []
    try:
        for box in iter_file_boxes(file, size):
            if len(boxes) == MAX_TOP_LEVEL_BOXES:
                raise BoxFormatError(box.offset, f"more than {MAX_TOP_LEVEL_BOXES} top-level "
                                                 "boxes: the file is damaged")
            if torn and box.end == size and _declared_size(file, box) == 0:
                raise BoxFormatError(box.offset, f"box {box.type!r} declares size 0 (to the end "
                                                 "of the file): it cannot be told whole")
            boxes.append(box)
    except BoxFormatError as exc:
        if not torn:
            raise
        return boxes, exc
    return boxes, None


def _declared_size(file: BinaryIO, box: Box) -> int:
    file.seek(box.offset)
    (size,) = struct.unpack(">I", file.read(4))
    return int(size)


def _read_ftyp(file: BinaryIO, ftyp: Box) -> tuple[str, tuple[str, ...]]:
    """(major brand, compatible brands)."""
    file.seek(ftyp.offset)
    data = file.read(ftyp.size)
    reader = _Reader(data, ftyp, ftyp.offset)
    major_raw = data[ftyp.header_size:ftyp.header_size + 4]
    reader.take(">II")  # the ftyp must hold at least its major brand and minor version
    if (ftyp.size - ftyp.header_size - 8) // 4 > MAX_CHILD_BOXES:
        raise BoxFormatError(ftyp.offset, f"the ftyp lists more than {MAX_CHILD_BOXES} brands: "
                                          "it is damaged")
    brands = tuple(_box_type(data[i:i + 4]) for i in range(ftyp.header_size + 8, ftyp.size - 3, 4))
    return _box_type(major_raw), brands


class _Fragments:
    """The top-level boxes after the ftyp, one by one: the moov, then moof + mdat pairs."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file = file
        self.budget = _SampleBudget(size)
        self.tracks: dict[int, Track] | None = None
        self.origin: int | None = None
        self.moov_end = 0
        self.fragments: list[Fragment] = []
        self.pending: tuple[Box, int, list[_RunLayout], list[TrackRun]] | None = None
        self.last_sequence = 0

    def _read(self, box: Box) -> bytes:
        self.file.seek(box.offset)
        return self.file.read(box.size)

    def add(self, box: Box, following: Box | None = None) -> None:
        """Read the next top-level box; ``following`` is the one after it (a moof's mdat)."""
        if box.type == "moov":
            if self.tracks is not None:
                raise BoxFormatError(box.offset, "a second 'moov' box")
            data = self._read(box)
            self.tracks = _parse_moov(data, box)
            self.origin = _timeline_origin(data, box)
            self.moov_end = box.end
        elif box.type == "moof":
            if self.tracks is None:
                raise BoxFormatError(box.offset, "a 'moof' before the 'moov'")
            self.close(None, box.offset)
            self.budget.mdat_bytes = following.size - following.header_size \
                if following is not None and following.type == "mdat" else 0
            sequence, layouts, runs = _parse_moof(self._read(box), box, self.tracks, self.budget)
            if sequence <= self.last_sequence:
                raise BoxFormatError(box.offset, f"fragment sequence number {sequence} does not "
                                                 f"follow {self.last_sequence}")
            self.last_sequence = sequence
            self.pending = (box, sequence, layouts, runs)
        elif box.type == "mdat" and self.pending is not None:
            self.close(box, box.offset)

    def close(self, mdat: Box | None, at: int) -> None:
        """End the pending fragment with its ``mdat`` (None: there is none, a fault)."""
        if self.pending is None:
            return
        moof, sequence, layouts, runs = self.pending
        self.pending = None
        if mdat is None:
            raise BoxFormatError(at, f"the fragment at byte {moof.offset} has no 'mdat' after "
                                     "its 'moof'")
        for layout in layouts:
            if layout.data_size and not (mdat.payload_offset <= layout.data_start
                                         and layout.data_start + layout.data_size <= mdat.end):
                raise BoxFormatError(moof.offset, f"track {layout.run.track_id}'s samples "
                                     f"(bytes {layout.data_start}-"
                                     f"{layout.data_start + layout.data_size}) lie outside the "
                                     f"fragment's mdat (bytes {mdat.payload_offset}-{mdat.end})")
        self.fragments.append(Fragment(moof.offset, sequence, tuple(runs), mdat))


@dataclass(frozen=True)
class _Parsed:
    segment: SegmentFile
    end: int
    stopped: BoxFormatError | None


def _read_segment(file: BinaryIO, torn: bool) -> _Parsed:
    """The segment's structure. Strict (``torn`` False): the first fault raises. Torn: a fault
    after the moov ends the reading there, keeping the whole fragments before it."""
    size = file.seek(0, os.SEEK_END)
    top, stopped = _top_level(file, size, torn)
    if not top and stopped is not None:
        raise stopped
    if not top or top[0].type != "ftyp":
        raise BoxFormatError(0, "the file does not start with an 'ftyp' box: not an MP4")
    major, brands = _read_ftyp(file, top[0])
    fragments = _Fragments(file, size)
    try:
        for box, following in zip(top[1:], [*top[2:], None]):
            fragments.add(box, following)
        if stopped is None:  # a moof just before a torn box lost its mdat to the tear
            fragments.close(None, size)
    except BoxFormatError as exc:
        if not torn or fragments.tracks is None:
            raise
        stopped = exc
    if fragments.tracks is None:
        raise stopped or BoxFormatError(size, "the file has no 'moov' box")
    whole = fragments.fragments
    end = whole[-1].mdat.end if whole else fragments.moov_end
    kept = tuple(box for box in top if box.end <= end) if torn else tuple(top)
    segment = SegmentFile(size, major, brands, fragments.tracks, tuple(whole), kept,
                          fragments.origin)
    return _Parsed(segment, end, stopped)
