"""The signed, hash-chained ``manifest.jsonl`` of a recording: canonical form, writer, checker.

Format ("bwv-manifest/1"; docs/formats.md describes it for readers), fixed here so a third party
can check it with ``sha256sum``, ``base64`` and ``openssl`` alone:

* One JSON object per line, each line ending in ``\\n``. A line's bytes are its *canonical form*:
  UTF-8, keys sorted, no spaces, i.e. ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
  ensure_ascii=False)``. Values are strings, integers (|n| < 2**53), booleans, null, arrays and
  objects; there are no floats (times are integer microseconds or ISO 8601 strings) and keys are
  ASCII. For such values this is exactly RFC 8785 (JCS), so any JCS library reproduces the bytes.
* Every line has ``seq`` (its 1-based line number), ``prev`` and ``sig``:
  ``prev`` is the lower-case hex SHA-256 of the previous line *as stored, including its newline*
  (``sed -n 3p manifest.jsonl | sha256sum`` is line 4's ``prev``); line 1 has 64 zeros.
  ``sig`` is the standard base64 (88 characters, padded) of the Ed25519 signature of the line's
  canonical form without the ``sig`` member and without the newline. Because keys are sorted and
  every line has a ``type`` key, ``sig`` is never first or last, and no nested object may use the
  key ``sig``: removing the text ``,"sig":"…"`` from the line yields exactly the signed bytes.
* Line 1 is the ``header``: format, recording/device/officer ids, ``public_key`` (base64 of the
  DER SubjectPublicKeyInfo, the body of the PEM, so verification works offline), ``key_fingerprint``
  (hex SHA-256 of the raw 32-byte key), settings, ``utc_start``, ``monotonic_start_us``,
  ``clock_source``, and for an encrypted recording ``encryption`` (the content key wrapped to the
  station, its key id and the scheme: recorder.integrity.content_key). Then ``segment`` lines (the fields of SealedSegment), ``event`` lines and one
  final ``sealed`` line; nothing follows ``sealed``.

Checking line N by hand (the test suite runs exactly this)::

    sed -n Np manifest.jsonl | sed 's/,"sig":"[^"]*"//' | tr -d '\\n' > msg
    sed -n Np manifest.jsonl | sed 's/.*,"sig":"\\([^"]*\\)".*/\\1/' | base64 -d > sig
    openssl pkeyutl -verify -pubin -inkey device.pem -rawin -in msg -sigfile sig
"""

from __future__ import annotations

import base64
import binascii
import datetime
import enum
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..durability import fsync_directory, write_all
from ..errors import RecorderError
from ..private_files import open_private
from . import keys
from .content_key import EncryptionHeaderError, WrappedContentKey, parse_header_fields
from .keys import DeviceKey
from .sealed_segment import SealedSegment

FORMAT = "bwv-manifest/1"
MANIFEST_NAME = "manifest.jsonl"
GENESIS_PREV = "0" * 64
MAX_SAFE_INTEGER = 2**53 - 1
# The recorder nests values three deep (line, settings, a setting's table); a value nested deeper
# than this is refused before encoding, so no depth of nesting can exhaust the recursion limit.
MAX_NESTING = 32

JSONValue = Union[str, int, bool, None, Sequence["JSONValue"], Mapping[str, "JSONValue"]]


class ManifestError(RecorderError):
    """Base class of the manifest's errors."""


class ManifestFormatError(ManifestError, ValueError):
    """A value that has no canonical encoding (a float, a non-ASCII key, a nested ``sig`` ...)."""


class ManifestStateError(ManifestError, RuntimeError):
    """An append that does not fit the manifest's state (after sealing, after a failed write)."""


class ManifestWriteError(ManifestError, OSError):
    """Writing or fsyncing a line failed; the file keeps its complete lines and can be reopened."""


class ManifestIntegrityError(ManifestError):
    """A manifest to be continued does not verify: it must not be extended."""


class LineType(str, enum.Enum):
    HEADER = "header"
    SEGMENT = "segment"
    EVENT = "event"
    SEALED = "sealed"


