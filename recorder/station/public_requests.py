"""Written requests from the public for footage of themselves (subject access). Recording one
places a hold on every recording that overlaps the time window (narrowed by device or officer
when the request names them), so nothing matching is swept while the request is handled; the
footage is then exported with its verification report (recorder.station.export).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Select, func, insert, or_, select, update

from . import audit, retention
from .blobs import BlobStore
from .catalogue import holds, public_requests, recordings
from .errors import BadRequestError, ConflictError, NoSuchRequestError, RecordingGoneError
from .evidence_store import EvidenceStore
from .export import ExportResult, export_recording


DEADLINE_US = 31 * 86_400 * 1_000_000  # from the day the written request was received


class Status:
    """Where a request stands. Received: entered, and what its window matches is held.
    Searched: a disclosure officer has reviewed the matches. Then disclosed (the export was
    made) or refused (with the reason)."""

    RECEIVED = "received"
    SEARCHED = "searched"
    DISCLOSED = "disclosed"
    REFUSED = "refused"


NEXT = {Status.RECEIVED: (Status.SEARCHED, Status.REFUSED),
        Status.SEARCHED: (Status.DISCLOSED, Status.REFUSED)}


@dataclass(frozen=True)
class PublicRequest:
    reference: str
    requester: str
    window_start_us: int
    window_end_us: int
    device_id: str | None
    officer_id: str | None
    description: str
    matches: tuple[str, ...]  # recording ids now held for it
    gone: tuple[str, ...] = ()  # recordings of the window already deleted on retention


def record_request(store: EvidenceStore, reference: str, requester: str, description: str,
                   window_start_us: int, window_end_us: int, by: str,
                   device_id: str | None = None, officer_id: str | None = None,
                   received_us: int | None = None, place: str | None = None) -> PublicRequest:
    """Record a request and hold every recording it may concern (case reference = reference).
    ``received_us``: when the written request arrived (default now; never in the future): its
    deadline counts from then."""
    if window_end_us <= window_start_us:
        raise BadRequestError("the request's time window ends before it starts")
    if not reference.strip() or not requester.strip():
        raise BadRequestError("a request needs a reference and the requester's name")
    now = store.clock()
    received = now if received_us is None else received_us
    if received > now or now - received > DEADLINE_US * 12:
        raise BadRequestError("the request's received date must be in the past year, not later "
                              "than today")
    with store.write_lock, store.engine.begin() as conn:
        if conn.execute(select(public_requests.c.id)
                        .where(public_requests.c.reference == reference)).first() is not None:
            raise ConflictError(f"a request with reference {reference} is already recorded")
        if conn.execute(select(holds.c.id).where(holds.c.case_ref == reference)).first():
            # its export would gather that case's recordings and audit entries too
            raise ConflictError(f"{reference} is already the case reference of holds placed "
                                "by staff: give the public request a reference of its own")
        # the matches' rows locked before the first audit append, as the sweep and place_hold
        # lock a row and then append: the reverse order deadlocks with a concurrent sweep on
        # PostgreSQL (audit.append locks the chain's head), which then aborts one of them
        found = [str(value) for value in conn.execute(
            _matching(window_start_us, window_end_us, device_id, officer_id)
            .with_for_update()).scalars().all()]
        conn.execute(insert(public_requests).values(
            reference=reference, requester=requester, received_us=received,
            window_start_us=window_start_us, window_end_us=window_end_us, device_id=device_id,
            officer_id=officer_id, description=description, recorded_by=by, place=place,
            entered_us=now, status=Status.RECEIVED, status_us=now, status_by=by))
        audit.append(conn, now, by, "public_request", None,
                     {"reference": reference, "window": [window_start_us, window_end_us],
                      "device_id": device_id, "officer_id": officer_id})
        matches, gone = _hold_matches(conn, store.blobs, now, found,
                                      f"public request {reference}: {description}", reference,
                                      by)
    return PublicRequest(reference, requester, window_start_us, window_end_us, device_id,
                         officer_id, description, matches, gone)


def _matching(window_start_us: int, window_end_us: int, device_id: str | None,
              officer_id: str | None) -> Select[Any]:
    """The recordings (tombstones included) that overlap the window, narrowed by device or
    officer; in the order of their recording time."""
    # from the first frame, pre-event seconds included (a request about the moments before
    # the officer pressed record is about that footage too)
    began = func.coalesce(recordings.c.footage_start_us, recordings.c.recorded_us)
    query = (select(recordings.c.recording_id)
             .where(began <= window_end_us)
             .where(or_(recordings.c.ended_us >= window_start_us,
                        recordings.c.ended_us.is_(None) & (recordings.c.recorded_us
                                                           >= window_start_us)))
             .order_by(recordings.c.recorded_us, recordings.c.recording_id))
    if device_id is not None:
        query = query.where(recordings.c.device_id == device_id)
    if officer_id is not None:
        query = query.where(recordings.c.officer_id == officer_id)
    return query


def _hold_matches(conn: Connection, blobs: BlobStore, now: int, found: list[str],
                  reason: str, reference: str,
                  by: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Hold every recording of ``found`` (their rows already locked by the caller), each as
    place_hold holds it (its blobs under the storage's legal hold too), inside the request's
    own transaction: each one is held, or reported gone (deleted on retention before the
    request, or by a sweep that held its row first); none is silently lost."""
    held: list[str] = []
    gone: list[str] = []
    for recording_id in found:
        try:  # refused before it writes anything: the transaction goes on
            retention.hold_locked(conn, blobs, now, recording_id, reason, reference, by)
        except RecordingGoneError:
            gone.append(recording_id)
            continue
        held.append(recording_id)
    return tuple(held), tuple(gone)


