"""Written requests from the public for footage of themselves (subject access). Recording one
places a hold on every recording that overlaps the time window (narrowed by device or officer
when the request names them), so nothing matching is swept while the request is handled; the
footage is then exported with its verification report (recorder.station.export).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert, or_, select

from . import audit, retention
from .catalogue import public_requests, recordings
from .errors import BadRequestError, ConflictError
from .evidence_store import EvidenceStore, Status
from .export import ExportResult, export_recording


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


def record_request(store: EvidenceStore, reference: str, requester: str, description: str,
                   window_start_us: int, window_end_us: int, by: str,
                   device_id: str | None = None, officer_id: str | None = None) -> PublicRequest:
    """Record a request and hold every recording it may concern (case reference = reference)."""
    if window_end_us <= window_start_us:
        raise BadRequestError("the request's time window ends before it starts")
    if not reference.strip() or not requester.strip():
        raise BadRequestError("a request needs a reference and the requester's name")
    now = store.clock()
    with store.write_lock, store.engine.begin() as conn:
        if conn.execute(select(public_requests.c.id)
                        .where(public_requests.c.reference == reference)).first() is not None:
            raise ConflictError(f"a request with reference {reference} is already recorded")
        conn.execute(insert(public_requests).values(
            reference=reference, requester=requester, received_us=now,
            window_start_us=window_start_us, window_end_us=window_end_us, device_id=device_id,
            officer_id=officer_id, description=description, recorded_by=by))
        audit.append(conn, now, by, "public_request", None,
                     {"reference": reference, "window": [window_start_us, window_end_us],
                      "device_id": device_id, "officer_id": officer_id})
    query = (select(recordings.c.recording_id)
             .where(recordings.c.status != Status.DELETED)
             .where(recordings.c.recorded_us <= window_end_us)
             .where(or_(recordings.c.ended_us >= window_start_us,
                        recordings.c.ended_us.is_(None) & (recordings.c.recorded_us
                                                           >= window_start_us)))
             .order_by(recordings.c.recorded_us))
    if device_id is not None:
        query = query.where(recordings.c.device_id == device_id)
    if officer_id is not None:
        query = query.where(recordings.c.officer_id == officer_id)
    with store.engine.connect() as conn:
        matches = tuple(conn.execute(query).scalars())
    for recording_id in matches:
        retention.place_hold(store, recording_id, f"public request {reference}: {description}",
                             reference, by=by)
    return PublicRequest(reference, requester, window_start_us, window_end_us, device_id,
                         officer_id, description, matches)


def export_request(store: EvidenceStore, reference: str, out_dir: Path,
                   by: str) -> list[ExportResult]:
    """Export every recording held for the request into ``out_dir`` (one zip each)."""
    held = [hold.recording_id for row in store.list_recordings()
            for hold in retention.active_holds(store, row.recording_id)
            if hold.case_ref == reference]
    return [export_recording(store, recording_id, out_dir / f"{reference}-{recording_id}.zip",
                             by=by, purpose=f"public request {reference}",
                             request_ref=reference)
            for recording_id in dict.fromkeys(held)]