class EventKind(str, enum.Enum):
    """What an ``event`` line records. Readers accept unknown kinds from newer recorders."""

    TRIGGER = "trigger"  # detail: {"source": "button" | "aux" | ...}; what started the recording
    STOP = "stop"  # detail: {"reason": str}; what stopped it
    MARKER = "marker"  # the officer pressed the button while recording
    STEALTH = "stealth"  # detail: {"on": bool}; LED and beeper off/on
    OVERRUN = "overrun"  # detail: {"access_units": n, "bytes": n}; the writer fell behind
    ERROR = "error"  # detail: {"message": str}
    AUDIO_OVERFLOW = "audio_overflow"  # detail: {"blocks": n}; the microphone lost samples
    AUDIO_RESYNC = "audio_resync"  # detail: {"count": n}; audio pts re-anchored to the clock
    MANIFEST_REPAIRED = "manifest_repaired"  # detail: {"dropped_bytes": n, "dropped_sha256": hex}
    DROPPED = "dropped"  # detail: {"stream", "units", "first_pts_us", "last_pts_us", "reason"}


# ---------------------------------------------------------------------------------------------
# canonical encoding


def _check_value(value: object, where: str, nested: bool, depth: int = 0) -> None:
    if depth > MAX_NESTING:
        raise ManifestFormatError(f"{where[:60]}…: values nested more than {MAX_NESTING} deep")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ManifestFormatError(f"{where}: integer {value} is outside ±(2**53-1), which "
                                      "JSON readers in other languages cannot hold exactly")
        return
    if isinstance(value, float):
        raise ManifestFormatError(f"{where}: floats are not allowed in the manifest ({value!r}); "
                                  "use integer units such as microseconds")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise ManifestFormatError(f"{where}: key {key!r} must be an ASCII string")
            if nested and key == "sig":
                raise ManifestFormatError(f"{where}: the key 'sig' is reserved for the line's "
                                          "signature and may not appear in nested objects")
            _check_value(item, f"{where}.{key}", True, depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            _check_value(item, f"{where}[{position}]", True, depth + 1)
        return
    raise ManifestFormatError(f"{where}: {type(value).__name__} cannot be stored in the manifest")


def canonical_bytes(obj: Mapping[str, Any]) -> bytes:
    """The canonical form of one manifest object (no newline). Raises ManifestFormatError."""
    _check_value(obj, "line", False)
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ManifestFormatError(f"line: a string is not valid Unicode ({exc.reason})") from None


def signed_bytes(obj: Mapping[str, Any]) -> bytes:
    """The bytes a line's ``sig`` signs: its canonical form without ``sig``."""
    return canonical_bytes({key: value for key, value in obj.items() if key != "sig"})


def line_hash(stored_line: bytes) -> str:
    """The ``prev`` the next line must carry: hex SHA-256 of this line including its newline."""
    return hashlib.sha256(stored_line).hexdigest()


def utc_now() -> str:
    """The current UTC time in the manifest's form, e.g. "2026-11-23T07:04:27.123456Z"."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"key {key!r} appears twice")
        result[key] = value
    return result


def _refuse_float(text: str) -> Any:
    raise ValueError(f"number {text} is not an integer")


def _refuse_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def parse_line(data: bytes) -> dict[str, Any]:
    """Parse one line's bytes (without newline) strictly; raises ValueError saying what is wrong."""
    text = data.decode("utf-8")  # UnicodeDecodeError is a ValueError
    obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_refuse_float,
                     parse_constant=_refuse_constant)
    if not isinstance(obj, dict):
        raise ValueError(f"a line must be a JSON object, not {type(obj).__name__}")
    return obj


# ---------------------------------------------------------------------------------------------
# writing


@dataclass(frozen=True)
class RecordingHeader:
    """What line 1 says about the recording; the writer adds the key and the chain fields."""

    recording_id: str
    device_id: str
    officer_id: str
    utc_start: str  # ISO 8601 UTC of monotonic_start_us
    monotonic_start_us: int  # the shared pts clock at the start of the recording
    clock_source: str  # where UTC came from: "ntp", "rtc", "gps", "unsynchronised" ...
    settings: Mapping[str, JSONValue] = field(default_factory=dict)
    encryption: WrappedContentKey | None = None  # None: the segments are in the clear


@dataclass(frozen=True)
class ManifestLine:
    """One line as written: its object (with ``sig``) and its stored bytes (with newline)."""

    seq: int
    obj: Mapping[str, Any]
    stored: bytes

    @property
    def hash(self) -> str:
        return line_hash(self.stored)


