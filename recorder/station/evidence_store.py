"""EvidenceStore: the station's ingest. Enrolls devices, authenticates signed device requests,
stores segments by SHA-256 (idempotent, hash checked on arrival), verifies a recording with the
same checks as ``bwv verify`` when its manifest arrives, and writes an audit entry for each.
"""

from __future__ import annotations

import datetime
import json
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from ..integrity import keys, manifest, verify
from ..integrity.manifest import EventKind
from . import audit, camera_clock, catalogue, device_records as lifecycle
from .audit import Action
from .blobs import BlobStore, BlobWriter
from .catalogue import devices, holds, markers, nonces, officers, recordings, segments
from .errors import (BadRequestError, ConflictError, EnrollmentError, HashMismatchError,
                     RecordingGoneError, RequestAuthError, UnknownRecordingError)
from .identity import StationIdentity
from ..integrity.request_signing import MAX_SKEW_S, SignedRequest, is_safe_name

RETENTION_DAYS = 31
VERIFY_ATTEMPTS = 3  # verifications of one manifest while segments keep arriving beside it
Clock = Callable[[], int]  # microseconds since the Unix epoch


def system_clock() -> int:
    return catalogue.to_us(datetime.datetime.now(datetime.timezone.utc))


class Status:
    RECEIVING = "receiving"
    VERIFIED = "verified"
    FAILED = "failed"
    DELETED = "deleted"


@dataclass
class Holdings:
    """What the station holds of one recording: the answer a camera resumes from."""

    recording_id: str
    status: str  # "unknown", or a Status value
    segments: dict[str, str] = field(default_factory=dict)  # file -> sha256
    manifest_sha256: str | None = None
    verified: bool = False
    verify_summary: str | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"recording_id": self.recording_id, "status": self.status,
                "segments": dict(sorted(self.segments.items())),
                "manifest_sha256": self.manifest_sha256, "verified": self.verified,
                "verify_summary": self.verify_summary, "problems": self.problems}


