"""Writes a recording's access units as sealed fragmented-MP4 segment files, and recovers the
segment a power cut left unsealed.

Durability, in the order it happens: a segment is created as ``NNNNNN.mp4.partial`` (and the
directory fsynced, so the name survives a power cut); each fragment is written whole, hashed from
the same bytes in memory (the file is never read back) and fdatasync'ed before the next; at the
cut the file is fsynced, renamed to ``NNNNNN.mp4`` and the directory fsynced; only then is the
segment reported, as a `SealedSegment`, to ``on_sealed`` (which writes the manifest line). A power
cut therefore loses at most the fragment in flight: on the next start `recover_segments` truncates
a ``.partial`` file to its last whole fragment, hashes it, renames it and reports it with
``recovered=True``.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, NoReturn

from .access_unit import AccessUnit
from . import durability
from .clock import ClockAnchor
from .errors import RecorderError
from .mux import FragmentedMp4Muxer, MuxedFragment
from .sealed_segment import SealedSegment
from .sha256 import Sha256

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
SEGMENT_NAME = re.compile(r"^(\d{6})\.mp4$")

# The moov box that records the timeline origin (see recorder/_mux_py.py).
_TIMELINE_UUID = bytes.fromhex("c561d76e99bb5327a123c4a25c94c155")
_TRUN_DATA_OFFSET = 0x000001
_TRUN_FIRST_SAMPLE_FLAGS = 0x000004
_TRUN_DURATION = 0x000100
_TRUN_SIZE = 0x000200
_TRUN_FLAGS = 0x000400
_TRUN_CTO = 0x000800
_TFHD_BASE_DATA_OFFSET = 0x000001


class SegmentWriterError(RecorderError):
    """Base class of the segment writer's errors."""


class SegmentWriteError(SegmentWriterError, OSError):
    """Writing, syncing or renaming a segment failed; whole fragments already written are kept."""


class SegmentWriterStateError(SegmentWriterError, RuntimeError):
    """A write after close(), or after a write failed."""


class PartialSegmentExistsError(SegmentWriterError, FileExistsError):
    """The directory holds an unsealed ``.partial`` segment: recover it before writing."""


class SegmentRecoveryError(SegmentWriterError, ValueError):
    """A ``.partial`` file that cannot be recovered (bad name, or its sealed name is taken)."""


def segment_file_name(index: int) -> str:
    """``000001.mp4`` for index 1."""
    return f"{index:06d}.mp4"