class ManifestWriter:
    """Appends signed, chained lines to one recording's manifest, fsyncing each.

    Not thread-safe: one writer thread owns it. After a failed write it refuses further appends;
    ``ManifestWriter.reopen`` then cuts any partial last line and continues the chain.
    """

    def __init__(self, path: Path, key: DeviceKey, fd: int, next_seq: int, prev: str,
                 segments: int, segment_bytes: int) -> None:
        self.path = path
        self._key = key
        self._fd: int | None = fd
        self._next_seq = next_seq
        self._prev = prev
        self._segments = segments
        self._segment_bytes = segment_bytes
        self._sealed = False
        self._failure: BaseException | None = None
        self.repair: ManifestLine | None = None  # the manifest_repaired event reopen wrote

    # -- opening

    @classmethod
    def create(cls, directory: Path, key: DeviceKey, header: RecordingHeader) -> ManifestWriter:
        """Start a new manifest in ``directory`` (which must not hold one) and write its header."""
        body = cls._header_body(header, key)
        canonical_bytes(body)  # a bad setting fails here, before any file exists
        path = directory / MANIFEST_NAME
        fd = open_private(path, os.O_WRONLY | os.O_EXCL | os.O_APPEND)
        writer = cls(path, key, fd, 1, GENESIS_PREV, 0, 0)
        try:
            writer._append(body)
            fsync_directory(directory)  # the new name survives a power cut too
        except BaseException:
            writer.close()
            raise
        return writer

    @staticmethod
    def _header_body(header: RecordingHeader, key: DeviceKey) -> dict[str, Any]:
        body = {
            "type": LineType.HEADER.value,
            "format": FORMAT,
            "recording_id": header.recording_id,
            "device_id": header.device_id,
            "officer_id": header.officer_id,
            "public_key": keys.public_key_spki_b64(key.public_key),
            "key_fingerprint": key.fingerprint,
            "utc_start": header.utc_start,
            "monotonic_start_us": header.monotonic_start_us,
            "clock_source": header.clock_source,
            "settings": dict(header.settings),
        }
        if header.encryption is not None:
            body["encryption"] = header.encryption.header_fields()
        return body

    @classmethod
    def reopen(cls, directory: Path, key: DeviceKey, utc: str | None = None) -> ManifestWriter:
        """Continue an unsealed manifest after a crash or power cut.

        Every complete line must verify against ``key``. A partial last line (a write cut short)
        is removed, and an ``event`` line ``manifest_repaired`` records how many bytes were
        dropped and their SHA-256, so the repair itself is signed and visible.
        """
        path = directory / MANIFEST_NAME
        data = path.read_bytes()
        check = check_manifest(data, trusted_key=key.public_key, require_sealed=False)
        problems = [item for item in check.problems
                    if item.code not in (LineProblemCode.PARTIAL_LINE, LineProblemCode.EMPTY)]
        if problems:
            first = problems[0]
            raise ManifestIntegrityError(
                f"{path} cannot be continued: line {first.line}: {first.message}")
        if check.sealed:
            raise ManifestStateError(f"{path} is sealed: a sealed recording takes no more lines")
        if not check.lines:
            raise ManifestIntegrityError(f"{path} has no complete header line: it cannot be "
                                         "continued; start a new recording")
        complete = len(data) - len(check.partial_tail)
        fd = open_private(path, os.O_WRONLY | os.O_APPEND)  # exists: 0600 even if made before
        try:
            if check.partial_tail:
                os.ftruncate(fd, complete)
                os.fsync(fd)
            segments = check.read.segments()  # every line is a valid record: none had problems
            writer = cls(path, key, fd, len(check.lines) + 1, line_hash(check.stored[-1]),
                         len(segments), sum(segment.bytes for segment in segments))
        except BaseException:
            os.close(fd)
            raise
        if check.partial_tail:
            writer.repair = writer.append_event(
                EventKind.MANIFEST_REPAIRED, utc or utc_now(),
                detail={"dropped_bytes": len(check.partial_tail),
                        "dropped_sha256": hashlib.sha256(check.partial_tail).hexdigest()})
        return writer

    # -- appending

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def sealed(self) -> bool:
        return self._sealed

    def append_segment(self, segment: SealedSegment) -> ManifestLine:
        """Enter a sealed segment; its index must follow the previous segment's."""
        if segment.index != self._segments + 1:
            raise ManifestStateError(f"segment index {segment.index} does not follow the "
                                     f"previous segment ({self._segments}): expected "
                                     f"{self._segments + 1}")
        obj: dict[str, Any] = {"type": LineType.SEGMENT.value, **segment.as_dict()}
        line = self._append(obj)
        self._segments += 1
        self._segment_bytes += segment.bytes
        return line

    def append_event(self, kind: EventKind, utc: str, pts_us: int | None = None,
                     detail: Mapping[str, JSONValue] | None = None) -> ManifestLine:
        """Record an event at ``utc`` (and ``pts_us`` on the shared clock, when known)."""
        obj: dict[str, Any] = {"type": LineType.EVENT.value, "event": EventKind(kind).value,
                               "utc": utc}
        if pts_us is not None:
            obj["pts_us"] = pts_us
        if detail:
            obj["detail"] = dict(detail)
        return self._append(obj)

    def seal(self, utc: str, reason: str = "stopped") -> ManifestLine:
        """Write the final ``sealed`` line: the count and total bytes of the segments."""
        line = self._append({"type": LineType.SEALED.value, "utc": utc, "reason": reason,
                             "segments": self._segments, "bytes": self._segment_bytes})
        self._sealed = True
        return line

    def _append(self, body: dict[str, Any]) -> ManifestLine:
        if self._fd is None:
            raise ManifestStateError(f"{self.path} is closed")
        if self._sealed:
            raise ManifestStateError(f"{self.path} is sealed: a sealed recording takes no more "
                                     "lines")
        if self._failure is not None:
            raise ManifestStateError(
                f"an earlier write to {self.path} failed ({self._failure}); reopen it with "
                "ManifestWriter.reopen to cut the partial line and continue") from self._failure
        obj = dict(body, seq=self._next_seq, prev=self._prev)
        signature = self._key.sign(canonical_bytes(obj))
        obj["sig"] = base64.b64encode(signature).decode("ascii")
        stored = canonical_bytes(obj) + b"\n"
        try:
            write_all(self._fd, stored)
            os.fsync(self._fd)
        except OSError as exc:
            self._failure = exc
            raise ManifestWriteError(
                exc.errno, f"appending line {self._next_seq} to {self.path} failed "
                f"({exc.strerror or exc}); its complete lines are intact: reopen it with "
                "ManifestWriter.reopen to continue") from exc
        line = ManifestLine(self._next_seq, obj, stored)
        self._next_seq += 1
        self._prev = line.hash
        return line

    def close(self) -> None:
        """Close the file (idempotent). Closing does not seal: call ``seal`` first."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# reading: every manifest reader (verify, the uploader, the station, recovery) goes through here


class LineProblemCode(str, enum.Enum):
    NOT_JSON = "not_json"
    NOT_CANONICAL = "not_canonical"
    MISSING_FIELD = "missing_field"
    SEQ = "seq"
    CHAIN = "chain"
    SIGNATURE = "signature"
    KEY = "key"
    STRUCTURE = "structure"
    PARTIAL_LINE = "partial_line"
    NOT_SEALED = "not_sealed"
    EMPTY = "empty"


@dataclass(frozen=True)
class LineProblem:
    """Something wrong with one line of the manifest (``line`` is 1-based)."""

    line: int
    code: LineProblemCode
    message: str


class ManifestReadError(ManifestError, ValueError):
    """A manifest that does not read as whole, valid lines; ``problem`` says where and why."""

    def __init__(self, problem: LineProblem) -> None:
        super().__init__(f"line {problem.line}: {problem.message}")
        self.problem = problem


@dataclass(frozen=True, kw_only=True)
class Record:
    """What every valid line carries besides its own fields: its place, chain and bytes."""

    number: int  # 1-based line number in the file
    seq: int
    prev: str
    sig: str
    stored: bytes  # the line as stored, newline included
    obj: Mapping[str, Any]  # the whole parsed object, keys a newer recorder added included

    @property
    def hash(self) -> str:
        """The ``prev`` the next line must carry."""
        return line_hash(self.stored)


@dataclass(frozen=True, kw_only=True)
class Header(Record):
    """Line 1: who recorded, with which key and settings, from when."""

    format: str
    recording_id: str
    device_id: str
    officer_id: str
    public_key: str  # base64 of the DER SubjectPublicKeyInfo
    key_fingerprint: str
    utc_start: str
    monotonic_start_us: int
    clock_source: str
    settings: Mapping[str, Any]
    encryption: WrappedContentKey | None  # the wrapped content key of an encrypted recording


@dataclass(frozen=True, kw_only=True)
class SegmentLine(Record):
    """A sealed segment entered in the manifest (the fields of `SealedSegment`)."""

    index: int
    file: str
    bytes: int
    sha256: str
    first_pts_us: int
    last_pts_us: int
    utc_start: str
    utc_end: str
    fragments: int
    recovered: bool


@dataclass(frozen=True, kw_only=True)
class EventLine(Record):
    """An event; ``event`` may be a kind a newer recorder added (see `EventKind`)."""

    event: str
    utc: str
    pts_us: int | None  # None when the line gives none (or not an integer)
    detail: Mapping[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class SealedLine(Record):
    """The last line: why the recording ended, and how many segments and bytes it holds."""

    utc: str
    reason: str
    segments: int
    bytes: int


AnyRecord = Union[Header, SegmentLine, EventLine, SealedLine]

_COMMON_FIELDS: dict[str, type] = {"seq": int, "prev": str, "sig": str, "type": str}
_RECORDS: dict[str, type[Record]] = {LineType.HEADER.value: Header,
                                     LineType.SEGMENT.value: SegmentLine,
                                     LineType.EVENT.value: EventLine,
                                     LineType.SEALED.value: SealedLine}
_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "header": {"format": str, "recording_id": str, "device_id": str, "officer_id": str,
               "public_key": str, "key_fingerprint": str, "utc_start": str,
               "monotonic_start_us": int, "clock_source": str, "settings": dict},
    "segment": {"index": int, "file": str, "bytes": int, "sha256": str, "first_pts_us": int,
                "last_pts_us": int, "utc_start": str, "utc_end": str, "fragments": int,
                "recovered": bool},
    "event": {"event": str, "utc": str},
    "sealed": {"utc": str, "reason": str, "segments": int, "bytes": int},
}


def _field_problems(obj: Mapping[str, Any]) -> str | None:
    for name, kind in _COMMON_FIELDS.items():
        if not isinstance(obj.get(name), kind) or isinstance(obj.get(name), bool):
            return f"field {name!r} is missing or not a {kind.__name__}"
    line_type = obj["type"]
    if line_type not in _FIELDS:
        return f"type {line_type!r} is not one of {', '.join(_FIELDS)}"
    for name, kinds in _FIELDS[line_type].items():
        value = obj.get(name)
        wanted = kinds if isinstance(kinds, tuple) else (kinds,)
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            names = " or ".join(kind.__name__ for kind in wanted)
            return f"{line_type} field {name!r} is missing or not a {names}"
    if line_type == LineType.HEADER.value and "encryption" in obj:
        try:
            parse_header_fields(obj["encryption"])
        except EncryptionHeaderError as exc:
            return f"header field 'encryption' is not valid: {exc}"
    return None


def _record(number: int, stored: bytes, obj: Mapping[str, Any]) -> AnyRecord:
    """The typed record of a line whose fields `_field_problems` found complete."""
    line_type = obj["type"]
    fields = {name: obj[name] for name in _FIELDS[line_type]}
    if line_type == LineType.EVENT.value:
        pts_us, detail = obj.get("pts_us"), obj.get("detail")
        fields["pts_us"] = pts_us if isinstance(pts_us, int) else None
        fields["detail"] = detail if isinstance(detail, dict) else None
    if line_type == LineType.HEADER.value:  # checked by _field_problems when present
        fields["encryption"] = parse_header_fields(obj["encryption"]) \
            if "encryption" in obj else None
    return cast(AnyRecord, _RECORDS[line_type](
        number=number, seq=obj["seq"], prev=obj["prev"], sig=obj["sig"], stored=stored, obj=obj,
        **fields))


@dataclass(frozen=True)
class Line:
    """One complete line as read: its bytes, its object if it parses, its record if valid."""

    number: int  # 1-based
    stored: bytes  # newline included
    obj: Mapping[str, Any] | None  # None when the line is not a JSON object
    record: AnyRecord | None  # None when the object lacks a field or has one of a wrong type
    not_json: str | None = None  # why the line is not a JSON object, when it is not

    @property
    def type(self) -> str | None:
        """The line's ``type`` as written, even on an invalid line (None if not a string)."""
        value = self.value("type")
        return value if isinstance(value, str) else None

    def value(self, name: str) -> Any:
        """What the line says for ``name``, valid or not (None when absent or unparsable): for
        describing a damaged manifest. Decisions are taken on ``record``."""
        return None if self.obj is None else self.obj.get(name)


