"""`bwv verify`: checks a recording directory against its signed manifest and reports what holds.

Checks, in the order problems are listed: the manifest's lines (canonical JSON, ``seq``, the
``prev`` chain, every signature against the header key or a trusted key, a final ``sealed``
line); then each listed segment (present, size, SHA-256, boxes parse, fragment count); then files
nobody listed; then timing (decode times continuous across fragments and segments, the segment
lines' pts monotonic and consistent with the media). The first problem is the one to read first.
"""

from __future__ import annotations

import enum
import errno
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO, NamedTuple, Union

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import RecorderError
from . import bmff, keys, manifest, sha256



class VerifyUsageError(RecorderError, ValueError):
    """The path given to verify is not a recording directory or manifest file."""


class FileProblemCode(str, enum.Enum):
    """What can be wrong with a recording's files and timing (the manifest's own lines have
    `recorder.integrity.manifest.LineProblemCode`)."""

    # the files
    NO_MANIFEST = "no_manifest"
    MISSING_FILE = "missing_file"
    NOT_A_FILE = "not_a_file"  # a FIFO, device, directory or socket where a segment should be
    UNREADABLE = "unreadable"  # present, but reading it failed (permissions, I/O error)
    SIZE = "size"
    SHA256 = "sha256"
    BOXES = "boxes"
    FRAGMENTS = "fragments"
    EXTRA_FILE = "extra_file"
    # the timing
    GAP = "gap"
    PTS = "pts"


Code = Union[manifest.LineProblemCode, FileProblemCode]

#: Every code a `Problem` can carry, by name: ``ProblemCode.SEQ`` is
#: ``manifest.LineProblemCode.SEQ`` itself, ``ProblemCode.SHA256`` is ``FileProblemCode.SHA256``.
ProblemCode = SimpleNamespace(**manifest.LineProblemCode.__members__,
                              **FileProblemCode.__members__)


@dataclass(frozen=True)
class Problem:
    """One thing that does not hold, and where: a manifest line, a file, or both."""

    code: Code
    where: str  # "manifest.jsonl line 3", "000002.mp4", "000001.mp4 -> 000002.mp4"
    message: str
    line: int | None = None
    file: str | None = None


@dataclass(frozen=True)
class TrackSpan:
    """One track's decode-time span in a segment, in microseconds of media time."""

    track_id: int
    handler: str
    timescale: int
    samples: int
    first_decode_us: int
    end_decode_us: int


@dataclass
class SegmentReport:
    """What was found for one segment line of the manifest."""

    index: int
    file: str
    line: int
    bytes: int  # as the manifest says
    recovered: bool = False  # truncated to its last whole fragment after a power cut
    present: bool = False
    size_ok: bool | None = None
    sha256_ok: bool | None = None
    boxes_ok: bool | None = None
    fragments: int | None = None
    tracks: list[TrackSpan] = field(default_factory=list)


@dataclass(frozen=True)
class Gap:
    """A step in decode time between two consecutive fragments or segments of one track."""

    before: str  # file (and fragment) the step follows
    after: str
    track_id: int
    handler: str
    gap_us: int  # positive: time missing; negative: overlap
    tolerance_us: int

    @property
    def within_tolerance(self) -> bool:
        return abs(self.gap_us) <= self.tolerance_us


@dataclass
class VerifyReport:
    """Everything `bwv verify` found; ``ok`` when there is no problem."""

    path: str
    manifest: str
    recording_id: str | None = None
    device_id: str | None = None
    officer_id: str | None = None
    key_fingerprint: str | None = None
    key_source: str = "none"  # "trusted" (--key) or "header"
    # an encrypted recording's scheme, key id and KEM (the header's, when it reads); None: clear
    encryption: dict[str, str] | None = None
    lines: int = 0
    sealed: bool = False
    events: dict[str, int] = field(default_factory=dict)  # event kind -> how many lines
    segments: list[SegmentReport] = field(default_factory=list)
    extra_files: list[str] = field(default_factory=list)
    steps: list[Gap] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def to_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, enum.Enum):
                return value.value
            if isinstance(value, dict):
                return {key: plain(item) for key, item in value.items()}
            if isinstance(value, list):
                return [plain(item) for item in value]
            return value

        data = plain(asdict(self))
        data["ok"] = self.ok
        data["first_problem"] = plain(asdict(self.first_problem)) if self.first_problem else None
        data["gaps"] = [plain(asdict(step)) for step in self.steps if not step.within_tolerance]
        return dict(sorted(data.items()))


