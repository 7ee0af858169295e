"""Device lifecycle at the station: list the enrolled cameras, revoke one that is lost or stolen,
rotate a camera to a new key under the same device id, and hold who wore which camera when.

A device key on a lost card can sign anything, so the station stops trusting it: after
``revoke`` every request signed by that device is refused (``authenticate`` answers 401
"revoked"), and the recordings it already holds that were made or received since the device may
have been in other hands (``--since``) are flagged. ``rotate`` replaces the key for future
uploads; the old one stays in ``device_keys`` so recordings verified with it still verify and
their exports carry the key that signed them. The officer a recording is attributed to is the
one the station was told of (``assign``), stamped beside what the camera claims; a difference
is flagged, never silently resolved.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, and_, insert, or_, select, update

from ..integrity import keys
from . import audit
from .catalogue import (device_keys, device_revocations, devices, iso, officer_assignments,
                        recordings)
from .device_records import (Lifecycle, _check, _device, _revocation_flag, assigned_officer,
                             record_enrolled_key, revocation)
from .errors import ConflictError, EnrollmentError
from .evidence_store import EvidenceStore


@dataclass(frozen=True)
class DeviceInfo:
    device_id: str
    fingerprint: str
    enrolled_us: int
    revoked_us: int | None
    revoke_reason: str | None
    officer_id: str | None  # assigned now, at the station
    keys_held: int  # the current key and every key rotated out


def list_devices(store: EvidenceStore) -> list[DeviceInfo]:
    now = store.clock()
    with store.engine.connect() as conn:
        result = []
        for row in conn.execute(select(devices).order_by(devices.c.device_id)):
            revoked = revocation(conn, row.device_id)
            held = conn.execute(select(device_keys.c.fingerprint)
                                .where(device_keys.c.device_id == row.device_id)).all()
            result.append(DeviceInfo(
                row.device_id, row.fingerprint, row.enrolled_us,
                None if revoked is None else revoked.revoked_us,
                None if revoked is None else revoked.reason,
                assigned_officer(conn, row.device_id, now), max(len(held), 1)))
    return result


def revoke(store: EvidenceStore, device_id: str, reason: str, by: str,
           since_us: int | None = None) -> int:
    """Stop trusting a device from now on; flag the recordings it made or sent since
    ``since_us`` (default now: when it was lost, if earlier). Returns how many were flagged."""
    if not reason.strip():
        raise EnrollmentError("a revocation needs a reason (lost, stolen, retired ...)")
    now = store.clock()
    since = now if since_us is None else min(since_us, now)
    with store.write_lock, store.engine.begin() as conn:
        _device(conn, device_id)
        if revocation(conn, device_id) is not None:
            raise ConflictError(f"device {device_id} is already revoked")
        conn.execute(insert(device_revocations).values(device_id=device_id, revoked_us=now,
                                                       since_us=since, revoked_by=by,
                                                       reason=reason))
        row = revocation(conn, device_id)
        flagged = conn.execute(update(recordings).where(and_(
            recordings.c.device_id == device_id, recordings.c.device_flag.is_(None),
            or_(recordings.c.received_us >= since, recordings.c.recorded_us >= since,
                recordings.c.ended_us >= since))).values(device_flag=_revocation_flag(row)))
        count = int(flagged.rowcount)
        audit.append(conn, now, by, Lifecycle.REVOKE, None,
                     {"device_id": device_id, "reason": reason, "since": iso(since),
                      "recordings_flagged": count})
    return count


def rotate(store: EvidenceStore, device_id: str, public_key: Ed25519PublicKey, by: str) -> str:
    """Replace a device's key for future requests and uploads; the old key is kept in the
    history (and refused from now on). Returns the new key's fingerprint."""
    spki = keys.public_key_spki_b64(public_key)
    fingerprint = keys.fingerprint(public_key)
    now = store.clock()
    with store.write_lock, store.engine.begin() as conn:
        row = _device(conn, device_id)
        if revocation(conn, device_id) is not None:
            raise ConflictError(f"device {device_id} is revoked: a revoked device stays revoked; "
                                "enroll the camera under a new device id")
        history = {r.fingerprint for r in conn.execute(
            select(device_keys.c.fingerprint).where(device_keys.c.device_id == device_id))}
        if fingerprint == row.fingerprint or fingerprint in history:
            raise EnrollmentError(f"device {device_id} has had key {fingerprint[:16]}… before: "
                                  "a rotation needs a new key")
        if row.fingerprint not in history:  # enrolled before key history was kept
            record_enrolled_key(conn, device_id, row.public_key, row.fingerprint,
                                row.enrolled_us, row.enrolled_by)
        conn.execute(update(device_keys).where(device_keys.c.device_id == device_id)
                     .where(device_keys.c.retired_us.is_(None))
                     .values(retired_us=now, retired_by=by))
        record_enrolled_key(conn, device_id, spki, fingerprint, now, by)
        conn.execute(update(devices).where(devices.c.device_id == device_id)
                     .values(public_key=spki, fingerprint=fingerprint))
        audit.append(conn, now, by, Lifecycle.ROTATE, None,
                     {"device_id": device_id, "old_fingerprint": row.fingerprint,
                      "fingerprint": fingerprint})
    return fingerprint


def assign(store: EvidenceStore, device_id: str, officer_id: str, by: str,
           from_us: int | None = None, to_us: int | None = None) -> int:
    """Record that ``officer_id`` wears the device from ``from_us`` (default now) until
    ``to_us`` (default: until further notice), and re-stamp the recordings in that window.
    Returns how many recordings were re-stamped."""
    if not officer_id.strip():
        raise EnrollmentError("an assignment needs an officer id")
    now = store.clock()
    start = now if from_us is None else from_us
    if to_us is not None and to_us <= start:
        raise EnrollmentError("the assignment ends before it starts")
    with store.write_lock, store.engine.begin() as conn:
        _device(conn, device_id)
        conn.execute(insert(officer_assignments).values(
            device_id=device_id, officer_id=officer_id, from_us=start, to_us=to_us,
            assigned_by=by, assigned_us=now))
        restamped = _restamp(conn, device_id, start, to_us)
        audit.append(conn, now, by, Lifecycle.ASSIGN, None,
                     {"device_id": device_id, "officer_id": officer_id, "from": iso(start),
                      "to": None if to_us is None else iso(to_us),
                      "recordings_restamped": restamped})
    return restamped


def _restamp(conn: Connection, device_id: str, start: int, end: int | None) -> int:
    """Stamp again the device's recordings made in [start, end) with the station's officer."""
    count = 0
    for row in conn.execute(select(recordings.c.recording_id, recordings.c.officer_id,
                                   recordings.c.recorded_us, recordings.c.received_us)
                            .where(recordings.c.device_id == device_id)).all():
        at = row.recorded_us if row.recorded_us is not None else row.received_us
        if at < start or (end is not None and at >= end):
            continue
        officer = assigned_officer(conn, device_id, at)
        conn.execute(update(recordings).where(recordings.c.recording_id == row.recording_id)
                     .values(station_officer_id=officer,
                             officer_check=_check(officer, row.officer_id)))
        count += 1
    return count