@dataclass(frozen=True)
class ManifestLines:
    """A manifest read line by line: every complete line, the partial tail, and the problems
    found reading them (not JSON, not canonical, a field missing)."""

    lines: tuple[Line, ...]
    tail: bytes  # bytes after the last newline (empty when the file ends cleanly)
    problems: tuple[LineProblem, ...]

    @property
    def records(self) -> list[AnyRecord]:
        """The valid lines' records, in order."""
        return [line.record for line in self.lines if line.record is not None]

    @property
    def header(self) -> Header | None:
        """Line 1's record, when it is a valid header."""
        first = self.lines[0].record if self.lines else None
        return first if isinstance(first, Header) else None

    def segments(self) -> list[SegmentLine]:
        """The valid segment lines, in order."""
        return [record for record in self.records if isinstance(record, SegmentLine)]

    def events(self) -> list[EventLine]:
        """The valid event lines, in order."""
        return [record for record in self.records if isinstance(record, EventLine)]

    def of_type(self, line_type: LineType) -> list[Line]:
        """Every complete line whose ``type`` is ``line_type``, valid or not."""
        return [line for line in self.lines if line.type == line_type.value]


def split_lines(data: bytes) -> tuple[list[bytes], bytes]:
    """(complete lines with their newline, the partial tail after the last newline)."""
    cut = data.rfind(b"\n") + 1
    complete = data[:cut]
    return complete.splitlines(keepends=True), data[cut:]


