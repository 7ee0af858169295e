"""The camera's Uploader: sends sealed recordings to the evidence station, oldest first, and
deletes a local copy only after the station confirms it holds every segment hash and has verified
the manifest. Resumable: each run first asks the station what it already holds.

A recording still being written (its manifest has no final ``sealed`` line) is never touched.
Requests are signed with the device key (recorder.integrity.request_signing).
"""

from __future__ import annotations

import functools
import hashlib
import os
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .errors import RecorderError
from .integrity import manifest
from .integrity.keys import DeviceKey
from .integrity.request_signing import EMPTY_SHA256, is_safe_name, sign_request

API = "/api/v1"
CHUNK_BYTES = 1 << 20


class UploadError(RecorderError):
    """Base class of the uploader's errors."""


class StationUnreachableError(UploadError, ConnectionError):
    """The station did not answer, or the connection broke: nothing was deleted; dock again."""


class StationNotTrustedError(StationUnreachableError):
    """An https station whose certificate this camera does not trust: every upload would fail
    the same way, so the run stops at once (the fix is --cafile or station.cafile)."""


class CaFileError(UploadError):
    """The CA file given for an https station does not exist or holds no certificate."""


class StationRefusedError(UploadError):
    """The station answered with an error; ``status`` and ``code`` say which."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"the station refused ({status} {code}): {message}")
        self.status = status
        self.code = code


class NotConfirmedError(UploadError):
    """The station's holdings after upload do not match the camera's recording: kept locally."""


class LocalRecordingError(UploadError):
    """The local recording cannot be uploaded as it is (a listed segment is missing)."""


@dataclass(frozen=True)
class LocalSegment:
    file: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class LocalRecording:
    """A sealed recording on the camera, as its manifest describes it."""

    directory: Path
    recording_id: str
    utc_start: str
    manifest_bytes: bytes
    segments: tuple[LocalSegment, ...]

    @property
    def manifest_sha256(self) -> str:
        return hashlib.sha256(self.manifest_bytes).hexdigest()

    @property
    def total_bytes(self) -> int:
        return sum(segment.bytes for segment in self.segments) + len(self.manifest_bytes)


def read_sealed(directory: Path) -> LocalRecording | None:
    """The recording in ``directory`` when its manifest ends with a ``sealed`` line, else None
    (still being written, not a recording, or names no uploader would send or delete by). The
    chain and signatures are checked by the station, not here: an edited line still goes there
    to be found out. But the header, segment and sealed lines, which the uploader acts on, must
    read as valid lines."""
    try:
        data = (directory / manifest.MANIFEST_NAME).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    read = manifest.read_lines(data)
    if read.tail or not read.lines or any(line.obj is None for line in read.lines):
        return None
    header, last = read.header, read.lines[-1].record
    if header is None or not isinstance(last, manifest.SealedLine):
        return None
    segments = read.segments()
    if len(segments) != len(read.of_type(manifest.LineType.SEGMENT)):
        return None  # a segment line that does not read: nothing to send or delete by
    if not is_safe_name(header.recording_id) or not all(is_safe_name(s.file) for s in segments):
        return None  # not something this camera wrote: never upload or delete by it
    return LocalRecording(directory, header.recording_id, header.utc_start, data,
                          tuple(LocalSegment(s.file, s.sha256, s.bytes) for s in segments))


MEDIA_SUFFIXES = (".mp4", ".partial")


def holds_recording(directory: Path) -> bool:
    """True when ``directory`` holds a manifest or media: a recording, sealed or not. A directory
    without either (what an upload leaves when other files sat beside the recording) is not."""
    return any(entry.name == manifest.MANIFEST_NAME or entry.name.endswith(MEDIA_SUFFIXES)
               for entry in directory.iterdir())


def find_sealed_recordings(root: Path) -> tuple[list[LocalRecording], list[Path]]:
    """(sealed recordings under ``root`` oldest first, recordings skipped as unsealed).
    Directories that hold no recording at all are in neither list."""
    sealed: list[LocalRecording] = []
    skipped: list[Path] = []
    if not root.is_dir():
        return sealed, skipped
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            continue
        recording = read_sealed(entry)
        if recording is not None:
            sealed.append(recording)
        elif holds_recording(entry):
            skipped.append(entry)
    sealed.sort(key=lambda r: (r.utc_start, r.recording_id))
    return sealed, skipped


@dataclass(frozen=True)
class UploadProgress:
    """Where an upload run is; ``bytes_done`` counts what is already held too."""

    recording_id: str
    recording_number: int  # 1-based
    recordings: int
    file: str
    bytes_done: int
    bytes_total: int


@dataclass
class RecordingOutcome:
    recording_id: str
    uploaded: list[str] = field(default_factory=list)  # files sent this run
    already_held: list[str] = field(default_factory=list)
    verified: bool = False
    deleted: bool = False
    error: str | None = None
    # files beside the recording that are not part of it: its directory was kept for them
    kept_files: list[str] = field(default_factory=list)


@dataclass
class UploadSummary:
    outcomes: list[RecordingOutcome] = field(default_factory=list)
    skipped_unsealed: list[Path] = field(default_factory=list)
    stopped: str | None = None  # why the run stopped early (station unreachable)

    @property
    def ok(self) -> bool:
        return self.stopped is None and all(o.error is None for o in self.outcomes)


def _file_chunks(path: Path, chunk_bytes: int,
                 sent: Callable[[int], None]) -> Iterator[bytes]:
    with open(path, "rb") as file:
        while chunk := file.read(chunk_bytes):
            sent(len(chunk))
            yield chunk


class Uploader:
    """Uploads the sealed recordings in ``recordings_dir`` to ``station_url``.

    ``progress`` is called after every chunk; ``cafile`` is the CA (or the station's own
    certificate) to trust for an https station (CaFileError when it is missing or holds no
    certificate; a station it does not vouch for stops the run with StationNotTrustedError in
    the summary); ``transport`` is for tests (an httpx transport).
    ``attempts`` is how often a recording is retried after a broken connection, re-asking the
    station what it holds each time.
    """

    def __init__(self, station_url: str, key: DeviceKey, device_id: str, recordings_dir: Path,
                 *, progress: Callable[[UploadProgress], None] | None = None,
                 attempts: int = 3, retry_delay_s: float = 1.0, timeout_s: float = 60.0,
                 chunk_bytes: int = CHUNK_BYTES, cafile: Path | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.station_url = station_url.rstrip("/")
        self.key = key
        self.device_id = device_id
        self.recordings_dir = recordings_dir
        self.progress = progress
        self.attempts = max(1, attempts)
        self.retry_delay_s = retry_delay_s
        self.chunk_bytes = chunk_bytes
        # an https station is checked against the system's CAs, or only against ``cafile``
        tls = tls_context(cafile) if cafile else True
        self._client = httpx.Client(base_url=self.station_url, timeout=timeout_s, verify=tls,
                                    transport=transport)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Uploader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests

    def _request(self, method: str, path: str, body_sha256: str, content: Any = None,
                 length: int | None = None) -> dict[str, Any]:
        headers = sign_request(self.key, self.device_id, method, path, body_sha256)
        if length is not None:
            headers["Content-Length"] = str(length)
        try:
            response = self._client.request(method, path, content=content, headers=headers)
        except httpx.TransportError as exc:
            untrusted = _certificate_error(exc)
            if untrusted is not None:
                raise StationNotTrustedError(_not_trusted_message(self.station_url,
                                                                  untrusted)) from exc
            raise StationUnreachableError(
                f"{method} {self.station_url}{path} failed: {exc.__class__.__name__}: {exc}. "
                "Nothing was deleted; the upload resumes on the next dock") from exc
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {"error": "not_json", "message": response.text[:200]}
        if response.status_code >= 400:
            raise StationRefusedError(response.status_code, str(body.get("error")),
                                      str(body.get("message")))
        return body

    def holdings(self, recording_id: str) -> dict[str, Any]:
        """What the station holds of a recording (GET /api/v1/recordings/ID)."""
        return self._request("GET", f"{API}/recordings/{recording_id}", EMPTY_SHA256)

    # -- the run

    def upload_all(self) -> UploadSummary:
        """Upload every sealed recording, oldest first; never raises for one recording's
        failure (it is in the summary), stops early only when the station is unreachable."""
        recordings, skipped = find_sealed_recordings(self.recordings_dir)
        summary = UploadSummary(skipped_unsealed=skipped)
        total = sum(r.total_bytes for r in recordings)
        done = 0
        for number, recording in enumerate(recordings, 1):
            outcome = RecordingOutcome(recording.recording_id)
            summary.outcomes.append(outcome)
            unreachable: StationUnreachableError | None = None
            for attempt in range(self.attempts):
                try:
                    self._upload_once(recording, outcome, number, len(recordings), done, total)
                    outcome.error, unreachable = None, None
                    break
                except StationNotTrustedError as exc:  # trying again cannot help
                    outcome.error, unreachable = str(exc), exc
                    break
                except StationUnreachableError as exc:
                    outcome.error, unreachable = str(exc), exc
                    if attempt + 1 < self.attempts:
                        time.sleep(self.retry_delay_s * (attempt + 1))
                except UploadError as exc:
                    outcome.error, unreachable = str(exc), None
                    break
            if unreachable is not None:
                summary.stopped = str(unreachable)
                break
            done += recording.total_bytes
        return summary

    def _upload_once(self, recording: LocalRecording, outcome: RecordingOutcome, number: int,
                     count: int, done_before: int, total: int) -> None:
        rid = recording.recording_id
        outcome.uploaded.clear()
        outcome.already_held.clear()
        held = self.holdings(rid)
        held_segments: dict[str, str] = held.get("segments", {})
        position = done_before

        def report(file: str, amount: int) -> None:
            nonlocal position
            position += amount
            if self.progress is not None:
                self.progress(UploadProgress(rid, number, count, file, position, total))

        for segment in recording.segments:
            if held_segments.get(segment.file) == segment.sha256:
                outcome.already_held.append(segment.file)
                report(segment.file, segment.bytes)
                continue
            path = recording.directory / segment.file
            if not path.is_file():
                raise LocalRecordingError(
                    f"{path} is listed in the manifest but missing on the camera, and the "
                    "station does not hold it: the recording is kept; check the storage")
            sent = functools.partial(report, segment.file)
            self._request("PUT", f"{API}/recordings/{rid}/segments/{segment.file}",
                          segment.sha256, content=_file_chunks(path, self.chunk_bytes, sent),
                          length=path.stat().st_size)
            outcome.uploaded.append(segment.file)
        if not (held.get("verified") and held.get("manifest_sha256") == recording.manifest_sha256
                and not outcome.uploaded):
            self._request("PUT", f"{API}/recordings/{rid}/manifest", recording.manifest_sha256,
                          content=recording.manifest_bytes)
        report(manifest.MANIFEST_NAME, len(recording.manifest_bytes))
        confirmed = self.holdings(rid)
        self._confirm(recording, confirmed)
        outcome.verified = True
        outcome.kept_files = self._delete_local(recording)
        outcome.deleted = True

    @staticmethod
    def _confirm(recording: LocalRecording, held: dict[str, Any]) -> None:
        if not held.get("verified"):
            raise NotConfirmedError(
                f"the station did not verify recording {recording.recording_id}: "
                f"{held.get('verify_summary')}; the camera keeps it")
        if held.get("manifest_sha256") != recording.manifest_sha256:
            raise NotConfirmedError(
                f"the station holds another manifest for {recording.recording_id} "
                f"({str(held.get('manifest_sha256'))[:16]}…); the camera keeps it")
        station = held.get("segments", {})
        for segment in recording.segments:
            if station.get(segment.file) != segment.sha256:
                raise NotConfirmedError(
                    f"the station does not confirm {recording.recording_id}/{segment.file} "
                    f"with SHA-256 {segment.sha256[:16]}…; the camera keeps it")

    @staticmethod
    def _delete_local(recording: LocalRecording) -> list[str]:
        """Remove the segments, then the manifest, then the directory (a cut in between leaves
        a manifest whose station copy is verified: the next run finishes the deletion). Returns
        the names of other files that were in the directory: it is kept for them."""
        directory = recording.directory
        listed = {segment.file for segment in recording.segments} | {manifest.MANIFEST_NAME}
        unlisted = sorted(entry.name for entry in directory.iterdir() if entry.name not in listed
                          and entry.name.endswith(MEDIA_SUFFIXES))
        if unlisted:  # media the manifest does not cover: deleting the manifest would orphan it
            raise LocalRecordingError(
                f"{directory} holds media its manifest does not list ({', '.join(unlisted)}): "
                "kept on the camera; run the recorder once to recover and enter it")
        for segment in recording.segments:
            try:
                os.unlink(directory / segment.file)
            except FileNotFoundError:
                pass
        os.unlink(directory / manifest.MANIFEST_NAME)
        # anything else in there is not part of the recording, so not ours to delete: it stays,
        # with its directory, for a person to look at
        others = sorted(entry.name for entry in directory.iterdir())
        if not others:
            try:
                directory.rmdir()
            except OSError:
                pass  # a file arrived since: the directory stays, as above
        fd = os.open(directory.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return others


def tls_context(cafile: Path) -> ssl.SSLContext:
    """A TLS context that trusts only the certificates in ``cafile`` (PEM)."""
    if not cafile.is_file():
        raise CaFileError(f"the CA file {cafile} (--cafile or station.cafile) does not exist: "
                          "give the PEM certificate of the station's CA, or its own")
    try:
        return ssl.create_default_context(cafile=str(cafile))
    except (ssl.SSLError, OSError) as exc:
        raise CaFileError(f"the CA file {cafile} (--cafile or station.cafile) holds no usable "
                          f"PEM certificate: {exc}") from None


HOSTNAME_MISMATCH_CODES = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind a transport error, if that is its cause."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        chain.append(current)
        current = current.__cause__ or current.__context__
    return None


def _not_trusted_message(station_url: str, error: ssl.SSLCertVerificationError) -> str:
    detail = f"{station_url}: CERTIFICATE_VERIFY_FAILED, {error.verify_message}"
    if error.verify_code in HOSTNAME_MISMATCH_CODES:
        return (f"the station's certificate is not issued for the host in the station URL "
                f"({detail}): use the name or address the certificate names. Nothing was "
                "deleted")
    return (f"the station's certificate is not trusted: give its CA with --cafile or "
            f"station.cafile ({detail}). Nothing was deleted")


def progress_line(progress: UploadProgress, width: int = 30) -> str:
    """One line of a text progress bar, e.g. ``[#####.....]  52%  120.0/230.5 MB  2/3 ID``."""
    total = max(progress.bytes_total, 1)
    fraction = min(progress.bytes_done / total, 1.0)
    filled = int(width * fraction)
    return (f"[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%}  "
            f"{progress.bytes_done / 1e6:.1f}/{progress.bytes_total / 1e6:.1f} MB  "
            f"recording {progress.recording_number}/{progress.recordings} "
            f"{progress.recording_id} {progress.file}")