def export_request(store: EvidenceStore, reference: str, out_dir: Path,
                   by: str) -> list[ExportResult]:
    """Export every recording held for the request into ``out_dir`` (one zip each): the
    original footage, as evidence for the force's own file. What a requester receives is the
    redacted copies (recorder.station.web.requests)."""
    own_reason = f"public request {reference}:"  # the holds record_request placed, only
    held = [hold.recording_id for row in store.list_recordings()
            for hold in retention.active_holds(store, row.recording_id)
            if hold.case_ref == reference and hold.reason.startswith(own_reason)]
    return [export_recording(store, recording_id, out_dir / f"{reference}-{recording_id}.zip",
                             by=by, purpose=f"public request {reference}",
                             request_ref=reference)
            for recording_id in dict.fromkeys(held)]


@dataclass(frozen=True)
class RequestState:
    """A recorded request as it stands: its row, status, deadline and the recordings held for
    it (in recording order)."""

    row: Any
    status: str
    deadline_us: int
    held: tuple[str, ...]


def list_requests(store: EvidenceStore) -> list[RequestState]:
    """Every request, the most recently received first."""
    with store.engine.connect() as conn:
        rows = list(conn.execute(select(public_requests)
                                 .order_by(public_requests.c.received_us.desc())))
    return [_state(store, row) for row in rows]


def request_state(store: EvidenceStore, reference: str) -> RequestState:
    """One request; UnknownRecordingError-like BadRequestError when there is none."""
    with store.engine.connect() as conn:
        row = conn.execute(select(public_requests)
                           .where(public_requests.c.reference == reference)).first()
    if row is None:
        raise NoSuchRequestError(f"no request {reference}")
    return _state(store, row)


def _state(store: EvidenceStore, row: Any) -> RequestState:
    with store.engine.connect() as conn:
        held = tuple(dict.fromkeys(str(value) for value in conn.execute(
            select(holds.c.recording_id).where(holds.c.case_ref == row.reference)
            .where(holds.c.reason.startswith(f"public request {row.reference}:"))
            .order_by(holds.c.id)).scalars()))
    return RequestState(row, row.status or Status.RECEIVED, row.received_us + DEADLINE_US, held)


def set_status(store: EvidenceStore, reference: str, status: str, by: str,
               note: str = "") -> RequestState:
    """Move a request on (received -> searched -> disclosed, or to refused with a reason);
    ConflictError for a step its status does not allow. Audited."""
    if status == Status.REFUSED and not note.strip():
        raise BadRequestError("a refusal needs its reason")
    now = store.clock()
    with store.write_lock, store.engine.begin() as conn:
        row = conn.execute(select(public_requests).where(public_requests.c.reference == reference)
                           .with_for_update()).first()
        if row is None:
            raise NoSuchRequestError(f"no request {reference}")
        current = row.status or Status.RECEIVED
        if status not in NEXT.get(current, ()):
            raise ConflictError(f"request {reference} is {current}: it cannot become {status}")
        conn.execute(update(public_requests).where(public_requests.c.id == row.id).values(
            status=status, status_us=now, status_by=by, status_note=note or None))
        audit.append(conn, now, by, "public_request_status", None,
                     {"reference": reference, "from": current, "to": status, "note": note})
    return request_state(store, reference)