def _read_line(number: int, stored: bytes) -> tuple[Line, list[LineProblem]]:
    body = stored[:-1]
    try:
        obj = parse_line(body)
    except (ValueError, RecursionError) as exc:
        return Line(number, stored, None, None, str(exc)), [LineProblem(
            number, LineProblemCode.NOT_JSON, f"not a valid manifest JSON object ({exc})")]
    problems = []
    try:
        canonical: bytes | None = canonical_bytes(obj)
    except ManifestFormatError as exc:
        canonical = None
        problems.append(LineProblem(number, LineProblemCode.NOT_CANONICAL,
                                    f"value not allowed: {exc}"))
    if canonical is not None and canonical != body:
        problems.append(LineProblem(
            number, LineProblemCode.NOT_CANONICAL,
            "not in canonical form (sorted keys, no spaces, minimal escapes): the line was "
            "rewritten after the recorder wrote it"))
    missing = _field_problems(obj)
    if missing is not None:
        problems.append(LineProblem(number, LineProblemCode.MISSING_FIELD, missing))
        return Line(number, stored, obj, None), problems
    return Line(number, stored, obj, _record(number, stored, obj)), problems


def read_lines(data: bytes) -> ManifestLines:
    """Read every complete line of a manifest into a typed record where it is valid. Never
    raises for any bytes: what does not read is listed in ``problems``, line by line."""
    stored, tail = split_lines(data)
    lines: list[Line] = []
    problems: list[LineProblem] = []
    for number, line_bytes in enumerate(stored, 1):
        line, found = _read_line(number, line_bytes)
        lines.append(line)
        problems.extend(found)
    return ManifestLines(tuple(lines), tail, tuple(problems))


