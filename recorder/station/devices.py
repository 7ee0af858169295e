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
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, and_, insert, or_, select, update

from ..integrity import keys
from . import audit
from .catalogue import (device_keys, device_revocations, devices, iso, officer_assignments,
                        recordings)
from .errors import ConflictError, EnrollmentError, StationError

if TYPE_CHECKING:
    from .evidence_store import EvidenceStore


class Lifecycle:
    """The lifecycle actions in the audit log."""

    REVOKE = "revoke"
    ROTATE = "rotate_key"
    ASSIGN = "assign_officer"


class OfficerCheck:
    MATCH = "match"
    MISMATCH = "mismatch"
    UNASSIGNED = "unassigned"


class UnknownDeviceError(StationError, KeyError):
    """No enrolled device has that id."""

    status = 404
    code = "unknown_device"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown device"


@dataclass(frozen=True)
class DeviceInfo:
    device_id: str
    fingerprint: str
    enrolled_us: int
    revoked_us: int | None
    revoke_reason: str | None
    officer_id: str | None  # assigned now, at the station
    keys_held: int  # the current key and every key rotated out


def _device(conn: Connection, device_id: str) -> Any:
    row = conn.execute(select(devices).where(devices.c.device_id == device_id)
                       .with_for_update()).first()
    if row is None:
        raise UnknownDeviceError(f"no device {device_id} is enrolled (`bwv station devices "
                                 "--data DIR` lists them)")
    return row


def revocation(conn: Connection, device_id: str) -> Any:
    """The device's revocation row, or None while it is trusted."""
    return conn.execute(select(device_revocations)
                        .where(device_revocations.c.device_id == device_id)).first()


def record_enrolled_key(conn: Connection, device_id: str, spki: str, fingerprint: str,
                        at_us: int, by: str) -> None:
    """Enter a device's key in its key history (at enrollment or rotation)."""
    conn.execute(insert(device_keys).values(device_id=device_id, fingerprint=fingerprint,
                                            public_key=spki, added_us=at_us, added_by=by))


def key_by_fingerprint(conn: Connection, device_id: str,
                       fingerprint: str) -> Ed25519PublicKey | None:
    """A key the device has had (current or rotated out), by its fingerprint."""
    spki = conn.execute(select(device_keys.c.public_key)
                        .where(device_keys.c.device_id == device_id)
                        .where(device_keys.c.fingerprint == fingerprint)).scalar()
    if spki is None:  # a device enrolled before key history: its current key
        spki = conn.execute(select(devices.c.public_key).where(devices.c.device_id == device_id)
                            .where(devices.c.fingerprint == fingerprint)).scalar()
    return None if spki is None else keys.public_key_from_spki_b64(spki)


def assigned_officer(conn: Connection, device_id: str, at_us: int) -> str | None:
    """The officer the station was told wore the device at ``at_us`` (the latest assignment
    covering that time wins)."""
    officer = conn.execute(
        select(officer_assignments.c.officer_id)
        .where(officer_assignments.c.device_id == device_id)
        .where(officer_assignments.c.from_us <= at_us)
        .where(or_(officer_assignments.c.to_us.is_(None), officer_assignments.c.to_us > at_us))
        .order_by(officer_assignments.c.id.desc()).limit(1)).scalar()
    return None if officer is None else str(officer)


def _check(station_officer: str | None, claimed: str | None) -> str:
    if station_officer is None:
        return OfficerCheck.UNASSIGNED
    return OfficerCheck.MATCH if station_officer == claimed else OfficerCheck.MISMATCH


def _revocation_flag(row: Any) -> str:
    return (f"made or received after device {row.device_id} was revoked (since "
            f"{iso(row.since_us)[:19]}Z: {row.reason})")


def ingest_stamp(conn: Connection, device_id: str, claimed_officer: str | None,
                 recorded_us: int | None, now_us: int, fingerprint: str) -> dict[str, Any]:
    """The lifecycle columns of a recording as it is verified: which key verified it, the
    station's officer beside the camera's claim, and a flag if the device is revoked."""
    station_officer = assigned_officer(conn, device_id,
                                       recorded_us if recorded_us is not None else now_us)
    revoked = revocation(conn, device_id)
    return {"key_fingerprint": fingerprint, "station_officer_id": station_officer,
            "officer_check": _check(station_officer, claimed_officer),
            "device_flag": None if revoked is None else _revocation_flag(revoked)}


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


def officer_note(row: Any) -> str:
    """How a listing shows a recording's officer: the camera's claim, and the station's when
    they differ."""
    claimed = row.officer_id or "-"
    if row.officer_check == OfficerCheck.MISMATCH:
        return f"{claimed} (MISMATCH: station says {row.station_officer_id})"
    return claimed