def _resolve(path: Path) -> tuple[Path, Path]:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise VerifyUsageError(f"{path} does not exist: give a recording directory or its "
                               f"{manifest.MANIFEST_NAME}") from None
    except (OSError, ValueError) as exc:
        raise VerifyUsageError(f"{path} cannot be used ({_os_reason(exc)}): give a recording "
                               f"directory or its {manifest.MANIFEST_NAME}") from None
    if stat.S_ISDIR(mode):
        return path, path / manifest.MANIFEST_NAME
    if stat.S_ISREG(mode):
        return path.parent, path
    raise VerifyUsageError(f"{path} is {_kind(mode)}, not a recording directory or its "
                           f"{manifest.MANIFEST_NAME}")


def _os_reason(exc: BaseException) -> str:
    """An OSError's reason without the path (which may be thousands of bytes long)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return "its name cannot be encoded" if isinstance(exc, ValueError) else str(exc)


def _kind(mode: int) -> str:
    """What a non-regular file is, for messages: "a FIFO", "a character device" ..."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


class _NotRegular(Exception):
    """The path names something that is not a regular file (``kind`` says what)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file. Opened without blocking and
    checked on the open descriptor, so a FIFO swapped in never blocks verify and the bytes
    hashed are the bytes parsed. Raises _NotRegular, OSError, or ValueError (unencodable)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _NotRegular(_kind(mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _hash_open(file: BinaryIO) -> tuple[str, int]:
    """(SHA-256, size) of the whole open file, from its first byte (recorder.integrity.sha256's
    one file-hashing routine: it reads at offsets, so the file's own position is untouched)."""
    return sha256.hash_file(file.fileno())


def _hash_file(path: Path) -> tuple[str, int]:
    with _open_regular(path) as file:
        return _hash_open(file)


def verify_recording(path: Path, trusted_key: Ed25519PublicKey | None = None,
                     known_sha256: Mapping[str, str] | None = None) -> VerifyReport:
    """Check the recording at ``path`` (its directory or its manifest.jsonl).

    ``known_sha256`` maps file names to digests the caller computed itself from the same bytes
    (the station hashes each segment as it arrives and stores it under that digest); those files
    are not read a second time for hashing.
    """
    directory, manifest_path = _resolve(path)
    report = VerifyReport(str(directory), str(manifest_path))
    data, why_not = _read_manifest(manifest_path)
    if data is None:
        report.problems.append(Problem(
            FileProblemCode.NO_MANIFEST, manifest_path.name,
            f"{directory} has no readable {manifest.MANIFEST_NAME} ({why_not}): without it "
            "nothing can be verified"))
        report.extra_files = sorted(entry.name for entry in _entries(directory))
        return report

    check = manifest.check_manifest(data, trusted_key=trusted_key)
    _report_manifest(report, check, manifest_path.name)
    # every segment line by its file name, valid or not: a damaged line still names its file
    listed = {line.value("file"): line for line in check.read.of_type(manifest.LineType.SEGMENT)
              if isinstance(line.value("file"), str)}
    files = _SegmentFiles(directory, known_sha256 or {}, listed)
    for segment in check.read.segments():
        if manifest.is_plain_file_name(segment.file):
            _check_segment(report, files, segment)
    _report_unlisted(report, directory, {manifest.MANIFEST_NAME, manifest_path.name} | set(listed),
                     files.hashes)
    _check_timing(report, _pts_entries(check.read), files.parsed)
    return report


def _read_manifest(path: Path) -> tuple[bytes | None, str]:
    """The manifest's bytes, or None and why not (absent, a FIFO, unreadable)."""
    try:
        with _open_regular(path) as file:
            return file.read(), ""
    except _NotRegular as exc:
        return None, f"it is {exc.kind}"
    except (OSError, ValueError) as exc:
        return None, _os_reason(exc)


def _entries(directory: Path) -> list[Path]:
    """The directory's entries by name; none when it cannot be listed (then every listed file
    is reported missing or unreadable on its own)."""
    try:
        return sorted(directory.iterdir(), key=lambda item: item.name)
    except OSError:
        return []


def _report_manifest(report: VerifyReport, check: manifest.ManifestCheck, name: str) -> None:
    """The manifest's own findings: its lines, key, header, events and line problems."""
    report.lines = len(check.stored)
    report.sealed = check.sealed
    report.key_source = check.key_source
    first = check.read.lines[0] if check.read.lines else None
    if first is not None and first.type == manifest.LineType.HEADER.value:
        # what the header says, even when it is damaged: the report names the recording
        report.recording_id = first.value("recording_id")
        report.device_id = first.value("device_id")
        report.officer_id = first.value("officer_id")
    if check.header_key is not None:
        report.key_fingerprint = keys.fingerprint(check.header_key)
    header = check.read.header
    if header is not None and header.encryption is not None:
        fields = header.encryption.header_fields()
        report.encryption = {name: fields[name] for name in ("scheme", "key_id", "kem")}
    for line in check.read.of_type(manifest.LineType.EVENT):
        kind = line.value("event")
        if isinstance(kind, str):
            report.events[kind] = report.events.get(kind, 0) + 1
    for item in check.problems:
        report.problems.append(Problem(item.code, f"{name} line {item.line}", item.message,
                                       line=item.line))


@dataclass
class _SegmentFiles:
    """The recording's segment files as they are checked: digests computed, structures read."""

    directory: Path
    known_sha256: Mapping[str, str]
    listed: dict[str, manifest.Line]
    hashes: dict[str, str] = field(default_factory=dict)
    parsed: dict[str, bmff.SegmentFile] = field(default_factory=dict)

    def digest(self, name: str, file: BinaryIO) -> tuple[str, int]:
        """(SHA-256, size) of a present file, hashed once, or taken from ``known_sha256``."""
        if name in self.known_sha256:
            digest, size = self.known_sha256[name], os.fstat(file.fileno()).st_size
        else:
            digest, size = _hash_open(file)
        self.hashes[name] = digest
        return digest, size

    def listed_with(self, digest: str, besides: str) -> manifest.Line | None:
        """Another segment line that lists these bytes (``digest``), if any."""
        return next((line for name, line in self.listed.items()
                     if name != besides and line.value("sha256") == digest), None)


def _check_segment(report: VerifyReport, files: _SegmentFiles,
                   line: manifest.SegmentLine) -> None:
    """One listed segment: present, its size and SHA-256, its boxes and fragment count."""
    number, where = line.number, line.file
    segment = SegmentReport(line.index, where, number, line.bytes, recovered=line.recovered)
    report.segments.append(segment)
    opened = _open_segment(report, files.directory / where, line)
    if opened is None:
        return
    with opened:
        segment.present = True
        try:
            digest, size = files.digest(where, opened)
        except OSError as exc:
            report.problems.append(Problem(
                FileProblemCode.UNREADABLE, where,
                f"listed on line {number}, but reading it failed ({_os_reason(exc)})",
                line=number, file=where))
            return
        _check_bytes(report, files, line, segment, digest, size)
        if segment.size_ok and segment.sha256_ok:  # else its boxes are not the signed ones
            _check_structure(report, files, line, segment, opened)


def _open_segment(report: VerifyReport, path: Path,
                  line: manifest.SegmentLine) -> BinaryIO | None:
    """The listed segment opened for reading, or None with the reason entered as a problem:
    missing (also a name no file system can hold), not a regular file, or unreadable."""
    number, where = line.number, line.file
    code, why = FileProblemCode.MISSING_FILE, ("not in the recording directory: it was deleted "
                                               "or renamed")
    try:
        return _open_regular(path)
    except _NotRegular as exc:
        code, why = FileProblemCode.NOT_A_FILE, (f"it is {exc.kind}, not a regular file: it "
                                                 "cannot hold the segment's bytes")
    except ValueError:
        why = "no file by that name can exist: it cannot be encoded as a file name"
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            why = (f"no file by that name can exist: its {len(os.fsencode(where))} bytes are "
                   "more than the file system allows in a name")
        elif exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            code, why = FileProblemCode.UNREADABLE, f"it cannot be read ({_os_reason(exc)})"
    report.problems.append(Problem(code, where, f"listed on line {number} but {why}",
                                   line=number, file=where))
    return None


def _check_bytes(report: VerifyReport, files: _SegmentFiles, line: manifest.SegmentLine,
                 segment: SegmentReport, digest: str, size: int) -> None:
    """A present segment's size and SHA-256 against its line."""
    number, where = line.number, line.file
    segment.size_ok = size == line.bytes
    if not segment.size_ok:
        report.problems.append(Problem(
            FileProblemCode.SIZE, where,
            f"{size} bytes, but line {number} says {line.bytes}: the file was "
            f"{'truncated' if size < line.bytes else 'extended'} or replaced",
            line=number, file=where))
    segment.sha256_ok = digest == line.sha256
    if not segment.sha256_ok:
        twin = files.listed_with(digest, besides=where)
        because = (f"its bytes are those listed for {twin.value('file')} (line {twin.number}): "
                   "segment files were swapped or renamed" if twin is not None
                   else "its bytes were changed after it was sealed")
        report.problems.append(Problem(
            FileProblemCode.SHA256, where,
            f"SHA-256 {digest[:16]}…, but line {number} says {line.sha256[:16]}…: {because}",
            line=number, file=where))


def _check_structure(report: VerifyReport, files: _SegmentFiles, line: manifest.SegmentLine,
                     segment: SegmentReport, opened: BinaryIO) -> None:
    """A segment whose bytes are the signed ones: its boxes parse and hold the fragments its
    line counts; its track spans."""
    number, where = line.number, line.file
    try:
        structure = bmff.read_segment(opened)
    except OSError as exc:
        report.problems.append(Problem(
            FileProblemCode.UNREADABLE, where, f"reading its boxes failed ({_os_reason(exc)})",
            line=number, file=where))
        return
    except bmff.BoxFormatError as exc:
        segment.boxes_ok = False
        report.problems.append(Problem(
            FileProblemCode.BOXES, where, f"the MP4 boxes do not parse {exc}",
            line=number, file=where))
        return
    segment.boxes_ok = True
    files.parsed[where] = structure
    segment.fragments = len(structure.fragments)
    if segment.fragments != line.fragments:
        report.problems.append(Problem(
            FileProblemCode.FRAGMENTS, where,
            f"holds {segment.fragments} fragments, but line {number} says {line.fragments}",
            line=number, file=where))
    for track_id, timing in sorted(structure.timing().items()):
        segment.tracks.append(TrackSpan(track_id, timing.track.handler, timing.track.timescale,
                                        timing.samples, timing.to_us(timing.first_decode),
                                        timing.to_us(timing.end_decode)))


def _report_unlisted(report: VerifyReport, directory: Path, known: set[str],
                     hashes: dict[str, str]) -> None:
    """Every file or directory the manifest does not list, and whether it copies a segment."""
    for entry in _entries(directory):
        if entry.name in known:
            continue
        report.extra_files.append(entry.name)
        kind = "directory" if entry.is_dir() else "file"
        twin = _copy_of(entry, hashes)
        why = (f"it is a copy of {twin}" if twin is not None
               else "a foreign or inserted segment, or a leftover of an unfinished recording"
               if entry.suffix == ".mp4" else "nothing in a recording directory is unlisted")
        report.problems.append(Problem(
            FileProblemCode.EXTRA_FILE, entry.name,
            f"a {kind} the manifest does not list: {why}", file=entry.name))


def _copy_of(entry: Path, hashes: dict[str, str]) -> str | None:
    """The segment whose bytes ``entry`` holds, hashing ``entry`` once (and only when a
    segment was hashed to compare it with)."""
    if not hashes:
        return None
    try:
        digest = _hash_file(entry)[0]
    except (_NotRegular, OSError, ValueError):
        return None
    return next((name for name, known in hashes.items() if known == digest), None)


class _PtsEntry(NamedTuple):
    """What a segment line says about when its segment lies, read even from a damaged line."""

    line: int
    file: str
    first_pts_us: int
    last_pts_us: int


def _pts_entries(read: manifest.ManifestLines) -> list[_PtsEntry]:
    entries = []
    for line in read.of_type(manifest.LineType.SEGMENT):
        first, last, name = line.value("first_pts_us"), line.value("last_pts_us"), \
            line.value("file")
        if isinstance(first, int) and isinstance(last, int) and isinstance(name, str):
            entries.append(_PtsEntry(line.number, name, first, last))
    return entries


def _tolerance_us(structure: bmff.SegmentFile, timings: dict[int, bmff.TrackTiming]) -> int:
    """How far a segment's first/last media time may sit from the pts its manifest line gives.

    The manifest's pts are those of the segment's first and last video frames (a muxer other
    than ours may state those of any stream), measured here on the video track. They can differ
    by (a) one sample of each track at each end (the first/last access unit may belong to another
    stream), (b) the reordering delay of B-frames, which a
    muxer without edit lists adds to every presentation time (the largest composition offset),
    and (c) rounding to track ticks (under 1 ms). Beyond that sum the two records disagree.
    """
    total = 1000
    for timing in timings.values():
        largest_offset = max((max(map(abs, run.composition_offsets), default=0)
                              for fragment in structure.fragments for run in fragment.runs
                              if run.track_id == timing.track.track_id), default=0)
        total += timing.to_us(timing.max_sample_duration) + timing.to_us(largest_offset)
    return total


def _check_timing(report: VerifyReport, entries: list[_PtsEntry],
                  parsed: dict[str, bmff.SegmentFile]) -> None:
    """The segment lines' pts in order, decode times continuous, pts agreeing with the media."""
    _check_pts_order(report, entries)
    timings = {name: structure.timing() for name, structure in parsed.items()}
    _check_decode_steps(report, entries, timings)
    _check_pts_against_media(report, entries, parsed, timings)


def _check_pts_order(report: VerifyReport, entries: list[_PtsEntry]) -> None:
    """The segment lines' own pts: each segment starts after the previous one ended."""
    for before, after in zip(entries, entries[1:]):
        if after.first_pts_us <= before.last_pts_us:
            report.problems.append(Problem(
                FileProblemCode.PTS, f"{manifest.MANIFEST_NAME} line {after.line}",
                f"segment {after.file} starts at pts {after.first_pts_us} µs, not after "
                f"{before.file} ends ({before.last_pts_us} µs)", line=after.line,
                file=after.file))


def _check_decode_steps(report: VerifyReport, entries: list[_PtsEntry],
                        timings: dict[str, dict[int, bmff.TrackTiming]]) -> None:
    """Media decode times: continuous within and across segments, per track."""
    previous: dict[int, tuple[str, bmff.TrackTiming]] = {}
    for entry in entries:
        name = entry.file
        if name not in timings:
            previous.clear()  # an unreadable segment in between: compare across it no further
            continue
        for track_id, timing in sorted(timings[name].items()):
            tolerance = timing.to_us(timing.max_sample_duration) + 1000
            for sequence, ticks in timing.internal_gaps:
                _step(report, Gap(name, f"{name} fragment {sequence}", track_id,
                                  timing.track.handler, timing.to_us(ticks), tolerance))
            if track_id in previous:
                earlier_name, earlier = previous[track_id]
                if earlier.track.timescale == timing.track.timescale:
                    ticks = timing.first_decode - earlier.end_decode
                    _step(report, Gap(earlier_name, name, track_id, timing.track.handler,
                                      timing.to_us(ticks),
                                      earlier.to_us(earlier.max_sample_duration) + 1000))
            previous[track_id] = (name, timing)


def _check_pts_against_media(report: VerifyReport, entries: list[_PtsEntry],
                             parsed: dict[str, bmff.SegmentFile],
                             timings: dict[str, dict[int, bmff.TrackTiming]]) -> None:
    """The manifest's pts against the media, both measured from the first readable segment."""
    readable = [entry for entry in entries if entry.file in timings and timings[entry.file]]
    if not readable:
        return
    origin_entry = readable[0]
    media_origin = min(t.to_us(t.first_presentation)
                       for t in _stated_tracks(timings[origin_entry.file]))
    for entry in readable:
        segment_timings = timings[entry.file]
        tolerance = _tolerance_us(parsed[entry.file], segment_timings)
        stated_tracks = _stated_tracks(segment_timings)
        media_first = min(t.to_us(t.first_presentation) for t in stated_tracks)
        media_last = max(t.to_us(t.last_presentation) for t in stated_tracks)
        for label, media, stated in (("first", media_first, entry.first_pts_us),
                                     ("last", media_last, entry.last_pts_us)):
            drift = (media - media_origin) - (stated - origin_entry.first_pts_us)
            if abs(drift) > tolerance:
                report.problems.append(Problem(
                    FileProblemCode.PTS, entry.file,
                    f"the {label} sample lies {drift:+d} µs from where line "
                    f"{entry.line}'s {label}_pts_us puts it (tolerance {tolerance} µs): the "
                    "manifest and the media disagree about when it was recorded",
                    line=entry.line, file=entry.file))


def _stated_tracks(timings: dict[int, bmff.TrackTiming]) -> list[bmff.TrackTiming]:
    """The tracks a segment line's pts describe: its video (docs/formats.md). Audio that reached
    the muxer late (an encoder starved of CPU) is written after the cut, into the next segment,
    and may start well before that segment's video; its continuity is the decode-step check's.
    A segment without a readable video track is measured over every track."""
    video = [timing for timing in timings.values() if timing.track.handler == "vide"]
    return video or list(timings.values())


AUDIO_LOSS_EVENTS = ("audio_overflow", "audio_resync")


def declared_audio_loss(step: Gap, report: VerifyReport) -> bool:
    """Whether ``step`` is audio time missing that the recording itself declares: the
    microphone lost samples (an ``audio_overflow`` event) or its timeline was re-anchored to
    the clock (``audio_resync``). The audio around it is whole and signed like the rest; the
    step is listed among the gaps, and is no problem."""
    return (step.handler == "soun" and step.gap_us > 0
            and any(report.events.get(kind, 0) for kind in AUDIO_LOSS_EVENTS))


def _step(report: VerifyReport, step: Gap) -> None:
    report.steps.append(step)
    if not step.within_tolerance and not declared_audio_loss(step, report):
        size = f"{step.gap_us} µs ({step.gap_us / 1e6:.3f} s)"
        what = f"a gap of {size}" if step.gap_us > 0 else f"an overlap of {size}"
        report.problems.append(Problem(
            FileProblemCode.GAP, f"{step.before} -> {step.after}",
            f"{step.handler} track {step.track_id}: {what} in decode time (tolerance "
            f"{step.tolerance_us} µs): media is missing or out of order",
            file=step.after.split(" ")[0]))


# ---------------------------------------------------------------------------------------------
# rendering

_PROBLEMS_SHOWN = 20


def printable(text: str) -> str:
    """``text`` with every character that is not printable escaped as Python would (``\\n``,
    ``\\x1b``, ``\\ud800``): a manifest's strings and a directory's file names are the
    recorder's or an attacker's, and must neither break a line, drive the terminal, nor fail
    to encode (a lone surrogate, a non-UTF-8 name) on the way out."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def render_human(report: VerifyReport) -> str:
    """The report as a few lines for a person: verdict, first problem, summary, problem list."""
    out = [f"bwv verify: {'OK' if report.ok else 'FAILED'}  {report.path}"]
    if report.first_problem is not None:
        first = report.first_problem
        out.append(f"first problem: {first.where}: {first.message}")
    out.append("")
    if report.recording_id is not None:
        out.append(f"recording   {report.recording_id}  (device {report.device_id}, officer "
                   f"{report.officer_id})")
    if report.key_fingerprint is not None:
        if report.key_source == "trusted":
            source = "checked against the trusted key given with --key"
        else:
            source = ("checked against the key in the manifest itself; pass --key with the "
                      "enrolled key to prove which device signed it")
        out.append(f"key         sha256 {report.key_fingerprint}: {source}")
    if report.encryption is not None:
        out.append(f"encrypted   {report.encryption['scheme']}, key id "
                   f"{report.encryption['key_id']}, its key wrapped for the station "
                   f"({report.encryption['kem']}): checked as stored, no key needed")
    manifest_problems = sum(1 for p in report.problems if p.line is not None and p.file is None)
    out.append(f"manifest    {report.lines} lines, {'sealed' if report.sealed else 'NOT sealed'}, "
               f"chain and signatures {'intact' if not manifest_problems else 'BROKEN'}")
    segments = report.segments
    present = sum(1 for s in segments if s.present)
    hashed = sum(1 for s in segments if s.sha256_ok)
    boxed = sum(1 for s in segments if s.boxes_ok)
    out.append(f"segments    {len(segments)} listed, {present} present, SHA-256 matches "
               f"{hashed}/{len(segments)}, boxes parse {boxed}/{len(segments)}, "
               f"{len(report.extra_files)} unlisted files")
    recovered = [s.file for s in segments if s.recovered]
    if recovered:
        out.append(f"recovered   {', '.join(recovered)}: cut to the last whole fragment after "
                   "a power cut")
    if report.events:
        out.append("events      " + ", ".join(f"{kind} {count}"
                                              for kind, count in sorted(report.events.items())))
    gaps = [step for step in report.steps if not step.within_tolerance]
    largest = max((abs(step.gap_us) for step in report.steps), default=0)
    out.append(f"timing      {len(gaps)} gaps beyond tolerance; largest step in decode time "
               f"{largest} µs")
    declared = [step for step in gaps if declared_audio_loss(step, report)]
    if declared:
        out.append(f"audio lost  {len(declared)} of those gaps, {sum(s.gap_us for s in declared)}"
                   " µs in all, as the manifest's audio events declare")
    if report.problems:
        out.append("")
        out.append(f"problems ({len(report.problems)}):")
        width = min(max(len(p.where) for p in report.problems), 36)
        for item in report.problems[:_PROBLEMS_SHOWN]:
            out.append(f"  {item.where:<{width}}  {item.message}")
        if len(report.problems) > _PROBLEMS_SHOWN:
            out.append(f"  … and {len(report.problems) - _PROBLEMS_SHOWN} more (all with --json)")
    return "\n".join(printable(line) for line in out)


def render_json(report: VerifyReport, ascii_only: bool = False) -> str:
    """The whole report as one JSON document (sorted keys, two-space indent). It always encodes
    as UTF-8: when a string holds a lone surrogate (from a ``\\ud800`` escape in the manifest,
    or a non-UTF-8 file name) the whole document is written with ASCII escapes instead."""
    data = report.to_json()
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=ascii_only)
    if not ascii_only:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True)
    return text
