"""Retention at the station: evidence holds (reason and case reference), their release, the sweep
that deletes recordings past retention (blobs removed, tombstone and audit entry kept) and the
published counts: recorded, uploaded, auto-deleted, held.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, exists, func, insert, or_, select, text, update

from . import audit
from .audit import Action
from .blobs import BlobStore
from .catalogue import deletions, holds, public_requests, recordings, segments
from .errors import BadRequestError, ConflictError, RecordingGoneError, UnknownRecordingError
from .evidence_store import EvidenceStore, Status


@dataclass(frozen=True)
class Hold:
    id: int
    recording_id: str
    reason: str
    case_ref: str
    placed_by: str
    placed_us: int


def _existing(conn: Connection, recording_id: str, lock: bool = False) -> Any:
    """The recording's row; with ``lock``, locked until the transaction ends (``SELECT ... FOR
    UPDATE`` on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the only write lock), so that
    what is checked in it cannot change before the transaction writes."""
    query = select(recordings).where(recordings.c.recording_id == recording_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise UnknownRecordingError(f"no recording {recording_id} in the catalogue (`bwv station "
                                    "list --data DIR` shows them)")
    return row


# A test-only hook (never set from the network, the CLI or the settings): called inside the locked
# transaction of place_hold and of the sweep, between the check and the write, with the
# recording id, so that tests/test_station_holds_race.py can land a second process exactly there.
Pause = Callable[[str], None]


def _no_pause(recording_id: str) -> None:
    del recording_id


def place_hold(store: EvidenceStore, recording_id: str, reason: str, case_ref: str,
               by: str, pause: Pause = _no_pause) -> Hold:
    """Flag a recording as evidence: the sweep keeps it until every hold on it is released.
    The recording's row is locked while the hold is checked and written, so a hold is never
    reported placed on a recording the sweep is deleting (RecordingGoneError instead)."""
    if not reason.strip() or not case_ref.strip():
        raise BadRequestError("a hold needs a reason and a case reference")
    now = store.clock()
    with store.write_lock, store.engine.begin() as conn:
        if conn.execute(select(public_requests.c.id)
                        .where(public_requests.c.reference == case_ref)).first() is not None:
            # the request's export gathers every hold of its reference: keep the two apart
            raise ConflictError(f"{case_ref} is the reference of a request from the public: "
                                "give the case a reference of its own")
        return hold_locked(conn, store.blobs, now, recording_id, reason, case_ref, by, pause)


def _recording_blobs(conn: Connection, recording_id: str) -> list[str]:
    """The blobs a recording has in the store: its segments and its manifest."""
    found = [r.sha256 for r in conn.execute(
        select(segments.c.sha256).where(segments.c.recording_id == recording_id)
        .where(segments.c.blob_deleted.is_(False)))]
    manifest = conn.execute(select(recordings.c.manifest_sha256)
                            .where(recordings.c.recording_id == recording_id)).scalar()
    return sorted(set(found + ([manifest] if manifest else [])))


def _held_elsewhere(conn: Connection, sha256: str, recording_id: str) -> bool:
    """Whether another recording with an active hold has the same blob."""
    active = exists().where(and_(holds.c.recording_id == recordings.c.recording_id,
                                 holds.c.released_us.is_(None)))
    by_segment = conn.execute(
        select(segments.c.recording_id).where(segments.c.sha256 == sha256)
        .where(segments.c.recording_id != recording_id)
        .where(exists().where(and_(holds.c.recording_id == segments.c.recording_id,
                                   holds.c.released_us.is_(None))))).first()
    by_manifest = conn.execute(
        select(recordings.c.recording_id).where(recordings.c.manifest_sha256 == sha256)
        .where(recordings.c.recording_id != recording_id).where(active)).first()
    return by_segment is not None or by_manifest is not None


def hold_locked(conn: Connection, blobs: BlobStore, now: int, recording_id: str, reason: str,
                case_ref: str, by: str, pause: Pause = _no_pause) -> Hold:
    """Place a hold inside the caller's transaction, the recording's row locked first, and the
    storage's own lock on the recording's blobs (whoever places it: staff, or a request from
    the public)."""
    row = _existing(conn, recording_id, lock=True)
    if row.status == Status.DELETED:
        raise RecordingGoneError(f"recording {recording_id} was already deleted on "
                                 "retention; nothing is left to hold")
    pause(recording_id)
    key = conn.execute(insert(holds).values(
        recording_id=recording_id, reason=reason, case_ref=case_ref, placed_by=by,
        placed_us=now)).inserted_primary_key
    assert key is not None
    hold_id = int(key[0])
    audit.append(conn, now, by, Action.HOLD, recording_id,
                 {"hold": hold_id, "reason": reason, "case_ref": case_ref})
    # the storage's own lock too (an S3 legal hold where the bucket has object lock), in the
    # transaction: if the store refuses, no hold is recorded that the storage does not keep.
    # A blob that arrives later is locked by its own commit (EvidenceStore.commit_segment).
    for sha256 in _recording_blobs(conn, recording_id):
        blobs.set_legal_hold(sha256, True)
    return Hold(hold_id, recording_id, reason, case_ref, by, now)


def release_holds(store: EvidenceStore, recording_id: str, by: str, reason: str = "",
                  case_ref: str | None = None) -> int:
    """Release the active holds on a recording (only those of ``case_ref`` when given); returns
    how many. The recording then goes at the next sweep if its retention has passed."""
    now = store.clock()
    with store.write_lock, store.engine.begin() as conn:
        _existing(conn, recording_id, lock=True)
        query = select(holds.c.id, holds.c.case_ref).where(
            holds.c.recording_id == recording_id).where(holds.c.released_us.is_(None))
        if case_ref is not None:
            query = query.where(holds.c.case_ref == case_ref)
        active = list(conn.execute(query))
        for hold in active:
            conn.execute(update(holds).where(holds.c.id == hold.id).values(
                released_by=by, released_us=now, release_reason=reason))
            audit.append(conn, now, by, Action.RELEASE, recording_id,
                         {"hold": hold.id, "case_ref": hold.case_ref, "reason": reason})
        still_held = conn.execute(select(holds.c.id).where(holds.c.recording_id == recording_id)
                                  .where(holds.c.released_us.is_(None))).first() is not None
        if active and not still_held:  # the storage's lock goes with the last hold
            for sha256 in _recording_blobs(conn, recording_id):
                if not _held_elsewhere(conn, sha256, recording_id):
                    store.blobs.set_legal_hold(sha256, False)
    return len(active)


def active_holds(store: EvidenceStore, recording_id: str) -> list[Hold]:
    with store.engine.connect() as conn:
        return [Hold(r.id, r.recording_id, r.reason, r.case_ref, r.placed_by, r.placed_us)
                for r in conn.execute(select(holds).where(holds.c.recording_id == recording_id)
                                      .where(holds.c.released_us.is_(None))
                                      .order_by(holds.c.id))]


@dataclass
class SweepResult:
    deleted: list[str] = field(default_factory=list)
    kept_on_hold: list[str] = field(default_factory=list)
    bytes_removed: int = 0
    # another station process on the same PostgreSQL catalogue was sweeping: this one did not
    skipped: bool = False


# the key of the PostgreSQL advisory lock the sweep holds, in the two-int4 form: PostgreSQL keeps
# those apart from the one-int8 keys, where the blob locks (hashes of a SHA-256) fall
SWEEP_LOCK = (0x62777673, 1)  # "bwvs", 1: the retention sweep


@contextlib.contextmanager
def _sweep_lock(store: EvidenceStore) -> Iterator[bool]:
    """Whether this sweep may run: on PostgreSQL, True only for the one process (of all those
    sharing the catalogue) that holds the sweep's session-level advisory lock, taken without
    waiting on a connection kept for the sweep's length and released after it (or by the
    server when the process dies). On SQLite one process serves a catalogue: always True (each
    recording's deletion is its own locked, re-checked transaction, see ``sweep``)."""
    if store.engine.dialect.name != "postgresql":
        yield True
        return
    with store.engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:a, :b)"),
                                {"a": SWEEP_LOCK[0], "b": SWEEP_LOCK[1]}).scalar())
        conn.commit()  # the lock is the session's: end the transaction that took it
        try:
            yield got
        finally:
            if got:
                try:
                    conn.rollback()  # a sweep that failed may have left it in a failed state
                    conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"),
                                 {"a": SWEEP_LOCK[0], "b": SWEEP_LOCK[1]})
                    conn.commit()
                except Exception:
                    # never back into the pool still holding the lock: closing the session
                    # releases it
                    conn.invalidate()
                    raise


