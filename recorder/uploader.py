"""The camera's Uploader: sends sealed recordings to the evidence station, oldest first, and
deletes a local copy only after the station confirms it holds every segment hash and has verified
the manifest. Resumable: each run first asks the station what it already holds.

A recording still being written (its manifest has no final ``sealed`` line) is never touched.
Requests are signed with the device key for the pinned station's id
(recorder.integrity.request_signing). The camera believes only answers that carry a receipt
signed by the station key it pinned (recorder.integrity.receipts) and that answer the request
just made; it logs that receipt on the card before it deletes anything, so every deletion on the
camera is traced to a signed receipt. Without a pin it may upload, but it deletes nothing.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
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
from .integrity.receipts import Receipt, ReceiptError, verify_receipt
from .integrity.request_signing import (EMPTY_SHA256, HEADER_NONCE, is_safe_name,
                                        sign_request)
from .integrity.station_pin import StationPin

API = "/api/v1"
CHUNK_BYTES = 1 << 20
# an answer holds a receipt (at most 4 MiB) and the holdings beside it: anything longer is not
# a station's answer, and is not read further (a hostile station must not fill the camera's RAM)
MAX_ANSWER_BYTES = 16 << 20
RECEIPTS_LOG = "receipts.jsonl"
HOW_TO_PIN = ("run `bwv station key --data DIR` on the station and give the line it prints as "
              "the station.public_key setting or `bwv upload --station-key`")


class UploadError(RecorderError):
    """Base class of the uploader's errors."""


class StationUnreachableError(UploadError, ConnectionError):
    """The station did not answer, or the connection broke: nothing was deleted; dock again."""


class StationNotTrustedError(StationUnreachableError):
    """An https station whose certificate this camera does not trust: every upload would fail
    the same way, so the run stops at once (the fix is --cafile or station.cafile)."""


class StationImpostorError(StationNotTrustedError):
    """An answer that does not carry a receipt signed by the pinned station for this request:
    whoever answered is not the station this camera pinned (or replays it), so the run stops
    before any more footage is sent, and nothing is deleted."""


class CaFileError(UploadError):
    """The CA file given for an https station does not exist or holds no certificate."""


class InsecureStationError(UploadError):
    """A plain http:// station that is not on this machine: refused before connecting."""