class EvidenceStore:
    """The catalogue, the blobs and the audit log of one station, behind one set of operations.

    Thread-safe: writes are serialised by a lock (SQLite allows one writer). ``write_lock`` is
    this process's only: several station processes on one PostgreSQL catalogue are kept apart
    by the database's locks alone (docs/station.md, "Several station processes"): the
    recording's row (``SELECT ... FOR UPDATE``) around every ingest, hold and deletion, a new
    row entered once (``_insert_recording``), an advisory lock per blob, the audit head row for
    the one audit chain, and the sweep's advisory lock.
    """

    def __init__(self, engine: Engine, blobs: BlobStore, identity: StationIdentity,
                 clock: Clock = system_clock, retention_days: int = RETENTION_DAYS) -> None:
        self.engine = engine
        self.blobs = blobs
        self.identity = identity  # the station's key and id: receipts and checkpoints
        self.clock = clock
        if retention_days < RETENTION_DAYS:
            raise ValueError(f"retention of {retention_days} days: at least {RETENTION_DAYS}, "
                             "since cameras delete their copy on the station's receipt")
        self.retention_us = retention_days * 86_400 * 1_000_000
        self.write_lock = threading.Lock()
        audit.sign_checkpoints(engine, identity)  # appends checkpoint the log with this key

    # -- devices

    def enroll(self, device_id: str, public_key: Ed25519PublicKey, by: str) -> str:
        """Enroll a camera's public key; returns its fingerprint. Re-enrolling the same key is
        a no-op; another key for an enrolled id is refused."""
        if not is_safe_name(device_id):
            raise EnrollmentError(f"device id {device_id!r} is not allowed: use letters, digits, "
                                  "'.', '_' and '-' (at most 128)")
        spki = keys.public_key_spki_b64(public_key)
        fingerprint = keys.fingerprint(public_key)
        now = self.clock()
        with self.write_lock, self.engine.begin() as conn:
            row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
            if row is not None:
                if row.public_key == spki:
                    return fingerprint
                raise EnrollmentError(
                    f"device {device_id} is already enrolled with another key (fingerprint "
                    f"{row.fingerprint[:16]}…); a camera with a new key needs a new device id")
            conn.execute(insert(devices).values(device_id=device_id, public_key=spki,
                                                fingerprint=fingerprint, enrolled_us=now,
                                                enrolled_by=by))
            lifecycle.record_enrolled_key(conn, device_id, spki, fingerprint, now, by)
            audit.append(conn, now, by, Action.ENROLL, None,
                         {"device_id": device_id, "fingerprint": fingerprint})
        return fingerprint

    def device_key(self, device_id: str) -> Ed25519PublicKey | None:
        with self.engine.connect() as conn:
            spki = conn.execute(select(devices.c.public_key)
                                .where(devices.c.device_id == device_id)).scalar()
        return None if spki is None else keys.public_key_from_spki_b64(spki)

    def revoked(self, device_id: str) -> bool:
        """Whether the device was revoked (lost, stolen, retired): its requests are refused."""
        with self.engine.connect() as conn:
            return lifecycle.revocation(conn, device_id) is not None

    def recording_key(self, recording_id: str) -> Ed25519PublicKey:
        """The enrolled key a recording was verified with (an old one after a rotation)."""
        row = self.recording(recording_id)
        key = None
        if row.key_fingerprint is not None:
            with self.engine.connect() as conn:
                key = lifecycle.key_by_fingerprint(conn, row.device_id, row.key_fingerprint)
        key = key or self.device_key(row.device_id)
        if key is None:
            raise UnknownRecordingError(f"the device of recording {recording_id} has no key")
        return key

    def authenticate(self, request: SignedRequest, method: str, path: str,
                     query: str = "") -> str:
        """Check a signed request's station, device, time, signature and nonce; returns the
        device id. The signature is checked against this station's own id, so a request made
        for another station never verifies here."""
        if request.station_id != self.identity.station_id:
            raise RequestAuthError("wrong_station", f"the request is signed for station "
                                   f"{request.station_id}, not this one "
                                   f"({self.identity.station_id})")
        key = self.device_key(request.device_id)
        if key is None:
            raise RequestAuthError("not_enrolled", f"device {request.device_id} is not enrolled "
                                   "at this station: run `bwv station enroll --data DIR "
                                   f"--device-id {request.device_id} --public-key KEY` with the "
                                   "key `bwv doctor` prints on the camera")
        now = self.clock()
        skew_s = abs(now // 1_000_000 - request.timestamp)
        if skew_s > MAX_SKEW_S:
            raise RequestAuthError("stale", f"the request's timestamp is {skew_s} s from the "
                                   f"station's clock (at most {MAX_SKEW_S} s allowed): set the "
                                   "camera's or the station's clock")
        if not request.verifies(key, method, path, station_id=self.identity.station_id,
                                query=query):
            raise RequestAuthError("bad_signature", "the request's signature does not verify "
                                   f"against the key enrolled for {request.device_id}")
        if self.revoked(request.device_id):
            raise RequestAuthError("revoked", f"device {request.device_id} was revoked at this "
                                   "station: its requests are refused")
        with self.write_lock, self.engine.begin() as conn:
            conn.execute(delete(nonces).where(
                nonces.c.timestamp_us < now - 2 * MAX_SKEW_S * 1_000_000))
            try:
                with conn.begin_nested():
                    conn.execute(insert(nonces).values(device_id=request.device_id,
                                                       nonce=request.nonce,
                                                       timestamp_us=request.timestamp * 1_000_000))
            except IntegrityError:
                raise RequestAuthError("replayed", "this request's nonce was used before: a "
                                       "replayed request is refused") from None
        return request.device_id

    # -- holdings

    def holdings(self, recording_id: str, device_id: str | None = None) -> Holdings:
        with self.engine.connect() as conn:
            row = conn.execute(select(recordings)
                               .where(recordings.c.recording_id == recording_id)).first()
            if row is None:
                return Holdings(recording_id, "unknown")
            if device_id is not None and row.device_id != device_id:
                raise ConflictError(f"recording {recording_id} belongs to device {row.device_id}")
            held = {r.file: r.sha256 for r in conn.execute(
                select(segments.c.file, segments.c.sha256)
                .where(segments.c.recording_id == recording_id)
                .where(segments.c.blob_deleted.is_(False)))}
        problems = []
        if row.verify_report:
            problems = json.loads(row.verify_report).get("problems", [])
        return Holdings(recording_id, row.status, held, row.manifest_sha256,
                        row.status == Status.VERIFIED, row.verify_summary, problems)

    # -- ingest

    def _check_names(self, recording_id: str, file: str | None = None) -> None:
        if not is_safe_name(recording_id):
            raise BadRequestError(f"recording id {recording_id!r} is not allowed")
        if file is not None and (not is_safe_name(file) or file == manifest.MANIFEST_NAME):
            raise BadRequestError(f"segment file name {file!r} is not allowed")

    def _recording_row(self, conn: Connection, recording_id: str, device_id: str) -> Any:
        row = conn.execute(select(recordings).where(recordings.c.recording_id == recording_id)
                           .with_for_update()).first()
        if row is None:
            return None
        if row.device_id != device_id:
            raise ConflictError(f"recording {recording_id} was uploaded by device "
                                f"{row.device_id}, not {device_id}")
        if row.status == Status.DELETED:
            raise RecordingGoneError(f"recording {recording_id} was deleted by the retention "
                                     "sweep; the station keeps only its tombstone")
        return row

    def precheck_segment(self, device_id: str, recording_id: str, file: str,
                         sha256: str) -> bool:
        """Before receiving bytes: True when that exact segment is already held. Raises
        ConflictError when another file is held under the name, RecordingGoneError if deleted."""
        self._check_names(recording_id, file)
        with self.engine.connect() as conn:
            row = self._recording_row(conn, recording_id, device_id)
            if row is None:
                return False
            held = conn.execute(select(segments.c.sha256)
                                .where(segments.c.recording_id == recording_id)
                                .where(segments.c.file == file)).scalar()
        if held is not None and held != sha256:
            raise ConflictError(f"{recording_id}/{file} is already held with SHA-256 "
                                f"{held[:16]}…, not {sha256[:16]}…: a sealed segment never "
                                "changes")
        refusal = None if held is not None else self._segment_refusal(row, file, sha256)
        if refusal is not None:
            raise refusal
        return held is not None

    def commit_segment(self, device_id: str, recording_id: str, file: str,
                       writer: BlobWriter, sha256: str) -> bool:
        """Commit received bytes (hash checked) and catalogue them. Returns False for a
        duplicate. On a wrong hash nothing is stored and the refusal is audited."""
        try:
            size = writer.commit()
        except HashMismatchError:
            now = self.clock()
            with self.write_lock, self.engine.begin() as conn:
                audit.append(conn, now, f"device:{device_id}", Action.REFUSED, recording_id,
                             {"file": file, "declared_sha256": sha256,
                              "reason": "hash_mismatch"})
            raise
        now = self.clock()
        with self.write_lock, self.engine.begin() as conn:
            row = self._recording_row(conn, recording_id, device_id)
            if row is None and not _insert_recording(conn, dict(
                    recording_id=recording_id, device_id=device_id, status=Status.RECEIVING,
                    received_us=now, retain_until_us=now + self.retention_us,
                    segment_count=0, total_bytes=0)):
                # another station process entered it first (the camera's retry of this
                # segment, on another process): take its row, locked, as if it had been there
                row = self._recording_row(conn, recording_id, device_id)
            held = conn.execute(select(segments.c.sha256)
                                .where(segments.c.recording_id == recording_id)
                                .where(segments.c.file == file)).scalar()
            if held == sha256:
                return False
            if held is not None:
                raise ConflictError(f"{recording_id}/{file} is already held with another "
                                    "SHA-256")
            refusal = None if row is None else self._segment_refusal(row, file, sha256)
            if refusal is not None:
                self._drop_unreferenced_blob(conn, sha256)
                raise refusal
            if row is not None and row.status == Status.FAILED:
                # the failed verdict was over fewer segments: stale until the manifest comes again
                conn.execute(update(recordings).where(recordings.c.recording_id == recording_id)
                             .values(status=Status.RECEIVING))
            _lock_blob(conn, sha256)
            if not self.blobs.exists(sha256):
                # the same bytes, already stored, were freed by the sweep since they arrived:
                # refuse rather than catalogue a segment without its blob (the camera resends)
                raise ConflictError(f"{recording_id}/{file} was removed while it was being "
                                    "stored: send it again")
            conn.execute(insert(segments).values(recording_id=recording_id, file=file,
                                                 sha256=sha256, bytes=size, received_us=now,
                                                 blob_deleted=False))
            if _held(conn, recording_id):
                # a segment arriving after its recording was held gets the storage's lock as
                # the hold gave the others (retention.hold_locked), in the transaction of its
                # row: the row lock orders this against the hold and its release
                self.blobs.set_legal_hold(sha256, True)
            audit.append(conn, now, f"device:{device_id}", Action.INGEST_SEGMENT, recording_id,
                         {"file": file, "sha256": sha256, "bytes": size})
        return True

    def _segment_refusal(self, row: Any, file: str, sha256: str) -> ConflictError | None:
        """Why a new segment may not join the recording of ``row`` (read under its row lock, in
        the segment's commit transaction), or None. A verified recording is complete: a segment
        racing its manifest must never land beside the verdict. A failed one takes only a
        segment its stored manifest lists with that SHA-256 (one that was missing)."""
        if row.status == Status.VERIFIED:
            return ConflictError(f"recording {row.recording_id} is verified and complete; it "
                                 f"has no segment {file}: refused, nothing stored")
        if row.status == Status.FAILED and row.manifest_sha256 is not None:
            if self._listed_sha256(row.manifest_sha256, file) != sha256:
                return ConflictError(f"recording {row.recording_id} failed verification and "
                                     f"its manifest does not list {file} with SHA-256 "
                                     f"{sha256[:16]}…: refused, nothing stored")
        return None

    def _listed_sha256(self, manifest_sha256: str, file: str) -> str | None:
        """The SHA-256 the stored manifest lists for ``file`` (None: not listed)."""
        with self.blobs.open(manifest_sha256) as stored:
            read = manifest.read_lines(stored.read())
        for line in read.of_type(manifest.LineType.SEGMENT):
            if line.value("file") == file and isinstance(line.value("sha256"), str):
                return str(line.value("sha256"))
        return None

    def _drop_unreferenced_blob(self, conn: Connection, sha256: str) -> None:
        """Inside ``conn``'s transaction: remove a stored blob that no live recording's manifest
        and no held segment refers to (a refused segment, a manifest whose ingest failed or that
        a newer one replaced, what the sweep frees). What a device sends is either catalogued,
        and counted against its quota, or not kept."""
        _lock_blob(conn, sha256)
        used = conn.execute(select(recordings.c.recording_id)
                            .where(recordings.c.manifest_sha256 == sha256)
                            .where(recordings.c.status != Status.DELETED).limit(1)).first() or \
            conn.execute(select(segments.c.file).where(segments.c.sha256 == sha256)
                         .where(segments.c.blob_deleted.is_(False)).limit(1)).first()
        if used is None:
            self.blobs.delete(sha256)

    def drop_unreferenced_blob(self, sha256: str) -> None:
        """``_drop_unreferenced_blob`` in a transaction of its own."""
        with self.write_lock, self.engine.begin() as conn:
            self._drop_unreferenced_blob(conn, sha256)

    def _held_segments(self, conn: Connection, recording_id: str) -> dict[str, str]:
        return {r.file: r.sha256 for r in conn.execute(
            select(segments.c.file, segments.c.sha256)
            .where(segments.c.recording_id == recording_id))}

    def device_bytes(self, device_id: str) -> int:
        """Bytes the station holds for a device's recordings that are not deleted (segments
        and manifests): what its storage quota counts."""
        live = (select(recordings.c.recording_id).where(recordings.c.device_id == device_id)
                .where(recordings.c.status != Status.DELETED))
        with self.engine.connect() as conn:
            seg = conn.execute(select(func.coalesce(func.sum(segments.c.bytes), 0))
                               .where(segments.c.recording_id.in_(live))
                               .where(segments.c.blob_deleted.is_(False))).scalar()
            man = conn.execute(select(func.coalesce(func.sum(recordings.c.manifest_bytes), 0))
                               .where(recordings.c.recording_id.in_(live))).scalar()
        return int(seg or 0) + int(man or 0)

    def ingest_manifest(self, device_id: str, recording_id: str, data: bytes) -> Holdings:
        """Store a recording's manifest and verify the recording as ``bwv verify --key`` with
        the enrolled key would; record the result. Idempotent for the same manifest bytes."""
        self._check_names(recording_id)
        key = self.device_key(device_id)
        assert key is not None  # authenticate() passed
        manifest_sha256 = manifest.line_hash(data)
        read = _read_arrival(recording_id, device_id, data)
        with self.engine.connect() as conn:
            row = self._recording_row(conn, recording_id, device_id)
        if row is not None and row.status == Status.VERIFIED:
            if row.manifest_sha256 == manifest_sha256:
                return self.holdings(recording_id)
            raise ConflictError(f"recording {recording_id} is already verified with another "
                                "manifest")
        replaced = row.manifest_sha256 if row is not None else None
        self._store_blob(manifest_sha256, data)
        try:
            self._verify_and_record(device_id, recording_id, key, data, read)
        except BaseException:
            self.drop_unreferenced_blob(manifest_sha256)  # nothing is left without a row
            raise
        if replaced is not None and replaced != manifest_sha256:
            self.drop_unreferenced_blob(replaced)  # a failed recording's earlier manifest
        return self.holdings(recording_id)

    def _verify_and_record(self, device_id: str, recording_id: str, key: Ed25519PublicKey,
                           data: bytes, read: manifest.ManifestLines) -> None:
        """Verify the recording with ``data`` as its manifest and record the verdict."""
        for attempt in range(1, VERIFY_ATTEMPTS + 1):
            # verify outside the lock, then record the verdict only if the segments it covered
            # are still exactly those held (a segment PUT may have committed in between); the
            # last attempt verifies holding the row lock, so it always ends
            if attempt < VERIFY_ATTEMPTS:
                report, verified_held = self._verify(recording_id, key, data)
                with self.write_lock, self.engine.begin() as conn:
                    done = self._record_verdict(conn, device_id, recording_id, data, read,
                                                report, verified_held, keys.fingerprint(key))
            else:
                with self.write_lock, self.engine.begin() as conn:
                    self._recording_row(conn, recording_id, device_id)
                    report, verified_held = self._verify(recording_id, key, data)
                    done = self._record_verdict(conn, device_id, recording_id, data, read,
                                                report, verified_held, keys.fingerprint(key))
            if done:
                break

    def _record_verdict(self, conn: Connection, device_id: str, recording_id: str, data: bytes,
                        read: manifest.ManifestLines, report: verify.VerifyReport,
                        verified_held: dict[str, str], key_fingerprint: str) -> bool:
        """Catalogue a manifest's verification in ``conn`` (the row locked); False when the held
        segments changed since it ran (verify again). A verdict the same manifest reached
        concurrently stands; another manifest for a verified recording is a conflict."""
        manifest_sha256 = manifest.line_hash(data)
        now = self.clock()
        values = _catalogue_values(read, report)
        row = self._recording_row(conn, recording_id, device_id)
        if row is not None and row.status == Status.VERIFIED:
            if row.manifest_sha256 == manifest_sha256:
                return True
            raise ConflictError(f"recording {recording_id} is already verified with another "
                                "manifest")
        if self._held_segments(conn, recording_id) != verified_held:
            return False
        try:
            with conn.begin_nested():
                self._catalogue_verdict(conn, row, device_id, recording_id, data, read, report,
                                        values, key_fingerprint, now)
        except _RowRaced:
            return False  # another process entered the row meanwhile: verify again, locked
        return True

    def _catalogue_verdict(self, conn: Connection, row: Any, device_id: str, recording_id: str,
                           data: bytes, read: manifest.ManifestLines,
                           report: verify.VerifyReport, values: dict[str, Any],
                           key_fingerprint: str, now: int) -> None:
        manifest_sha256 = manifest.line_hash(data)
        values.update(lifecycle.ingest_stamp(conn, device_id, values["officer_id"],
                                             values["recorded_us"], now, key_fingerprint))
        self._catalogue(conn, row, recording_id, device_id, now, dict(
            values, status=Status.VERIFIED if report.ok else Status.FAILED,
            manifest_sha256=manifest_sha256, manifest_bytes=len(data), verified_us=now))
        if _held(conn, recording_id):  # as a segment's commit: the manifest gets the lock
            self.blobs.set_legal_hold(manifest_sha256, True)
            replaced = None if row is None else row.manifest_sha256
            if replaced is not None and replaced != manifest_sha256:
                # a failed recording's earlier manifest: no longer the recording's (the
                # release would not find it) and removed after this commit (ingest_manifest)
                self.blobs.set_legal_hold(replaced, False)
        if report.ok:
            _enter_markers(conn, recording_id, read)
        audit.append(conn, now, f"device:{device_id}", Action.INGEST, recording_id,
                     {"manifest_sha256": manifest_sha256, "verified": report.ok,
                      "segments": values["segment_count"],
                      "summary": values["verify_summary"][:500]})

    def _store_blob(self, sha256: str, data: bytes) -> None:
        """Keep ``data`` under its SHA-256 (once: blobs never change)."""
        if not self.blobs.exists(sha256):
            writer = self.blobs.begin(sha256)
            writer.write(data)
            writer.commit()

    def _verify(self, recording_id: str, key: Ed25519PublicKey,
                data: bytes) -> tuple[verify.VerifyReport, dict[str, str]]:
        """Lay the held segments and ``data`` out as a recording directory and verify it;
        returns the report and the segments (file: SHA-256) it covered."""
        with self.engine.connect() as conn:
            held = self._held_segments(conn, recording_id)
        with tempfile.TemporaryDirectory(prefix="bwv-verify-") as scratch:
            directory = Path(scratch) / recording_id
            directory.mkdir()
            for file, sha256 in held.items():
                self.blobs.place(sha256, directory / file)
            (directory / manifest.MANIFEST_NAME).write_bytes(data)
            # the blobs are stored under the SHA-256 computed as they arrived: no second pass
            report = verify.verify_recording(directory, trusted_key=key, known_sha256=held)
        report.path = report.manifest = recording_id
        return report, held

    def _catalogue(self, conn: Connection, row: Any, recording_id: str, device_id: str,
                   now: int, values: dict[str, Any]) -> None:
        """Enter or update the recording's row, and its officer."""
        received = now if row is None else row.received_us
        enrolled_us = conn.execute(select(devices.c.enrolled_us)
                                   .where(devices.c.device_id == device_id)).scalar()
        values["clock_flag"] = camera_clock.judge(values["clock_source"], values["recorded_us"],
                                                  values["ended_us"], received, now, enrolled_us)
        # counted from the verdict (now), not the first segment's arrival: the camera deletes
        # its copy on the receipt given from then on, so the station's copy is then the only
        # one and must have its whole retention period from that moment
        values["retain_until_us"] = camera_clock.retain_until(
            max(received, now), values["recorded_us"], values["clock_flag"], self.retention_us)
        if row is None:
            if not _insert_recording(conn, dict(values, recording_id=recording_id,
                                                device_id=device_id, received_us=now)):
                raise _RowRaced(recording_id)
        else:
            conn.execute(update(recordings).where(recordings.c.recording_id == recording_id)
                         .values(**values))
        officer_id = values["officer_id"]
        if officer_id is not None and conn.execute(
                select(officers.c.officer_id)
                .where(officers.c.officer_id == officer_id)).first() is None:
            conn.execute(insert(officers).values(officer_id=officer_id, first_seen_us=now))

    # -- reading (audited)

    def materialize(self, recording_id: str, directory: Path) -> None:
        """Lay a held recording out in ``directory`` as the camera wrote it (segments and
        manifest), e.g. to verify or export it. Raises UnknownRecordingError, RecordingGoneError."""
        row = self.recording(recording_id)
        if row.status == Status.DELETED:
            raise RecordingGoneError(f"recording {recording_id} was deleted on retention")
        if row.manifest_sha256 is None:
            raise UnknownRecordingError(f"recording {recording_id} has no manifest yet")
        directory.mkdir(parents=True, exist_ok=True)
        for file, sha256 in self.holdings(recording_id).segments.items():
            self.blobs.place(sha256, directory / file)
        self.blobs.place(row.manifest_sha256, directory / manifest.MANIFEST_NAME)

    def recording(self, recording_id: str) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(select(recordings)
                               .where(recordings.c.recording_id == recording_id)).first()
        if row is None:
            raise UnknownRecordingError(f"no recording {recording_id} in the catalogue")
        return row

    def list_recordings(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(recordings).order_by(
                recordings.c.recorded_us.desc(), recordings.c.recording_id)))

    def segment_sha256(self, recording_id: str, file: str) -> str:
        with self.engine.connect() as conn:
            sha = conn.execute(select(segments.c.sha256)
                               .where(segments.c.recording_id == recording_id)
                               .where(segments.c.file == file)
                               .where(segments.c.blob_deleted.is_(False))).scalar()
        if sha is None:
            raise UnknownRecordingError(f"no segment {file} of recording {recording_id}")
        return str(sha)

    def markers(self, recording_id: str) -> list[Any]:
        """The markers of a recording (``utc``, ``pts_us``), in the order of the recording."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(markers.c.utc, markers.c.pts_us)
                                     .where(markers.c.recording_id == recording_id)
                                     .order_by(markers.c.pts_us, markers.c.id)))

    def record_access(self, actor: str, action: str, recording_id: str | None,
                      detail: dict[str, Any]) -> None:
        """Audit a view, a listing, a playback or an export."""
        with self.write_lock, self.engine.begin() as conn:
            audit.append(conn, self.clock(), actor, action, recording_id, detail)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {status: int(n) for status, n in conn.execute(
                select(recordings.c.status, func.count()).group_by(recordings.c.status))}


def _read_arrival(recording_id: str, device_id: str, data: bytes) -> manifest.ManifestLines:
    """Read an arriving manifest; BadRequestError unless it starts with a header line of this
    recording and device (a damaged one too: verification then says what is wrong with it)."""
    read = manifest.read_lines(data)
    first = read.lines[0] if read.lines else None
    if first is not None and first.not_json is not None:
        raise BadRequestError(f"the manifest's first line is not JSON: {first.not_json}")
    if first is None or first.type != manifest.LineType.HEADER.value:
        raise BadRequestError("the manifest does not start with a header line")
    if first.value("recording_id") != recording_id or first.value("device_id") != device_id:
        raise BadRequestError(
            f"the manifest is of recording {first.value('recording_id')!r} by device "
            f"{first.value('device_id')!r}, but was sent as {recording_id!r} by {device_id!r}")
    return read


class _RowRaced(Exception):
    """The recording's row was entered by another station process after this one found none."""


