"""Export packages: one recording as a zip a court, a lawyer or a member of the public can check
without the station. The package holds the recording exactly as the camera wrote it, the enrolled
device key, a verification report made at export time, the recording's audit entries and a
``SHA256SUMS`` file, signed by the station (``SHA256SUMS.sig``, a raw Ed25519 signature that
``openssl pkeyutl -verify -rawin`` checks with ``station_key.pem``); making it is itself an
audit entry. A package for a public request carries only the audit entries about that
recording and that request (``request_ref``): other cases' holds, and other people's views and
exports, are not disclosed. An encrypted recording's package holds its segments as stored
(encrypted, the hashes the camera signed) and its content key (``content_key.json``), so that
whoever receives it can watch it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..integrity import keys, verify
from ..integrity.content_key import ContentKey
from ..integrity.sha256 import file_sha256
from ..private_files import open_private
from . import audit, content_keys, notes
from .audit import Action
from .catalogue import iso, shown
from .decrypt import decrypt_segment
from .errors import BadRequestError
from .evidence_store import EvidenceStore

PACKAGE_README = """\
Evidence export of recording {recording_id}
made {made} by {by} (purpose: {purpose})
recorded {recorded} by the camera's clock ({clock_source}); received by the station {received}
camera clock: {clock_verdict}

{recording_id}/           the recording exactly as the camera wrote it: fragmented MP4
                          segments (each plays on its own) and the signed manifest.jsonl
device_key.pem            the public key enrolled for device {device_id}
                          (sha256 of the raw key: {fingerprint})
verification.json         `bwv verify --json --key device_key.pem` at export time: {verdict}
audit.jsonl               {audit_scope}
{notes_line}{key_lines}SHA256SUMS                every file's SHA-256: check with `sha256sum -c SHA256SUMS`
SHA256SUMS.sig            the station's Ed25519 signature over SHA256SUMS (raw, 64 bytes)
station_key.pem           the public key of station {station_id}
                          (sha256 of the raw key: {station_fingerprint})

To check that the station made this package and nothing in it changed since (OpenSSL 3):

    openssl pkeyutl -verify -pubin -inkey station_key.pem -rawin \\
        -in SHA256SUMS -sigfile SHA256SUMS.sig
    sha256sum -c SHA256SUMS

Both keys in here prove nothing by themselves: anyone can make a key. Compare both fingerprints
out of band, with the force's published records or by asking it: the device key's with the
key enrolled for {device_id}, the station key's with the station's (the command bwv station
key prints it). A raw key's fingerprint by hand:
`openssl pkey -pubin -in station_key.pem -outform DER | tail -c 32 | sha256sum`.

To check the recording independently: `bwv verify --key device_key.pem {recording_id}`, or by
hand with sha256sum, openssl and jq as bwv-recorder's docs/formats.md describes ("Checking a
recording by hand").
{key_howto}"""
KEY_MEMBER = "content_key.json"
KEY_LINES = """\
content_key.json          the recording's content key (key id {key_id}): its segments are
                          encrypted (ISO Common Encryption, 'cenc'); the hashes above are of
                          the encrypted files, as the camera signed them
"""
KEY_HOWTO = """
The segments are encrypted: nothing plays them without the content key in content_key.json,
while checking them needs no key. To write a playable copy of a segment with FFmpeg:

    ffmpeg -decryption_key {key} -seekable 0 \\
        -i {recording_id}/{segment} -c copy clear-{segment}

Keep this package as safe as the footage itself: whoever has it can watch the recording.
"""
DECRYPTED_DIR = "decrypted"
DECRYPTED_REPORT = "decrypted.json"
DECRYPTED_LINES = """\
decrypted/                clear copies of the segments, decrypted by the station at export
                          time (the same boxes and times; the encryption boxes made 'free')
