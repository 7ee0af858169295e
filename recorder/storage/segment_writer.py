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

import errno
import logging
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, NoReturn

from .. import durability
from ..private_files import FILE_MODE, open_private
from ..capture.access_unit import AccessUnit
from ..capture.clock import ClockAnchor
from ..errors import RecorderError
from ..integrity import bmff
from ..integrity.sealed_segment import SealedSegment
from ..integrity.sha256 import Sha256
from ..integrity.content_key import ContentKey
from .mux import IMPLEMENTATION as MUX_IMPLEMENTATION
from .mux import EncryptingMp4Muxer, FragmentedMp4Muxer, MuxedFragment

log = logging.getLogger("recorder.segment_writer")  # the name log lines have always shown

PARTIAL_SUFFIX = ".partial"
SEGMENT_NAME = re.compile(r"^(\d{6})\.mp4$")


class SegmentWriterError(RecorderError):
    """Base class of the segment writer's errors."""


class SegmentWriteError(SegmentWriterError, OSError):
    """Writing, syncing or renaming a segment failed (the message says what of it is kept)."""


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
    ``first_index``: the index (and file number) of the first segment. ``content_key``: encrypt
    the segments with it (ISO Common Encryption 'cenc'; a log line says which muxer twin does
    it), or None for segments in the clear.

    One thread writes; the callback runs on it. A failed write raises `SegmentWriteError`; the
    writer then refuses more units, and ``close()`` seals what was written as a recovered segment.
    """

    def __init__(self, directory: Path | str, *, audio_config: bytes | None = None,
                 segment_seconds: float = 30.0, fragment_seconds: float = 2.0,
                 on_sealed: Callable[[SealedSegment], None] | None = None,
                 clock: ClockAnchor | None = None, first_index: int = 1,
                 content_key: ContentKey | None = None) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"segment directory {self.directory} does not exist")
        partials = sorted(self.directory.glob("*" + PARTIAL_SUFFIX))
        if partials:
            raise PartialSegmentExistsError(
                f"{partials[0]} is an unsealed segment from an interrupted recording: run "
                "recover_segments() on the directory before writing to it")
        self._muxer: FragmentedMp4Muxer
        if content_key is None:
            self._muxer = FragmentedMp4Muxer(audio_config, segment_seconds=segment_seconds,
                                             fragment_seconds=fragment_seconds)
        else:
            log.info("encrypting the segments of %s ('cenc', key id %s) with the %s muxer",
                     self.directory.name, content_key.key_id.hex(),
                     "native" if MUX_IMPLEMENTATION == "native" else "pure-Python")
            self._muxer = EncryptingMp4Muxer(audio_config, content_key=content_key,
                                             segment_seconds=segment_seconds,
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
        self._fd = open_private(self._partial, os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC)
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
        raise SegmentWriteError(exc.errno, f"{doing} failed ({exc.strerror or exc}); "
                                + _what_is_kept(exc)) from exc

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


def _what_is_kept(exc: OSError) -> str:
    """What is true of the footage after a failed write, for the error's message."""
    if exc.errno in (errno.ENOENT, errno.ESTALE):
        return "the recording's directory is gone, and what was written to it with it"
    return ("the segments sealed before are kept; close() seals the whole fragments of the "
            "unsealed segment as a recovered one if the card still allows it")


# -- recovery ------------------------------------------------------------------------------------

class _Scan(NamedTuple):
    end: int  # bytes up to the end of the last whole fragment
    fragments: int
    first_pts_us: int
    last_pts_us: int


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


def _video_pts(data: bytes, segment: bmff.SegmentFile, fragment: bmff.Fragment) -> list[int]:
    """pts_us of every video sample of one whole fragment (the muxer's first/last pts are those
    of video), or [] when a video sample is not NAL units (a tail the disk filled with zeros)."""
    origin = segment.timeline_origin_us or 0
    times: list[int] = []
    for run in fragment.runs:
        track = segment.tracks[run.track_id]
        if track.handler != "vide":
            continue
        position = run.data_offset
        for size, ticks in zip(run.sizes, run.presentation_times()):
            if not _plausible_video_sample(data, position, size):
                return []
            times.append(origin + (ticks * 1_000_000 + track.timescale // 2) // track.timescale)
            position += size
    return times


def scan_whole_fragments(data: bytes) -> _Scan:
    """Where the last whole fragment of a (possibly torn) segment ends, and what it holds: the
    fragments `bmff.read_whole_fragments` finds whole, up to the first without video samples
    that are NAL units."""
    segment = bmff.read_whole_fragments(data).segment
    scan = _Scan(0, 0, 0, 0)
    if segment is None:
        return scan
    for fragment in segment.fragments:
        times = _video_pts(data, segment, fragment)
        if not times:
            break
        first = min(times) if not scan.fragments else min(scan.first_pts_us, min(times))
        last = max(times) if not scan.fragments else max(scan.last_pts_us, max(times))
        scan = _Scan(fragment.mdat.end, scan.fragments + 1, first, last)
    return scan


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
        os.fchmod(file.fileno(), FILE_MODE)  # footage is the owner's only, even if made before
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