class SegmentWriter:
    """Muxes access units into ``directory/NNNNNN.mp4`` segments, sealing each as it is cut.

    ``audio_config``: the AAC AudioSpecificConfig, or None for video only. ``segment_seconds``,
    ``fragment_seconds``: see `FragmentedMp4Muxer`. ``on_sealed``: called with each
    `SealedSegment` once it is durable. ``clock``: maps pts_us to UTC (default: taken now).
    ``first_index``: the index (and file number) of the first segment.

    One thread writes; the callback runs on it. A failed write raises `SegmentWriteError`; the
    writer then refuses more units, and ``close()`` seals what was written as a recovered segment.
    """

    def __init__(self, directory: Path | str, *, audio_config: bytes | None = None,
                 segment_seconds: float = 30.0, fragment_seconds: float = 2.0,
                 on_sealed: Callable[[SealedSegment], None] | None = None,
                 clock: ClockAnchor | None = None, first_index: int = 1) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"segment directory {self.directory} does not exist")
        partials = sorted(self.directory.glob("*" + PARTIAL_SUFFIX))
        if partials:
            raise PartialSegmentExistsError(
                f"{partials[0]} is an unsealed segment from an interrupted recording: run "
                "recover_segments() on the directory before writing to it")
        self._muxer = FragmentedMp4Muxer(audio_config, segment_seconds=segment_seconds,
                                         fragment_seconds=fragment_seconds)
        self._on_sealed = on_sealed
        self._clock = clock if clock is not None else ClockAnchor.now()
        self._first_index = first_index
        self._fd = -1
        self._index = 0
        self._partial = self.directory
        self._hasher = Sha256()
        self._bytes = 0
        self._fragments = 0
        self._first_pts = 0
        self._last_pts = 0
        self._failed: BaseException | None = None
        self._closed = False
        #: Every segment sealed so far, in order.
        self.sealed: list[SealedSegment] = []

    @property
    def dropped_units(self) -> int:
        """Units dropped by the muxer: anything before the first keyframe, and older audio."""
        return self._muxer.dropped_units

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, unit: AccessUnit, dts_us: int | None = None) -> None:
        """Mux one access unit; write, sync and seal whatever that completes.

        ``dts_us``: the decode time of a video unit when the encoder reorders frames (B-frames).
        """
        if self._closed:
            raise SegmentWriterStateError("the segment writer is closed")
        if self._failed is not None:
            raise SegmentWriterStateError(
                f"an earlier write failed ({self._failed}); close() the writer to seal what was "
                "written")
        fragment = self._muxer.push(unit.stream, unit.pts_us, unit.is_keyframe, unit.payload,
                                    dts_us)
        if fragment is not None:
            self._store(fragment)

    def close(self) -> None:
        """Seal the last segment. Idempotent.

        After a failed write, and when writing the last fragment fails (the error is raised
        after), the unsealed segment's whole fragments are sealed as a recovered segment.
        """
        if self._closed:
            return
        self._closed = True
        if self._failed is None:
            fragment = self._muxer.close()
            if fragment is None:
                return
            try:
                self._store(fragment)
                return
            except SegmentWriteError:
                self._recover_after_failure()
                raise
        self._recover_after_failure()

    def _recover_after_failure(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._partial.name.endswith(PARTIAL_SUFFIX) and self._partial.exists():
            segment = recover_segment(self._partial, clock=self._clock)
            if segment is not None:
                self._report(segment)

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _store(self, fragment: MuxedFragment) -> None:
        try:
            if fragment.starts_segment:
                self._open(self._first_index + fragment.segment - 1, fragment)
            durability.write_all(self._fd, fragment.data)
            os.fdatasync(self._fd)
        except OSError as exc:
            self._fail(exc, f"writing {self._partial}")
        self._hasher.update(fragment.data)
        self._bytes += len(fragment.data)
        self._fragments += 1
        self._first_pts = min(self._first_pts, fragment.first_pts_us)
        self._last_pts = max(self._last_pts, fragment.last_pts_us)
        if fragment.ends_segment:
            self._seal()

    def _open(self, index: int, fragment: MuxedFragment) -> None:
        name = segment_file_name(index)
        if (self.directory / name).exists():
            raise FileExistsError(f"segment {self.directory / name} already exists: a recording "
                                  "directory is written once")
        self._index = index
        self._partial = self.directory / (name + PARTIAL_SUFFIX)
        self._fd = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                           0o644)
        durability.fsync_directory(self.directory)
        self._hasher = Sha256()
        self._bytes = 0
        self._fragments = 0
        self._first_pts = fragment.first_pts_us
        self._last_pts = fragment.last_pts_us

    def _fail(self, exc: OSError, doing: str) -> NoReturn:
        self._failed = exc
        if self._fd >= 0:
            try:  # leave only whole fragments behind, if the file system lets us
                os.ftruncate(self._fd, self._bytes)
            except OSError:
                pass
        raise SegmentWriteError(
            exc.errno, f"{doing} failed ({exc.strerror or exc}); every whole fragment written "
            "is kept: close() the writer to seal an unsealed segment as a recovered one"
        ) from exc

    def _seal(self) -> None:
        final = self._partial.with_name(segment_file_name(self._index))
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.rename(self._partial, final)
        except OSError as exc:
            self._fail(exc, f"sealing {self._partial}")
        segment = SealedSegment(
            index=self._index, file=final.name, bytes=self._bytes,
            sha256=self._hasher.hexdigest(), first_pts_us=self._first_pts,
            last_pts_us=self._last_pts, utc_start=self._clock.iso(self._first_pts),
            utc_end=self._clock.iso(self._last_pts), fragments=self._fragments,
            recovered=False)
        try:
            durability.fsync_directory(self.directory)
        except OSError as exc:
            # The file is whole and in place under its final name: report it, then fail.
            self._report(segment)
            self._fail(exc, f"syncing {self.directory} after sealing")
        self._report(segment)

    def _report(self, segment: SealedSegment) -> None:
        self.sealed.append(segment)
        if self._on_sealed is not None:
            self._on_sealed(segment)


# -- recovery ------------------------------------------------------------------------------------

class _Track(NamedTuple):
    timescale: int
    video: bool


class _Scan(NamedTuple):
    end: int  # bytes up to the end of the last whole fragment
    fragments: int
    first_pts_us: int
    last_pts_us: int


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int, int]]:
    """Complete boxes (type, offset, payload offset, end) from start; stops at the first torn one."""
    found = []
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, position)
        header = 8
        if size == 1:
            if position + 16 > end:
                break
            (size,) = struct.unpack_from(">Q", data, position + 8)
            header = 16
        if size < header or position + size > end:
            break
        found.append((kind, position, position + header, position + size))
        position += size
    return found