class NotPinnedError(UploadError):
    """No station key is pinned: the recording was uploaded but is kept on the camera."""


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

    ``pin`` is the station this camera trusts: its id goes into every signed request, and a
    local copy is deleted only on a receipt signed by its key (logged first in
    ``receipts_log``, by default ``receipts.jsonl`` beside the recordings directory). Without a
    pin the station id is asked of the station, recordings are uploaded, and none is deleted.
    Plain ``http://`` is refused (InsecureStationError) unless the host is this machine
    (127.0.0.0/8, ::1, localhost) or ``insecure_http_for_tests`` is set.
    """

    def __init__(self, station_url: str, key: DeviceKey, device_id: str, recordings_dir: Path,
                 *, pin: StationPin | None,
                 progress: Callable[[UploadProgress], None] | None = None,
                 attempts: int = 3, retry_delay_s: float = 1.0, timeout_s: float = 60.0,
                 chunk_bytes: int = CHUNK_BYTES, cafile: Path | None = None,
                 transport: httpx.BaseTransport | None = None, receipts_log: Path | None = None,
                 insecure_http_for_tests: bool = False) -> None:
        check_station_url(station_url, insecure_http_for_tests)
        self.station_url = station_url.rstrip("/")
        self.pin = pin
        self.receipts_log = receipts_log or recordings_dir.parent / RECEIPTS_LOG
        self._station_id = pin.station_id if pin is not None else None
        self.key = key
        self.device_id = device_id
        self.recordings_dir = recordings_dir
        self.progress = progress
        self.attempts = max(1, attempts)
        self.retry_delay_s = retry_delay_s
        self.chunk_bytes = chunk_bytes
        # an https station is checked against the system's CAs, or only against ``cafile``
        tls = tls_context(cafile) if cafile else True
        # an answer must be whole within this, however slowly a hostile station drips it
        self._answer_deadline_s = timeout_s
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
        return self._signed(method, path, body_sha256, content, length)[0]

    def _signed(self, method: str, path: str, body_sha256: str, content: Any = None,
                length: int | None = None) -> tuple[dict[str, Any], str]:
        """The station's JSON answer to one signed request, and the request's nonce."""
        headers = sign_request(self.key, self.device_id, method, path, body_sha256,
                               station_id=self.station_id())
        if length is not None:
            headers["Content-Length"] = str(length)
        return self._send(method, path, headers, content), headers[HEADER_NONCE]

    def _send(self, method: str, path: str, headers: dict[str, str],
              content: Any = None) -> dict[str, Any]:
        """One request's JSON answer; StationRefusedError for an error answer."""
        try:
            # identity: the answer is read as sent, so a compressed one cannot expand past the cap
            headers = {**headers, "Accept-Encoding": "identity"}
            with self._client.stream(method, path, content=content, headers=headers) as response:
                raw = _read_bounded(response, MAX_ANSWER_BYTES, self._answer_deadline_s)
        except httpx.TransportError as exc:
            untrusted = _certificate_error(exc)
            if untrusted is not None:
                raise StationNotTrustedError(_not_trusted_message(self.station_url,
                                                                  untrusted)) from exc
            raise StationUnreachableError(
                f"{method} {self.station_url}{path} failed: {exc.__class__.__name__}: {exc}. "
                "Nothing was deleted; the upload resumes on the next dock") from exc
        if raw is None:
            raise StationRefusedError(response.status_code, "answer_too_large",
                                      f"the answer to {method} {path} is longer than "
                                      f"{MAX_ANSWER_BYTES >> 20} MiB or slower than "
                                      f"{self._answer_deadline_s:.0f} s: not a station's answer")
        try:
            body: dict[str, Any] = json.loads(raw)
        except (ValueError, RecursionError):
            body = {"error": "not_json", "message": raw[:200].decode("utf-8", "replace")}
        if response.status_code >= 400:
            raise StationRefusedError(response.status_code, str(body.get("error"))[:40],
                                      str(body.get("message"))[:300])
        if not isinstance(body, dict):
            raise StationRefusedError(response.status_code, "not_json", "not a JSON object")
        return body

    def station_id(self) -> str:
        """The pinned station's id; without a pin, what the station says it is (asked once,
        believed for addressing requests only, never for deleting)."""
        if self._station_id is None:
            station_id = self._send("GET", f"{API}/health", {}).get("station_id")
            if not isinstance(station_id, str) or not is_safe_name(station_id):
                raise StationRefusedError(200, "no_station_id", "the station does not say its "
                                          f"id: it is not a bwv station; {HOW_TO_PIN}")
            self._station_id = station_id
        return self._station_id

    def holdings(self, recording_id: str) -> dict[str, Any]:
        """What the station holds of a recording (GET /api/v1/recordings/ID)."""
        return self._request("GET", f"{API}/recordings/{recording_id}", EMPTY_SHA256)

    def _receipted(self, method: str, path: str, body_sha256: str,
                   content: Any = None) -> tuple[dict[str, Any], Receipt | None]:
        """An answer that may lead to a deletion, and its receipt checked against the pin (None
        without a pin). An answer without a good receipt raises StationImpostorError."""
        body, nonce = self._signed(method, path, body_sha256, content)
        if self.pin is None:
            return body, None
        try:
            return body, verify_receipt(self.pin, body.get("receipt"), nonce)
        except ReceiptError as exc:
            raise StationImpostorError(
                f"{self.station_url} is not the pinned station {self.pin.station_id}: {exc}; "
                "nothing more is sent and nothing is deleted") from None

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
        answer, first = self._receipted("GET", f"{API}/recordings/{rid}", EMPTY_SHA256)
        # what to resume from: the signed word when pinned; otherwise only well-formed JSON
        held = self._signed_holdings(first, recording) if first is not None else answer
        held_segments = held.get("segments")
        if not isinstance(held_segments, dict):
            held_segments = {}
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
            self._receipted("PUT", f"{API}/recordings/{rid}/manifest",
                            recording.manifest_sha256, content=recording.manifest_bytes)
        report(manifest.MANIFEST_NAME, len(recording.manifest_bytes))
        confirmed, receipt = self._receipted("GET", f"{API}/recordings/{rid}", EMPTY_SHA256)
        if receipt is None:
            self._confirm(recording, confirmed)  # the station's unsigned word: report it only
            outcome.verified = True
            raise NotPinnedError(f"uploaded and verified by the station, but kept here: no "
                                 f"station key is pinned, so nothing is deleted; {HOW_TO_PIN}")
        self._confirm(recording, self._signed_holdings(receipt, recording))
        outcome.verified = True
        self._log_receipt(recording, confirmed["receipt"])
        outcome.kept_files = self._delete_local(recording)
        outcome.deleted = True

    def _signed_holdings(self, receipt: Receipt, recording: LocalRecording) -> dict[str, Any]:
        """A verified receipt's holdings, as _confirm reads them; NotConfirmedError when it is
        about another device or recording."""
        if receipt.device_id != self.device_id or receipt.recording_id != recording.recording_id:
            raise NotConfirmedError(
                f"the station's receipt is about {receipt.device_id}/{receipt.recording_id}, not "
                f"{self.device_id}/{recording.recording_id}; the camera keeps it")
        return {"verified": receipt.verified, "verify_summary": receipt.verify_summary,
                "manifest_sha256": receipt.manifest_sha256, "segments": dict(receipt.segments)}

    def _log_receipt(self, recording: LocalRecording, receipt_line: str) -> None:
        """Append the receipt a deletion rests on to the receipts log (0600, fsynced, its
        directory fsynced when the log is new) before anything is deleted."""
        line = json.dumps({"recording_id": recording.recording_id, "receipt": receipt_line},
                          sort_keys=True, separators=(",", ":")) + "\n"
        self.receipts_log.parent.mkdir(parents=True, exist_ok=True)
        new = not self.receipts_log.exists()
        fd = os.open(self.receipts_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            data = memoryview(line.encode("utf-8"))
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            dir_fd = os.open(self.receipts_log.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    @staticmethod
    def _confirm(recording: LocalRecording, held: dict[str, Any]) -> None:
        if not held.get("verified"):
            raise NotConfirmedError(
                f"the station did not verify recording {recording.recording_id}: "
                f"{str(held.get('verify_summary'))[:300]}; the camera keeps it")
        if held.get("manifest_sha256") != recording.manifest_sha256:
            raise NotConfirmedError(
                f"the station holds another manifest for {recording.recording_id} "
                f"({str(held.get('manifest_sha256'))[:16]}…); the camera keeps it")
        station = held.get("segments", {})
        if not isinstance(station, dict):
            station = {}
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


LOOPBACK_NAMES = ("localhost", "localhost.")


def is_loopback_host(host: str) -> bool:
    """True for a host that can only be this machine: 127.0.0.0/8, ::1, localhost."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_station_url(station_url: str, insecure_http_for_tests: bool = False) -> None:
    """Refuse (InsecureStationError) a station URL that is neither https nor plain http to this
    machine: on a network, plain http lets anyone on the path read the footage and the camera's
    requests. Nothing is connected to."""
    try:
        url = httpx.URL(station_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InsecureStationError(f"the station URL {station_url[:100]!r} is not a URL: "
                                   f"{exc}") from None
    if url.scheme == "https" and url.host:
        return
    if url.scheme == "http" and url.host and (is_loopback_host(url.host)
                                             or insecure_http_for_tests):
        return
    if url.scheme == "http" and url.host:
        raise InsecureStationError(
            f"refused plain http to {url.host}: footage goes to a station over https "
            f"(https://{url.host}...); plain http is only for this machine (127.0.0.1, ::1, "
            "localhost). Nothing was sent")
    raise InsecureStationError(f"the station URL {station_url[:100]!r} is not an https:// "
                               "(or loopback http://) URL")


def _read_bounded(response: httpx.Response, limit: int, deadline_s: float) -> bytes | None:
    """The body of ``response``, or None once it passes ``limit`` bytes or ``deadline_s``
    seconds (reading stops there: the rest is never held)."""
    deadline = time.monotonic() + deadline_s
    parts: list[bytes] = []
    size = 0
    for chunk in response.iter_raw():
        size += len(chunk)
        if size > limit or time.monotonic() > deadline:
            return None
        parts.append(chunk)
    return b"".join(parts)


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
