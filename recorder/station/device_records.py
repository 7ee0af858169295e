"""The device lifecycle's records in the catalogue, read and written inside a caller's
transaction: which keys a device has had, whether and since when it is revoked, which officer the
station assigned to it when, and the stamp each verified recording gets from them. The commands
that change them (revoke, rotate, assign) are in recorder.station.devices; ingest
(recorder.station.evidence_store) uses these.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, insert, or_, select

from ..integrity import keys
from .catalogue import device_keys, device_revocations, devices, iso, officer_assignments
from .errors import StationError


class Lifecycle:
    """The lifecycle actions in the audit log."""

    REVOKE = "revoke"
    ROTATE = "rotate_key"
    ASSIGN = "assign_officer"


class UnknownDeviceError(StationError, KeyError):
    """No enrolled device has that id."""

    status = 404
    code = "unknown_device"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown device"


class OfficerCheck:
    MATCH = "match"
    MISMATCH = "mismatch"
    UNASSIGNED = "unassigned"


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


def officer_note(row: Any) -> str:
    """How a listing shows a recording's officer: the camera's claim, and the station's when
    they differ."""
    claimed = row.officer_id or "-"
    if row.officer_check == OfficerCheck.MISMATCH:
        return f"{claimed} (MISMATCH: station says {row.station_officer_id})"
    return claimed