def _child(data: bytes, parent: tuple[bytes, int, int, int], kind: bytes,
           skip: int = 0) -> tuple[bytes, int, int, int] | None:
    for box in _boxes(data, parent[2] + skip, parent[3]):
        if box[0] == kind:
            return box
    return None


def _read_moov(data: bytes, moov: tuple[bytes, int, int, int]) -> tuple[dict[int, _Track], int]:
    tracks: dict[int, _Track] = {}
    origin = 0
    for box in _boxes(data, moov[2], moov[3]):
        if box[0] == b"uuid" and data[box[2]:box[2] + 16] == _TIMELINE_UUID:
            (origin,) = struct.unpack_from(">q", data, box[2] + 20)
        if box[0] != b"trak":
            continue
        tkhd = _child(data, box, b"tkhd")
        mdia = _child(data, box, b"mdia")
        if tkhd is None or mdia is None:
            raise ValueError("trak without tkhd or mdia")
        mdhd = _child(data, mdia, b"mdhd")
        hdlr = _child(data, mdia, b"hdlr")
        if mdhd is None or hdlr is None:
            raise ValueError("mdia without mdhd or hdlr")
        wide = data[tkhd[2]] == 1
        (track_id,) = struct.unpack_from(">I", data, tkhd[2] + (20 if wide else 12))
        wide = data[mdhd[2]] == 1
        (timescale,) = struct.unpack_from(">I", data, mdhd[2] + (20 if wide else 12))
        if timescale == 0:
            raise ValueError("timescale 0")
        tracks[track_id] = _Track(timescale, data[hdlr[2] + 8:hdlr[2] + 12] == b"vide")
    return tracks, origin


def _plausible_video_sample(data: bytes, start: int, size: int) -> bool:
    """Length-prefixed NAL units exactly filling the sample, none empty: never true of zeros."""
    position, end = start, start + size
    while position < end:
        if position + 5 > end:
            return False
        (length,) = struct.unpack_from(">I", data, position)
        header = data[position + 4]  # forbidden_zero_bit clear, nal_unit_type not 0
        if length == 0 or header & 0x80 or header & 0x1F == 0 or position + 4 + length > end:
            return False
        position += 4 + length
    return True