def read_records(data: bytes) -> list[AnyRecord]:
    """Every line's record, for a manifest that must be whole and valid line by line. Raises
    ManifestReadError at the first line that is not (or at a partial last line). The chain and
    signatures are not checked here: `check_manifest` does that."""
    read = read_lines(data)
    if read.problems:
        raise ManifestReadError(read.problems[0])
    if read.tail:
        raise ManifestReadError(_partial_line(read))
    return read.records


# ---------------------------------------------------------------------------------------------
# checking


@dataclass
class ManifestCheck:
    """The result of checking a manifest's lines, chain and signatures."""

    lines: list[dict[str, Any]]  # parsed objects of the complete lines ({} where unparsable)
    stored: list[bytes]  # each complete line's bytes, with newline
    problems: list[LineProblem]
    partial_tail: bytes  # bytes after the last newline (empty when the file ends cleanly)
    header_key: Ed25519PublicKey | None
    key_source: str  # "trusted" or "header" or "none"
    sealed: bool
    read: ManifestLines  # the same lines as typed records

    @property
    def ok(self) -> bool:
        return not self.problems


def is_plain_file_name(name: str) -> bool:
    """True for a name that can only mean a file directly inside the recording directory."""
    return bool(name) and "/" not in name and "\\" not in name and "\0" not in name \
        and not name.startswith(".") and name != MANIFEST_NAME


def _segment_entry_problem(segment: SegmentLine, earlier_files: list[str]) -> str | None:
    name = segment.file
    if not is_plain_file_name(name):
        return f"segment file name {name!r} is not a plain file name in the recording directory"
    if name in earlier_files:
        return f"segment file {name!r} is listed twice"
    if segment.index != len(earlier_files) + 1:
        return (f"segment index {segment.index} where {len(earlier_files) + 1} is expected: "
                "segment lines were deleted, duplicated or moved")
    if segment.bytes < 0 or segment.fragments < 0 or segment.last_pts_us < segment.first_pts_us:
        return "segment sizes or pts are impossible (negative, or last_pts_us < first_pts_us)"
    sha = segment.sha256
    if len(sha) != 64 or any(char not in "0123456789abcdef" for char in sha):
        return f"sha256 {sha!r} is not 64 lower-case hex digits"
    return None