def _blob_still_used(conn: Connection, sha256: str, recording_id: str) -> bool:
    other_segment = conn.execute(select(segments.c.file).where(segments.c.sha256 == sha256)
                                 .where(segments.c.recording_id != recording_id)
                                 .where(segments.c.blob_deleted.is_(False))).first()
    other_manifest = conn.execute(select(recordings.c.recording_id)
                                  .where(recordings.c.manifest_sha256 == sha256)
                                  .where(recordings.c.recording_id != recording_id)
                                  .where(recordings.c.status != Status.DELETED)).first()
    return other_segment is not None or other_manifest is not None


def sweep(store: EvidenceStore, by: str = "station:sweep",
          pause: Pause = _no_pause) -> SweepResult:
    """Delete every recording whose retention has passed and that has no active hold.

    Per recording, in one transaction: the catalogue marks it deleted (the row stays as a
    tombstone with its hashes), a ``deletions`` row and an audit entry are written; the blobs
    are removed after the commit, so a crash in between leaves unreferenced blobs, never a
    catalogue that points at missing ones.

    Several station processes on one PostgreSQL catalogue: one sweeps at a time (an advisory
    lock, see ``_sweep_lock``); the others return at once with ``skipped``. Even without it a
    recording would be deleted once: its row is locked and its status checked again."""
    with _sweep_lock(store) as mine:
        if not mine:
            return SweepResult(skipped=True)
        return _sweep(store, by, pause)


