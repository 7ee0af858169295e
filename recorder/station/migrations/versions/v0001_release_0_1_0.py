"""Release 0.1.0's catalogue (01849c6); one made before revisions is brought up to it.

The schema that release 0.1.0 (commit 01849c6) left, the last made before revisions.

This revision is idempotent, unlike those after it: it creates the tables that are missing, adds
the nullable columns and the indexes that an older catalogue lacks (what the catalogue did at
every open before revisions), and puts the audit head in place. On an empty database it creates
the whole schema. `bwv station migrate` runs it on a catalogue that has station tables and no
alembic_version table, then stamps it.

The tables are frozen here, not imported from recorder.station.catalogue: that module's
metadata is the head, and it moves on; this revision must stay what 0.1.0's schema was.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

from typing import Any

from alembic import op
from sqlalchemy import (BigInteger, Boolean, Column, Connection, ForeignKey, Index, Integer,
                        MetaData, String, Table, Text, UniqueConstraint, event, inspect, insert,
                        select)

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

GENESIS_HASH = "0" * 64

schema = MetaData()


devices = Table(
    "devices", schema,
    Column("device_id", String(128), primary_key=True),
    Column("public_key", String(128), nullable=False),  # base64 DER SPKI, as in manifests
    Column("fingerprint", String(64), nullable=False),
    Column("enrolled_us", BigInteger, nullable=False),
    Column("enrolled_by", String(128), nullable=False),
)

officers = Table(
    "officers", schema,
    Column("officer_id", String(128), primary_key=True),
    Column("first_seen_us", BigInteger, nullable=False),
)

# status: receiving (segments arriving, no verified manifest yet), verified, failed, deleted
recordings = Table(
    "recordings", schema,
    Column("recording_id", String(128), primary_key=True),
    Column("device_id", String(128), ForeignKey("devices.device_id"), nullable=False),
    Column("officer_id", String(128)),
    Column("status", String(16), nullable=False),
    Column("utc_start", String(40)),
    Column("recorded_us", BigInteger),  # from the manifest header's utc_start
    # the UTC of the first frame: utc_start less the pre-event seconds before it (segment 1's
    # first_pts_us against the header's monotonic_start_us); what a request's window matches
    Column("footage_start_us", BigInteger),
    Column("first_pts_us", BigInteger),  # segment 1's first video pts: 0 s on the player
    Column("ended_us", BigInteger),  # from the sealed line's utc
    Column("received_us", BigInteger, nullable=False),
    Column("retain_until_us", BigInteger, nullable=False),
    Column("manifest_sha256", String(64)),
    Column("manifest_bytes", Integer),
    Column("verified_us", BigInteger),
    Column("verify_summary", Text),  # the first problem, or "ok"
    Column("verify_report", Text),  # the whole VerifyReport as JSON
    Column("segment_count", Integer, nullable=False, default=0),
    Column("total_bytes", BigInteger, nullable=False, default=0),
    Column("deleted_us", BigInteger),
    # device lifecycle (recorder.station.devices): the fingerprint of the enrolled key the
    # recording was verified with, the officer the station had assigned to the camera then
    # (beside officer_id, what the camera claims), and what a reader must be warned of
    Column("key_fingerprint", String(64)),
    Column("station_officer_id", String(128)),
    Column("officer_check", String(16)),  # "match", "mismatch" or "unassigned"
    Column("device_flag", Text),  # e.g. made after the device was reported lost (revoked)
    # the header's clock_source, and why the camera's clock is not believed (ClockFlag), or null
    Column("clock_source", String(32)),
    Column("clock_flag", String(32)),
)
Index("recordings_retention", recordings.c.status, recordings.c.retain_until_us)

segments = Table(
    "segments", schema,
    Column("recording_id", String(128), ForeignKey("recordings.recording_id"), primary_key=True),
    Column("file", String(128), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("received_us", BigInteger, nullable=False),
    Column("blob_deleted", Boolean, nullable=False, default=False),
)
Index("segments_sha256", segments.c.sha256)

markers = Table(
    "markers", schema,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recording_id", String(128), ForeignKey("recordings.recording_id"), nullable=False),
    Column("utc", String(40), nullable=False),
    Column("pts_us", BigInteger),
)

holds = Table(
    "holds", schema,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recording_id", String(128), ForeignKey("recordings.recording_id"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("case_ref", String(128), nullable=False),
    Column("placed_by", String(128), nullable=False),
    Column("placed_us", BigInteger, nullable=False),
    Column("released_by", String(128)),
    Column("released_us", BigInteger),
    Column("release_reason", Text),
)

# notes staff wrote on a recording (recorder.station.notes): appended, never edited or deleted
notes = Table(
    "notes", schema,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recording_id", String(128), ForeignKey("recordings.recording_id"), nullable=False),
    Column("text", Text, nullable=False),
    Column("author", String(128), nullable=False),
    Column("written_us", BigInteger, nullable=False),
)
Index("notes_recording", notes.c.recording_id, notes.c.id)


def _notes_append_only(target: Table, connection: Connection, **_: Any) -> None:
    """Triggers that refuse an UPDATE or DELETE of a note, whoever sends it (made with the
    table)."""
    if connection.dialect.name == "sqlite":
        for change in ("UPDATE", "DELETE"):
            connection.exec_driver_sql(
                f"CREATE TRIGGER notes_no_{change.lower()} BEFORE {change} ON notes "
                "BEGIN SELECT RAISE(ABORT, 'notes are append-only'); END")
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION notes_append_only() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'notes are append-only'; END $$")
        connection.exec_driver_sql(
            "CREATE TRIGGER notes_append_only BEFORE UPDATE OR DELETE ON notes "
            "FOR EACH ROW EXECUTE FUNCTION notes_append_only()")


event.listen(notes, "after_create", _notes_append_only)

# written requests from the public for footage of themselves (subject access)
public_requests = Table(
    "public_requests", schema,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reference", String(128), nullable=False, unique=True),
    Column("requester", Text, nullable=False),
    Column("received_us", BigInteger, nullable=False),
    Column("window_start_us", BigInteger, nullable=False),
    Column("window_end_us", BigInteger, nullable=False),
    Column("device_id", String(128)),
    Column("officer_id", String(128)),
    Column("description", Text, nullable=False),
    Column("recorded_by", String(128), nullable=False),
    Column("place", Text),  # where it happened, as the requester says
    Column("entered_us", BigInteger),  # when it was entered here (received_us: on the letter)
    # received -> searched -> disclosed or refused (recorder.station.public_requests); NULL is
    # received (a request entered before statuses)
    Column("status", String(16)),
    Column("status_us", BigInteger),
    Column("status_by", String(128)),
    Column("status_note", Text),
)

deletions = Table(
    "deletions", schema,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recording_id", String(128), ForeignKey("recordings.recording_id"), nullable=False),
    Column("reason", String(32), nullable=False),  # "retention"
    Column("deleted_us", BigInteger, nullable=False),
    Column("deleted_by", String(128), nullable=False),
    Column("blobs_removed", Integer, nullable=False),
    Column("bytes_removed", BigInteger, nullable=False),
)

nonces = Table(
    "nonces", schema,
    Column("device_id", String(128), primary_key=True),
    Column("nonce", String(32), primary_key=True),
    Column("timestamp_us", BigInteger, nullable=False),
)

audit = Table(
    "audit", schema,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at_us", BigInteger, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("recording_id", String(128)),
    Column("line", Text, nullable=False),  # the entry's canonical JSON (what is hashed)
    Column("hash", String(64), nullable=False),
    UniqueConstraint("hash"),
)

# one row (id 1): the seq and hash of the newest audit entry; appends lock and update it, so two
# writers can never both extend the same entry
audit_head = Table(
    "audit_head", schema,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# every key a device has had: the current one (retired_us NULL) and those rotated out, so that
# recordings verified with an old key still verify and their exports carry that key
device_keys = Table(
    "device_keys", schema,
    Column("device_id", String(128), ForeignKey("devices.device_id"), primary_key=True),
    Column("fingerprint", String(64), primary_key=True),
    Column("public_key", String(128), nullable=False),
    Column("added_us", BigInteger, nullable=False),
    Column("added_by", String(128), nullable=False),
    Column("retired_us", BigInteger),
    Column("retired_by", String(128)),
)

# a revoked device (lost, stolen, retired): its requests are refused from then on
device_revocations = Table(
    "device_revocations", schema,
    Column("device_id", String(128), ForeignKey("devices.device_id"), primary_key=True),
    Column("revoked_us", BigInteger, nullable=False),  # when the station stopped trusting it
    Column("since_us", BigInteger, nullable=False),  # since when it may have been in other hands
    Column("revoked_by", String(128), nullable=False),
    Column("reason", Text, nullable=False),
)

# who wore which camera when, as the station was told (not as the camera claims)
officer_assignments = Table(
    "officer_assignments", schema,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(128), ForeignKey("devices.device_id"), nullable=False),
    Column("officer_id", String(128), nullable=False),
    Column("from_us", BigInteger, nullable=False),
    Column("to_us", BigInteger),  # NULL: until further notice
    Column("assigned_by", String(128), nullable=False),
    Column("assigned_us", BigInteger, nullable=False),
)
Index("officer_assignments_device", officer_assignments.c.device_id, officer_assignments.c.from_us)

# signed checkpoints of the audit chain (recorder.station.audit): the station's key signs the
# seq and hash of an entry, so a chain rewritten without that key, or rewritten before a
# checkpoint exported off the station, is caught
audit_checkpoints = Table(
    "audit_checkpoints", schema,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("line", Text, nullable=False),  # the canonical JSON that is signed
    Column("signature", String(128), nullable=False),  # base64 raw Ed25519 signature
)
Index("audit_checkpoints_seq", audit_checkpoints.c.seq)

# staff accounts for the web pages (recorder.station.accounts): an argon2id hash of the password,
# the TOTP secret (base32; the catalogue must be protected like the station key), the last TOTP
# step used (a code is never accepted twice) and the lockout count
users = Table(
    "users", schema,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("officer_id", String(128)),
    Column("team", String(128)),
    Column("password_hash", Text, nullable=False),  # argon2id, PHC string with its parameters
    Column("totp_secret", String(64)),  # NULL: no TOTP (MFA done by an identity provider)
    Column("totp_last_step", BigInteger),  # the 30 s step of the last code accepted
    Column("failures", Integer, nullable=False, default=0),  # consecutive failed logins
    Column("locked_until_us", BigInteger),
    Column("disabled_us", BigInteger),
    Column("created_us", BigInteger, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("changed_us", BigInteger, nullable=False),  # last add, reset or disable
)

# web sessions: only the SHA-256 of the token the browser holds is stored, so a copy of the
# catalogue opens no session; the CSRF token is per session
web_sessions = Table(
    "web_sessions", schema,
    Column("token_sha256", String(64), primary_key=True),
    Column("user_name", String(64), ForeignKey("users.name"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("client", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("last_seen_us", BigInteger, nullable=False),
    Column("ended_us", BigInteger),
    Column("end_reason", String(16)),  # logout, idle, max_age, disabled, reset
)
Index("web_sessions_user", web_sessions.c.user_name)


def upgrade() -> None:
    bind = op.get_bind()
    schema.create_all(bind, checkfirst=True)  # missing tables, with their indexes and triggers
    found = inspect(bind)
    for table in schema.sorted_tables:
        have = {column["name"] for column in found.get_columns(table.name)}
        for column in table.columns:
            # an older catalogue's missing columns are all nullable (as the catalogue added them
            # at open before revisions); a NOT NULL one could not be added without a value
            if column.name not in have and column.nullable:
                op.add_column(table.name, Column(column.name, column.type))
        indexes = {index["name"] for index in found.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                op.create_index(index.name, table.name, [c.name for c in index.columns])
    if bind.execute(select(audit_head.c.id)).first() is None:
        bind.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS_HASH))


def downgrade() -> None:
    raise NotImplementedError("a catalogue is never migrated down: restore the backup taken "
                              "before `bwv station migrate`")