def _seq_problems(read: ManifestLines) -> list[LineProblem]:
    """Each valid line's ``seq`` is its line number."""
    return [LineProblem(record.number, LineProblemCode.SEQ,
                        f"seq is {record.seq} on line {record.number}: a line was deleted, "
                        "duplicated, inserted or moved")
            for record in read.records if record.seq != record.number]


def _chain_problems(read: ManifestLines) -> list[LineProblem]:
    """Each valid line's ``prev`` is the hash of the line stored before it (or 64 zeros)."""
    problems = []
    for record in read.records:
        number = record.number
        expected = GENESIS_PREV if number == 1 else line_hash(read.lines[number - 2].stored)
        if record.prev != expected:
            what = "the genesis value (64 zeros)" if number == 1 \
                else f"the SHA-256 of line {number - 1}"
            problems.append(LineProblem(
                number, LineProblemCode.CHAIN,
                f"prev {record.prev[:16]}… is not {what} ({expected[:16]}…): the line before it "
                "was changed, or lines were deleted, inserted or moved"))
    return problems


@dataclass
class _Keys:
    """The key the signatures are checked against, and where it came from."""

    key: Ed25519PublicKey | None
    source: str
    header_key: Ed25519PublicKey | None = None


def _header_key_problems(header: Header, trusted_key: Ed25519PublicKey | None,
                         found: _Keys) -> list[LineProblem]:
    """The header's key: well-formed, its fingerprint right, the trusted key when one is given.
    Sets ``found.header_key`` (and ``found.key`` without a trusted key)."""
    problems = []
    try:
        found.header_key = keys.public_key_from_spki_b64(header.public_key)
    except keys.PublicKeyFormatError as exc:
        return [LineProblem(1, LineProblemCode.KEY, str(exc))]
    header_key = found.header_key
    if keys.fingerprint(header_key) != header.key_fingerprint:
        problems.append(LineProblem(
            1, LineProblemCode.KEY,
            f"key_fingerprint {header.key_fingerprint[:16]}… is not the SHA-256 of the header's "
            f"public key ({keys.fingerprint(header_key)[:16]}…)"))
    if trusted_key is None:
        found.key, found.source = header_key, "header"
    elif keys.public_key_raw(header_key) != keys.public_key_raw(trusted_key):
        problems.append(LineProblem(
            1, LineProblemCode.KEY,
            f"the header's public key (fingerprint {keys.fingerprint(header_key)[:16]}…) is not "
            f"the trusted key (fingerprint {keys.fingerprint(trusted_key)[:16]}…): the recording "
            "was signed by another device, or re-signed"))
    return problems


def _header_problems(read: ManifestLines,
                     trusted_key: Ed25519PublicKey | None) -> tuple[list[LineProblem], _Keys]:
    """Line 1 is a header of this format whose key checks out; and which key signs the lines."""
    found = _Keys(trusted_key, "trusted" if trusted_key is not None else "none")
    first = read.lines[0].record if read.lines else None
    if first is None:
        return [], found
    if not isinstance(first, Header):
        problem = LineProblem(1, LineProblemCode.STRUCTURE,
                              f"line 1 is a {first.obj['type']!r} line; it must be the header")
        return [problem], found
    problems = _header_key_problems(first, trusted_key, found)
    if first.format != FORMAT:
        problems.append(LineProblem(1, LineProblemCode.STRUCTURE,
                                    f"format {first.format!r} is not {FORMAT!r}"))
    return problems, found


def _sealed_at(read: ManifestLines) -> int | None:
    """The line number of the first valid sealed line."""
    return next((record.number for record in read.records if isinstance(record, SealedLine)),
                None)


def _structure_problems(read: ManifestLines) -> list[LineProblem]:
    """One header, first; segment entries numbered in order with plain, distinct file names;
    nothing after the sealed line."""
    problems = []
    segment_files: list[str] = []
    sealed_at = _sealed_at(read)
    for record in read.records:
        number = record.number
        if number > 1 and isinstance(record, Header):
            problems.append(LineProblem(number, LineProblemCode.STRUCTURE,
                                        "a second header line: only line 1 may be a header"))
        if isinstance(record, SegmentLine):
            segment_problem = _segment_entry_problem(record, segment_files)
            if segment_problem is not None:
                problems.append(LineProblem(number, LineProblemCode.STRUCTURE, segment_problem))
            segment_files.append(record.file)
        if sealed_at is not None and number > sealed_at:
            problems.append(LineProblem(
                number, LineProblemCode.STRUCTURE,
                f"a line after the sealed line (line {sealed_at}): lines were appended after the "
                "recording was sealed"))
    return problems