def _sweep(store: EvidenceStore, by: str, pause: Pause) -> SweepResult:
    now = store.clock()
    result = SweepResult()
    held = exists().where(and_(holds.c.recording_id == recordings.c.recording_id,
                               holds.c.released_us.is_(None)))
    with store.engine.connect() as conn:
        due = list(conn.execute(select(recordings.c.recording_id, held.label("held"))
                                .where(recordings.c.status != Status.DELETED)
                                .where(recordings.c.retain_until_us <= now)
                                .order_by(recordings.c.retain_until_us)))
    for row in due:
        if row.held:
            result.kept_on_hold.append(row.recording_id)
            continue
        removable: list[str] = []
        with store.write_lock, store.engine.begin() as conn:
            # locked, then checked again: a hold placed since the query above has committed
            # (this waits for it) or will wait for this transaction and find a tombstone
            recording = _existing(conn, row.recording_id, lock=True)
            if recording.status == Status.DELETED or recording.retain_until_us > now:
                continue
            if conn.execute(select(holds.c.id).where(holds.c.recording_id == row.recording_id)
                            .where(holds.c.released_us.is_(None))).first() is not None:
                result.kept_on_hold.append(row.recording_id)
                continue
            pause(row.recording_id)
            held_segments = list(conn.execute(
                select(segments.c.file, segments.c.sha256, segments.c.bytes)
                .where(segments.c.recording_id == row.recording_id)
                .where(segments.c.blob_deleted.is_(False))))
            candidates = [s.sha256 for s in held_segments]
            if recording.manifest_sha256 is not None:
                candidates.append(recording.manifest_sha256)
            removable = [sha for sha in dict.fromkeys(candidates)
                         if not _blob_still_used(conn, sha, row.recording_id)]
            removed_bytes = sum(int(s.bytes) for s in held_segments) + int(
                recording.manifest_bytes or 0)
            conn.execute(update(segments).where(segments.c.recording_id == row.recording_id)
                         .values(blob_deleted=True))
            conn.execute(update(recordings).where(
                recordings.c.recording_id == row.recording_id).values(
                status=Status.DELETED, deleted_us=now))
            conn.execute(insert(deletions).values(
                recording_id=row.recording_id, reason="retention", deleted_us=now, deleted_by=by,
                blobs_removed=len(removable), bytes_removed=removed_bytes))
            audit.append(conn, now, by, Action.DELETE, row.recording_id,
                         {"reason": "retention", "retain_until": recording.retain_until_us,
                          "received": recording.received_us,
                          "recorded_utc": recording.utc_start,  # the camera's claim
                          "clock_flag": recording.clock_flag,
                          "was": recording.status, "segments": len(held_segments),
                          "bytes": removed_bytes, "manifest_sha256": recording.manifest_sha256})
        for sha in removable:  # each checked again, locked: a segment may hold it since
            store.drop_unreferenced_blob(sha)
        result.deleted.append(row.recording_id)
        result.bytes_removed += removed_bytes
    return result


def stats(store: EvidenceStore) -> dict[str, int]:
    """The published counts: recordings known (recorded), uploaded and verified, auto-deleted
    on retention, currently held, failed verification, and still arriving."""
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(recordings)).scalar_one()
        verified = conn.execute(select(func.count()).select_from(recordings).where(or_(
            recordings.c.status == Status.VERIFIED,
            and_(recordings.c.status == Status.DELETED,
                 recordings.c.verified_us.is_not(None),
                 recordings.c.verify_summary == "ok")))).scalar_one()
        auto_deleted = conn.execute(select(func.count()).select_from(deletions)
                                    .where(deletions.c.reason == "retention")).scalar_one()
        held = conn.execute(select(func.count(func.distinct(holds.c.recording_id)))
                            .where(holds.c.released_us.is_(None))).scalar_one()
        failed = conn.execute(select(func.count()).select_from(recordings)
                              .where(recordings.c.status == Status.FAILED)).scalar_one()
        receiving = conn.execute(select(func.count()).select_from(recordings)
                                 .where(recordings.c.status == Status.RECEIVING)).scalar_one()
        stored = conn.execute(select(func.coalesce(func.sum(segments.c.bytes), 0))
                              .where(segments.c.blob_deleted.is_(False))).scalar_one()
    return {"recorded": int(total), "uploaded": int(verified), "auto_deleted": int(auto_deleted),
            "held": int(held), "failed_verification": int(failed),
            "receiving": int(receiving), "bytes_stored": int(stored)}