def _insert_recording(conn: Connection, values: dict[str, Any]) -> bool:
    """Enter a new recording's row; False (nothing written, the transaction still usable) when
    another station process on the same PostgreSQL catalogue entered it first. Its INSERT waits
    for that process's transaction, so the row is there, committed, for the caller to lock.
    (On SQLite one writer holds the database from BEGIN IMMEDIATE: the row cannot appear.)"""
    try:
        with conn.begin_nested():
            conn.execute(insert(recordings).values(**values))
    except IntegrityError:
        return False
    return True


def _held(conn: Connection, recording_id: str) -> bool:
    """Whether the recording has an active hold (read under its row lock)."""
    return conn.execute(select(holds.c.id).where(holds.c.recording_id == recording_id)
                        .where(holds.c.released_us.is_(None)).limit(1)).first() is not None


def _lock_blob(conn: Connection, sha256: str) -> None:
    """Serialise, for one blob, a segment's commit and the removal of unreferenced blobs (two
    station processes: `serve` and `bwv station sweep`): on PostgreSQL a transaction-scoped
    advisory lock on the hash; SQLite's BEGIN IMMEDIATE already lets one writer in at a time."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:sha, 0))"),
                     {"sha": sha256})


MAX_CLAIMED_BYTES = 1 << 53  # a segment's size as a manifest claims it, where it is summed


def _text(value: Any, limit: int | None = None) -> str | None:
    """A manifest's text as the catalogue can store it on either database: None unless a
    string; a lone surrogate or a NUL (which neither UTF-8 nor PostgreSQL text can hold) shown
    escaped; at most ``limit`` characters (the column's width)."""
    if not isinstance(value, str):
        return None
    shown = value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return shown if limit is None else shown[:limit]


def _utc_us(value: Any) -> int | None:
    """Microseconds of a manifest UTC string; None for anything else."""
    try:
        moment = catalogue.parse_utc(value) if isinstance(value, str) else None
    except (ValueError, OverflowError):
        return None
    return moment if moment is not None and catalogue.in_range(moment) else None


MAX_PRE_EVENT_US = 600 * 1_000_000  # more than any ring holds; a manifest cannot claim more


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int and catalogue.in_range(value) else None


def _footage_start_us(header: Any, listed: list[Any]) -> int | None:
    """The UTC of the recording's first frame: the header's utc_start less the pre-event
    seconds recorded before it (how far segment 1's first pts lies before the header's
    monotonic_start_us). A claim of no pre-event, or of more than MAX_PRE_EVENT_US, leaves
    utc_start: a crafted manifest cannot move its recording far in time."""
    start = _utc_us(header.value("utc_start"))
    monotonic = _int_or_none(header.value("monotonic_start_us"))
    first = _int_or_none(listed[0].value("first_pts_us")) if listed else None
    if start is None or monotonic is None or first is None:
        return start
    before = monotonic - first
    if not 0 < before <= MAX_PRE_EVENT_US or not catalogue.in_range(start - before):
        return start
    return start - before


def _catalogue_values(read: manifest.ManifestLines,
                      report: verify.VerifyReport) -> dict[str, Any]:
    """The catalogue's columns for a recording, from what its manifest says (a damaged line
    included: a failed recording is catalogued as it claims to be) and its verify report."""
    header = read.lines[0]
    sealed = read.of_type(manifest.LineType.SEALED)
    listed = read.of_type(manifest.LineType.SEGMENT)
    first = report.first_problem
    claimed = [line.value("bytes") for line in listed]
    return dict(officer_id=_text(header.value("officer_id"), 128),
                utc_start=_text(header.value("utc_start"), 40) or None,
                clock_source=_text(header.value("clock_source"), 32) or None,
                recorded_us=_utc_us(header.value("utc_start")),
                footage_start_us=_footage_start_us(header, listed),
                first_pts_us=_int_or_none(listed[0].value("first_pts_us")) if listed else None,
                ended_us=_utc_us(sealed[0].value("utc")) if sealed else None,
                verify_summary=_text("ok" if first is None else f"{first.where}: {first.message}",
                                     4000),
                verify_report=json.dumps(report.to_json(), sort_keys=True),
                segment_count=len(listed),
                total_bytes=min(MAX_CLAIMED_BYTES, sum(
                    size for size in claimed
                    if type(size) is int and 0 <= size <= MAX_CLAIMED_BYTES)))


def _enter_markers(conn: Connection, recording_id: str, read: manifest.ManifestLines) -> None:
    """The officer's markers of a verified recording, replacing any entered before."""
    conn.execute(delete(markers).where(markers.c.recording_id == recording_id))
    for event in read.events():
        if event.event == EventKind.MARKER.value:
            conn.execute(insert(markers).values(recording_id=recording_id, utc=event.utc,
                                                pts_us=event.pts_us))