def _signature_verifies(key: Ed25519PublicKey, record: AnyRecord) -> bool:
    try:
        signature = base64.b64decode(record.sig, validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    try:
        message = signed_bytes(record.obj)
    except ManifestFormatError:
        message = b""
    return len(signature) == 64 and keys.verify_signature(key, signature, message)


def _signature_problems(read: ManifestLines, found: _Keys) -> list[LineProblem]:
    """Each valid line's ``sig`` verifies against the trusted key, or else the header's."""
    key = found.key
    if key is None:
        return [LineProblem(record.number, LineProblemCode.SIGNATURE,
                            "the signature cannot be checked: no valid public key in the header "
                            "and no trusted key given") for record in read.records]
    whose = "the trusted key" if found.source == "trusted" else "the header's key"
    return [LineProblem(record.number, LineProblemCode.SIGNATURE,
                        f"the signature does not verify against {whose}: the line was changed "
                        "after it was signed, or signed by another key")
            for record in read.records if not _signature_verifies(key, record)]


def _partial_line(read: ManifestLines) -> LineProblem:
    return LineProblem(len(read.lines) + 1, LineProblemCode.PARTIAL_LINE,
                       f"the last line is incomplete ({len(read.tail)} bytes without a newline): "
                       "the recorder stopped in the middle of writing it; restarting the "
                       "recorder cuts it and seals the recording")


def _sealed_total_problems(read: ManifestLines, sealed: SealedLine) -> list[LineProblem]:
    """The sealed line's count and total agree with the segment lines (valid or not)."""
    problems = []
    segment_lines = read.of_type(LineType.SEGMENT)
    if sealed.segments != len(segment_lines):
        problems.append(LineProblem(
            sealed.number, LineProblemCode.STRUCTURE,
            f"the sealed line counts {sealed.segments} segments but the manifest lists "
            f"{len(segment_lines)}"))
    total = sum(line.value("bytes") for line in segment_lines
                if isinstance(line.value("bytes"), int))
    if sealed.bytes != total:
        problems.append(LineProblem(
            sealed.number, LineProblemCode.STRUCTURE,
            f"the sealed line totals {sealed.bytes} bytes but the segments add up to {total}"))
    return problems


def _ending_problems(read: ManifestLines, require_sealed: bool) -> list[LineProblem]:
    """The file is not empty, ends in a whole line and (when required) a sealed line."""
    problems = []
    if not read.lines and not read.tail:
        problems.append(LineProblem(1, LineProblemCode.EMPTY, "the manifest is empty"))
    if read.tail:
        problems.append(_partial_line(read))
    sealed_at = _sealed_at(read)
    if sealed_at is not None:
        sealed = read.lines[sealed_at - 1].record
        assert isinstance(sealed, SealedLine)
        problems.extend(_sealed_total_problems(read, sealed))
    elif require_sealed and (read.lines or read.tail):
        problems.append(LineProblem(
            len(read.lines) + (1 if read.tail else 0), LineProblemCode.NOT_SEALED,
            "the manifest has no sealed line: the recording was not stopped cleanly (restart the "
            "recorder to recover and seal it), or its last lines were removed"))
    return problems


def check_manifest(data: bytes, trusted_key: Ed25519PublicKey | None = None,
                   require_sealed: bool = True) -> ManifestCheck:
    """Check every line: strict JSON, canonical form, ``seq``, ``prev`` chain and ``sig``.

    Signatures are checked against ``trusted_key`` when given (the header's key must then be
    that key), else against the header's own key. Problems are listed in line order; within a
    line the most telling one comes first (a wrong ``seq`` before the chain and signature it
    also breaks): each check below adds its problems in line order, and the sort is stable.
    """
    read = read_lines(data)
    header_problems, found = _header_problems(read, trusted_key)
    problems = [*read.problems, *_seq_problems(read), *_chain_problems(read), *header_problems,
                *_structure_problems(read), *_signature_problems(read, found),
                *_ending_problems(read, require_sealed)]
    problems.sort(key=lambda item: item.line)
    return ManifestCheck([dict(line.obj) if line.obj is not None else {} for line in read.lines],
                         [line.stored for line in read.lines], problems, read.tail,
                         found.header_key, found.source, _sealed_at(read) is not None, read)