def _read_fragment(data: bytes, moof: tuple[bytes, int, int, int],
                   mdat: tuple[bytes, int, int, int], tracks: dict[int, _Track],
                   origin: int) -> list[int]:
    """pts_us of every video sample of one fragment (the muxer's first/last pts are those of
    video), after checking that every sample lies in the fragment's mdat."""
    times: list[int] = []
    for traf in _boxes(data, moof[2], moof[3]):
        if traf[0] != b"traf":
            continue
        tfhd = _child(data, traf, b"tfhd")
        tfdt = _child(data, traf, b"tfdt")
        if tfhd is None or tfdt is None:
            raise ValueError("traf without tfhd or tfdt")
        flags, track_id = struct.unpack_from(">II", data, tfhd[2])
        track = tracks[track_id]
        base = struct.unpack_from(">Q", data, tfhd[2] + 8)[0] if flags & _TFHD_BASE_DATA_OFFSET \
            else moof[1]
        decode = struct.unpack_from(">Q" if data[tfdt[2]] == 1 else ">I", data, tfdt[2] + 4)[0]
        for run in _boxes(data, traf[2], traf[3]):
            if run[0] != b"trun":
                continue
            version_flags, count = struct.unpack_from(">II", data, run[2])
            run_flags = version_flags & 0xFFFFFF
            position = run[2] + 8
            offset = 0
            if run_flags & _TRUN_DATA_OFFSET:
                (offset,) = struct.unpack_from(">i", data, position)
                position += 4
            if run_flags & _TRUN_FIRST_SAMPLE_FLAGS:
                position += 4
            fields = [f for f in (_TRUN_DURATION, _TRUN_SIZE, _TRUN_FLAGS, _TRUN_CTO)
                      if run_flags & f]
            if position + 4 * len(fields) * count > run[3]:
                raise ValueError("trun runs past its box")
            at = base + offset
            for _ in range(count):
                values = dict(zip(fields, struct.unpack_from(f">{len(fields)}I", data, position)))
                position += 4 * len(fields)
                size = values.get(_TRUN_SIZE, 0)
                if at < mdat[2] or at + size > mdat[3]:
                    raise ValueError("sample outside its mdat")
                if track.video and not _plausible_video_sample(data, at, size):
                    raise ValueError("video sample is not length-prefixed NAL units")
                cto = values.get(_TRUN_CTO, 0)
                if version_flags >> 24 == 1 and cto >= 1 << 31:
                    cto -= 1 << 32
                ticks = decode + cto
                if track.video:
                    times.append(origin + (ticks * 1_000_000 + track.timescale // 2)
                                 // track.timescale)
                decode += values.get(_TRUN_DURATION, 0)
                at += size
    if not times:
        raise ValueError("fragment without video samples")
    return times


def scan_whole_fragments(data: bytes) -> _Scan:
    """Where the last whole fragment of a (possibly torn) segment ends, and what it holds."""
    top = _boxes(data, 0, len(data))
    empty = _Scan(0, 0, 0, 0)
    if len(top) < 2 or top[0][0] != b"ftyp" or top[1][0] != b"moov":
        return empty
    try:
        tracks, origin = _read_moov(data, top[1])
    except (ValueError, struct.error):
        return empty
    end, fragments, first, last = 0, 0, 0, 0
    for moof, mdat in zip(top[2::2], top[3::2]):
        if moof[0] != b"moof" or mdat[0] != b"mdat":
            break
        try:
            times = _read_fragment(data, moof, mdat, tracks, origin)
        except (ValueError, KeyError, struct.error):
            break
        first = min(times) if not fragments else min(first, min(times))
        last = max(times) if not fragments else max(last, max(times))
        fragments += 1
        end = mdat[3]
    return _Scan(end, fragments, first, last) if fragments else empty


def recover_segment(partial: Path | str, *, clock: ClockAnchor) -> SealedSegment | None:
    """Seal one ``NNNNNN.mp4.partial`` left by a power cut: truncate it to its last whole
    fragment, hash it, rename it to ``NNNNNN.mp4`` and fsync the directory.

    Returns the segment with ``recovered=True``, or None when the file held no whole fragment
    (it is then deleted: it held no playable media). pts are those of the file, exact to a tick
    of their track's timescale.
    """
    partial = Path(partial)
    match = SEGMENT_NAME.match(partial.name[:-len(PARTIAL_SUFFIX)]) \
        if partial.name.endswith(PARTIAL_SUFFIX) else None
    if match is None:
        raise SegmentRecoveryError(f"{partial} is not named NNNNNN.mp4{PARTIAL_SUFFIX}")
    final = partial.with_name(match.group(0))
    if final.exists():
        raise SegmentRecoveryError(
            f"both {partial.name} and {final.name} exist in {partial.parent}: keep both and "
            "compare them by hand; recovery will not overwrite a sealed segment")
    with open(partial, "r+b") as file:
        data = file.read()
        scan = scan_whole_fragments(data)
        if scan.fragments == 0:
            log.warning("%s holds no whole fragment (%d bytes); deleting it", partial, len(data))
        else:
            if scan.end < len(data):
                log.warning("%s: keeping %d of %d bytes (%d whole fragments)", partial, scan.end,
                            len(data), scan.fragments)
                file.truncate(scan.end)
            file.flush()
            os.fsync(file.fileno())
    if scan.fragments == 0:
        os.remove(partial)
        durability.fsync_directory(partial.parent)
        return None
    hasher = Sha256(memoryview(data)[:scan.end])
    os.rename(partial, final)
    durability.fsync_directory(partial.parent)
    return SealedSegment(
        index=int(match.group(1)), file=final.name, bytes=scan.end, sha256=hasher.hexdigest(),
        first_pts_us=scan.first_pts_us, last_pts_us=scan.last_pts_us,
        utc_start=clock.iso(scan.first_pts_us), utc_end=clock.iso(scan.last_pts_us),
        fragments=scan.fragments, recovered=True)


def recover_segments(directory: Path | str, *, clock: ClockAnchor,
                     on_sealed: Callable[[SealedSegment], None] | None = None
                     ) -> list[SealedSegment]:
    """Recover every ``.partial`` segment of a recording directory (see `recover_segment`)."""
    recovered = []
    for partial in sorted(Path(directory).glob("*.mp4" + PARTIAL_SUFFIX)):
        segment = recover_segment(partial, clock=clock)
        if segment is not None:
            recovered.append(segment)
            if on_sealed is not None:
                on_sealed(segment)
    return recovered