decrypted.json            each segment's SHA-256 as signed (encrypted) and of its clear copy
"""
SIGNATURE_MEMBER = "SHA256SUMS.sig"
STATION_KEY_MEMBER = "station_key.pem"
# the audit actions a public-request package may show: what the camera and the station did
# with the recording; holds and releases only of the request itself
_REQUEST_ACTIONS = {Action.INGEST_SEGMENT, Action.INGEST, Action.REFUSED}


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sha256: str
    verified: bool
    files: int


def _request_entry(entry: audit.AuditEntry, request_ref: str) -> bool:
    """Whether a public-request package for ``request_ref`` may show ``entry``."""
    if entry.action in (Action.HOLD, Action.RELEASE):
        return entry.detail.get("case_ref") == request_ref
    return entry.action in _REQUEST_ACTIONS


def _audit_lines(store: EvidenceStore, recording_id: str, request_ref: str | None) -> bytes:
    chosen = [entry for entry in audit.entries(store.engine, recording_id)
              if request_ref is None or _request_entry(entry, request_ref)]
    return "".join(entry.line + "\n" for entry in chosen).encode("utf-8")


def _notes_lines(written: list[notes.Note]) -> bytes:
    return "".join(json.dumps({"at": iso(note.written_us), "author": note.author,
                               "text": note.text}, ensure_ascii=False, sort_keys=True) + "\n"
                   for note in written).encode("utf-8")


def export_recording(store: EvidenceStore, recording_id: str, out: Path, by: str,
                     purpose: str, request_ref: str | None = None,
                     decrypted: bool = False) -> ExportResult:
    """Write the export package of ``recording_id`` to ``out`` (a .zip) and audit it. With
    ``request_ref`` (a public request) its audit entries are only those about this recording
    and that request; with ``decrypted``, an encrypted recording's package also holds clear
    copies of its segments (recorder.station.decrypt) and both hashes of each."""
    row = store.recording(recording_id)
    key = store.recording_key(recording_id)
    with tempfile.TemporaryDirectory(prefix="bwv-export-") as scratch:
        directory = Path(scratch) / recording_id
        store.materialize(recording_id, directory)
        report = verify.verify_recording(directory, trusted_key=key)
        report.path = report.manifest = recording_id
        members: dict[str, Path | bytes] = {
            f"{recording_id}/{path.name}": path for path in sorted(directory.iterdir())}
        members["device_key.pem"] = keys.public_key_pem(key).encode("ascii")
        members["verification.json"] = (verify.render_json(report) + "\n").encode("utf-8")
        members["audit.jsonl"] = _audit_lines(store, recording_id, request_ref)
        members[STATION_KEY_MEMBER] = keys.public_key_pem(store.identity.public_key).encode()
        content_key = content_keys.content_key(store, recording_id)
        if content_key is not None:  # the requester needs it to watch; a court, to play it
            members[KEY_MEMBER] = (json.dumps(
                {"recording_id": recording_id, "scheme": "cenc",
                 "key_id": content_key.key_id.hex(), "key": content_key.key.hex()},
                sort_keys=True) + "\n").encode("ascii")
            if decrypted:
                members.update(_clear_copies(directory, recording_id, content_key))
        elif decrypted:
            raise NotEncryptedError(f"recording {recording_id} is not encrypted: its package "
                                    "holds it in the clear already")
        written = notes.notes_of(store, recording_id) if request_ref is None else []
        if written:  # staff's notes go to a force's own packages, not to the public
            members["notes.jsonl"] = _notes_lines(written)
        scope = ("the station's audit entries about this recording (hash-chained)"
                 if request_ref is None else "the audit entries about this recording and "
                 f"request {request_ref} only (others left out: links skip them)")
        members["README.txt"] = PACKAGE_README.format(
            recording_id=recording_id, made=iso(store.clock()), by=by, purpose=purpose,
            device_id=row.device_id, fingerprint=keys.fingerprint(key), audit_scope=scope,
            station_id=store.identity.station_id,
            notes_line=("notes.jsonl               the staff's notes on the recording (text, "
                        "author, time), oldest first\n" if written else ""),
            station_fingerprint=store.identity.fingerprint,
            key_lines="" if content_key is None else KEY_LINES.format(
                key_id=content_key.key_id.hex()) + (DECRYPTED_LINES if decrypted else ""),
            key_howto="" if content_key is None else KEY_HOWTO.format(
                key=content_key.key.hex(), recording_id=recording_id,
                segment=min(path.name for path in directory.glob("*.mp4"))),
            recorded=shown(row.recorded_us) or "unknown", received=shown(row.received_us),
            clock_source=row.clock_source or "source not stated",
            clock_verdict=_clock_verdict(row.clock_flag),
            verdict="OK" if report.ok else f"FAILED: {report.first_problem}").encode("utf-8")
        sums = []
        for name, content in members.items():
            sums.append(f"{sha256_of(content)}  {name}\n")
        checksums = "".join(sums).encode("ascii")
        members["SHA256SUMS"] = checksums
        members[SIGNATURE_MEMBER] = store.identity.sign(checksums)
        out.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(open_private(out, os.O_WRONLY | os.O_TRUNC), "wb") as file, \
                zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as package:
            for name, content in members.items():
                if isinstance(content, Path):
                    package.write(content, name)
                else:
                    package.writestr(name, content)
    digest = sha256_of(out)
    detail = {"purpose": purpose, "package_sha256": digest, "verified": report.ok}
    if content_key is not None:  # the package holds the key: the export is a key release too
        detail["content_key_id"] = content_key.key_id.hex()
        detail["decrypted"] = decrypted
    store.record_access(by, Action.EXPORT, recording_id, detail)
    return ExportResult(out, digest, report.ok, len(members))


class NotEncryptedError(BadRequestError):
    """Decrypted copies asked for a recording that is in the clear."""


def _clear_copies(directory: Path, recording_id: str,
                  key: ContentKey) -> dict[str, Path | bytes]:
    """The package members of the clear copies of each segment, and the report of both hashes."""
    members: dict[str, Path | bytes] = {}
    report = []
    for segment in sorted(directory.glob("*.mp4")):
        stored = segment.read_bytes()
        clear = decrypt_segment(stored, key)
        members[f"{DECRYPTED_DIR}/{recording_id}/{segment.name}"] = clear
        report.append({"file": segment.name, "sha256": sha256_of(stored),
                       "decrypted_sha256": sha256_of(clear)})
    members[DECRYPTED_REPORT] = (json.dumps({"recording_id": recording_id, "segments": report},
                                            indent=1, sort_keys=True) + "\n").encode("ascii")
    return members


def _clock_verdict(flag: str | None) -> str:
    """What the README says of the camera's clock (camera_clock.ClockFlag)."""
    if flag is None:
        return "believed (synchronised, and plausible against the station's clock)"
    return (f"NOT believed ({flag}): the recorded times are the camera's claim only; the "
            "station's receive time is the reliable bound")


def sha256_of(content: Path | bytes) -> str:
    """The SHA-256 (hex) of bytes, or of a file (recorder.integrity.sha256's file routine)."""
    if isinstance(content, bytes):
        return hashlib.sha256(content).hexdigest()
    return file_sha256(content)[0]
