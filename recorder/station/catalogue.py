"""The station's catalogue as SQLAlchemy Core tables: devices, officers, recordings, segments,
markers, holds, notes, deletions, request nonces, the audit log, staff accounts, web sessions,
the redacted copies of public requests with their approval, and the face tracks found for a
redaction's review. One schema for SQLite (embedded) and PostgreSQL (fleet): only the URL
differs. Times are integer microseconds since the Unix epoch.

``metadata`` is the newest schema revision (recorder/station/migrations, Alembic): a change to
a table here needs its revision there (its README says how), or tests/test_station_migrate.py
fails. A new catalogue is made at the newest revision; an existing one is brought to it by
`bwv station migrate` (migrate below), never at open.
"""

from __future__ import annotations

import datetime
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError as AlembicError
from sqlalchemy import (URL, BigInteger, Boolean, Column, Connection, Engine, Float, ForeignKey,
                        Index, Integer, LargeBinary, MetaData, String, Table, Text,
                        UniqueConstraint, create_engine, event, insert, inspect, make_url, text)
from sqlalchemy.exc import OperationalError

from ..private_files import FILE_MODE, open_private

metadata = MetaData()

devices = Table(
    "devices", metadata,
    Column("device_id", String(128), primary_key=True),
    Column("public_key", String(128), nullable=False),  # base64 DER SPKI, as in manifests
    Column("fingerprint", String(64), nullable=False),
    Column("enrolled_us", BigInteger, nullable=False),
    Column("enrolled_by", String(128), nullable=False),
)

officers = Table(
    "officers", metadata,
    Column("officer_id", String(128), primary_key=True),
    Column("first_seen_us", BigInteger, nullable=False),
)

# status: receiving (segments arriving, no verified manifest yet), verified, failed, deleted
recordings = Table(
    "recordings", metadata,
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
    "segments", metadata,
    Column("recording_id", String(128), ForeignKey("recordings.recording_id"), primary_key=True),
    Column("file", String(128), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("received_us", BigInteger, nullable=False),
    Column("blob_deleted", Boolean, nullable=False, default=False),
)
Index("segments_sha256", segments.c.sha256)

markers = Table(
    "markers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recording_id", String(128), ForeignKey("recordings.recording_id"), nullable=False),
    Column("utc", String(40), nullable=False),
    Column("pts_us", BigInteger),
)

holds = Table(
    "holds", metadata,
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
    "notes", metadata,
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
    "public_requests", metadata,
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
    "deletions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recording_id", String(128), ForeignKey("recordings.recording_id"), nullable=False),
    Column("reason", String(32), nullable=False),  # "retention"
    Column("deleted_us", BigInteger, nullable=False),
    Column("deleted_by", String(128), nullable=False),
    Column("blobs_removed", Integer, nullable=False),
    Column("bytes_removed", BigInteger, nullable=False),
)

nonces = Table(
    "nonces", metadata,
    Column("device_id", String(128), primary_key=True),
    Column("nonce", String(32), primary_key=True),
    Column("timestamp_us", BigInteger, nullable=False),
)

audit = Table(
    "audit", metadata,
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
    "audit_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# every key a device has had: the current one (retired_us NULL) and those rotated out, so that
# recordings verified with an old key still verify and their exports carry that key
device_keys = Table(
    "device_keys", metadata,
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
    "device_revocations", metadata,
    Column("device_id", String(128), ForeignKey("devices.device_id"), primary_key=True),
    Column("revoked_us", BigInteger, nullable=False),  # when the station stopped trusting it
    Column("since_us", BigInteger, nullable=False),  # since when it may have been in other hands
    Column("revoked_by", String(128), nullable=False),
    Column("reason", Text, nullable=False),
)

# who wore which camera when, as the station was told (not as the camera claims)
officer_assignments = Table(
    "officer_assignments", metadata,
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
    "audit_checkpoints", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("line", Text, nullable=False),  # the canonical JSON that is signed
    Column("signature", String(128), nullable=False),  # base64 raw Ed25519 signature
)
Index("audit_checkpoints_seq", audit_checkpoints.c.seq)

# the redacted copies rendered for a public request on the staff pages (recorder.station.redact.
# approval): one row per copy, bound to its file's and signed report's SHA-256, and the
# decision of a second person with the approve_redaction permission (NULL: not decided yet)
redacted_copies = Table(
    "redacted_copies", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reference", String(128), nullable=False),  # the public request
    Column("recording_id", String(128), nullable=False),
    Column("file", String(255), nullable=False),  # ID-redacted-N.mp4 in the request's directory
    Column("sha256", String(64), nullable=False),
    Column("report_sha256", String(64), nullable=False),
    Column("rendered_by", String(128), nullable=False),
    Column("rendered_us", BigInteger, nullable=False),
    Column("decision", String(16)),  # approved or rejected
    Column("decided_by", String(128)),
    Column("decided_us", BigInteger),
    Column("reason", Text),  # why it was rejected
    Column("approval_sha256", String(64)),  # the signed approval record beside the report
    UniqueConstraint("reference", "file"),
)
Index("redacted_copies_request", redacted_copies.c.reference, redacted_copies.c.recording_id)

# the face tracks found in a recording for its review on the staff pages (recorder.station.
# redact.review), so that a restarted station shows and renders the same tracks: one row per
# review (the frame count, duration, first frame time, size, the detector), one per track (its
# detections as JSON [[frame, x, y, w, h], ...], its still as a small JPEG)
redaction_reviews = Table(
    "redaction_reviews", metadata,
    Column("recording_id", String(128), primary_key=True),
    Column("frames", Integer, nullable=False),
    Column("duration_s", Float, nullable=False),  # as detect_faces measured it
    Column("first_num", BigInteger, nullable=False),  # the first frame's time, a fraction
    Column("first_den", BigInteger, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("detector", Text, nullable=False),  # JSON: the detector and tracking settings
    Column("found_by", String(128), nullable=False),
    Column("found_us", BigInteger, nullable=False),
)

redaction_tracks = Table(
    "redaction_tracks", metadata,
    Column("recording_id", String(128), ForeignKey("redaction_reviews.recording_id"),
           primary_key=True),
    Column("track_id", Integer, primary_key=True),
    Column("detections", Text, nullable=False),
    Column("still", LargeBinary),  # at most review.MAX_STILL_BYTES
)

# staff accounts for the web pages (recorder.station.accounts): an argon2id hash of the password,
# the TOTP secret (base32; the catalogue must be protected like the station key), the last TOTP
# step used (a code is never accepted twice) and the lockout count
users = Table(
    "users", metadata,
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
    "web_sessions", metadata,
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

GENESIS_HASH = "0" * 64
CATALOGUE_FILE = "catalogue.sqlite3"


def sqlite_url(data_dir: Path) -> str:
    """The embedded catalogue's URL inside the station's data directory."""
    return f"sqlite:///{data_dir / CATALOGUE_FILE}"


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # transactions are begun by _sqlite_begin, not implicitly by the driver
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock at the start, so a transaction that reads (the audit head)
    # and then writes cannot fail halfway because another process (`bwv station hold` beside
    # `serve`) wrote in between; others wait up to busy_timeout instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _engine(url: str) -> Engine:
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        _private_sqlite_files(engine.url.database)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def open_catalogue(url: str) -> Engine:
    """An engine for ``url``. An empty database becomes a new catalogue at the newest schema
    revision (stamped); an existing one must be at that revision: CatalogueSchemaError when it
    is behind (`bwv station migrate` brings it up, one explicit step, however many station
    processes share it) or ahead (migrated by a newer version)."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            state = _schema_state(conn)
        if state.empty:
            with engine.begin() as conn:
                _lock_schema(conn)
                state = _schema_state(conn)  # another process may have made it meanwhile
                if state.empty:
                    metadata.create_all(conn)
                    conn.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS_HASH))
                    _migration_context(conn).stamp(_script(), "head")
                    return engine
        problem = _schema_problem(state, engine.url)
        if problem is not None:
            raise CatalogueSchemaError(problem)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _private_sqlite_files(database: str | None) -> None:
    """Make the catalogue file 0600 before SQLite opens it: SQLite creates its -wal and -shm
    files with the database file's mode, so they are 0600 too, whatever the umask."""
    if database in (None, "", ":memory:") or str(database).startswith("file:"):
        return
    path = Path(str(database))
    os.close(open_private(path, os.O_RDWR))
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.chmod(side, FILE_MODE)  # made by an older version, with the umask's mode


# --- schema revisions (Alembic; recorder/station/migrations)

# the PostgreSQL advisory lock (pg_advisory_xact_lock) a migration or a new catalogue's creation
# holds until its transaction ends, so that two `bwv station migrate` (or two processes making a
# new catalogue) never both run: the second waits, then finds the work done. SQLite's
# BEGIN IMMEDIATE already lets one writer in at a time.
SCHEMA_LOCK_ID = 0x6277765F736368  # "bwv_sch"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class CatalogueSchemaError(Exception):
    """A catalogue this version cannot use as it is: made before schema revisions or at an
    older revision (run `bwv station migrate`), or at a revision this version does not know."""


@dataclass(frozen=True)
class SchemaState:
    """What a database holds: no station tables (``empty``), station tables without a
    revision (made before revisions: ``revision`` None), or a catalogue at ``revision``."""

    empty: bool
    revision: str | None


def migrations_config(connection: Connection | None = None,
                      script_location: Path = MIGRATIONS) -> Config:
    """Alembic's configuration, made in code (no alembic.ini): the revisions shipped in this
    package, run on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


@functools.cache
def _script(script_location: Path = MIGRATIONS) -> ScriptDirectory:
    return ScriptDirectory.from_config(migrations_config(script_location=script_location))


def head_revision(script_location: Path = MIGRATIONS) -> str:
    """The newest revision this version knows: what its catalogue.metadata is."""
    head = _script(script_location).get_current_head()
    assert head is not None, "the catalogue's migrations have no revision"
    return head


def _migration_context(conn: Connection) -> MigrationContext:
    return MigrationContext.configure(conn)


def _schema_state(conn: Connection) -> SchemaState:
    heads = _migration_context(conn).get_current_heads()
    if len(heads) > 1:
        raise CatalogueSchemaError(f"the catalogue is at several revisions at once "
                                   f"({', '.join(heads)}): this version cannot use it")
    if heads:
        return SchemaState(empty=False, revision=heads[0])
    return SchemaState(empty=not inspect(conn).has_table(audit_head.name), revision=None)


def _known(revision: str, script_location: Path = MIGRATIONS) -> bool:
    try:
        return _script(script_location).get_revision(revision) is not None
    except AlembicError:
        return False


def _shown_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _schema_problem(state: SchemaState, url: URL,
                    script_location: Path = MIGRATIONS) -> str | None:
    """Why the catalogue at ``state`` cannot be used by this version, on one line, or None."""
    head = head_revision(script_location)
    if state.revision == head:
        return None
    shown = _shown_url(url)
    if state.revision is not None and not _known(state.revision, script_location):
        return (f"the catalogue {shown} is at schema revision {state.revision}, which this "
                f"version does not know (it needs {head}): a newer version migrated it; run "
                "that version, or restore the backup taken before its migrate")
    at = ("made before schema revisions" if state.revision is None
          else f"at schema revision {state.revision}")
    return (f"the catalogue {shown} is {at}, and this version needs revision {head}: back it "
            "up, then run `bwv station migrate` with the same --data and --db")


def _lock_schema(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK_ID})


def migrate(url: str, say: Callable[[str], None] = print,
            script_location: Path = MIGRATIONS) -> tuple[str | None, str]:
    """Bring the catalogue at ``url`` to the newest revision, in one transaction (on
    PostgreSQL holding the schema lock, so a second migrate waits and then finds nothing to
    do); says what it does. A catalogue made before revisions first goes through revision
    0001, which brings whatever it holds up to release 0.1.0's schema, and is stamped.
    Returns the revision it was at (None: before revisions) and the one it is at now.
    CatalogueSchemaError when the catalogue is at a revision this version does not know."""
    engine = _engine(url)
    shown = _shown_url(engine.url)
    head = head_revision(script_location)
    try:
        with engine.begin() as conn:
            _lock_schema(conn)
            state = _schema_state(conn)
            if state.revision == head:
                say(f"catalogue {shown}: at revision {head}, the newest: nothing to do")
                return head, head
            if state.revision is not None and not _known(state.revision, script_location):
                problem = _schema_problem(state, engine.url, script_location)
                assert problem is not None
                raise CatalogueSchemaError(problem)
            start = ("empty" if state.empty else "made before schema revisions"
                     if state.revision is None else f"revision {state.revision}")
            say(f"catalogue {shown}: {start} -> revision {head}")
            steps = list(_script(script_location).iterate_revisions(
                head, state.revision or "base"))
            for step in reversed(steps):
                say(f"  {step.down_revision or 'base'} -> {step.revision}: "
                    f"{(step.doc or '').splitlines()[0] if step.doc else ''}")
            command.upgrade(migrations_config(conn, script_location), "head")
            after = _schema_state(conn).revision
            assert after == head, (after, head)
        say(f"catalogue {shown}: now at revision {head}")
        return state.revision, head
    finally:
        engine.dispose()


def missing_catalogue(url: str) -> str | None:
    """Why ``url`` holds no station catalogue (a SQLite file that does not exist, a database
    without the station's tables, one that cannot be opened), or None when it holds one.
    Creates nothing: a mistyped path must not become an empty station."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(str(parsed.database)).is_file():
            return f"the catalogue {parsed.database} does not exist"
    shown = parsed.render_as_string(hide_password=True)
    engine = create_engine(parsed, future=True)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(audit_head.name):
                return f"the catalogue {shown} has no station tables"
    except OperationalError as exc:
        return f"the catalogue {shown} cannot be opened: {str(exc.orig).strip()}"
    finally:
        engine.dispose()
    return None


def to_us(moment: datetime.datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    delta = moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
# the microsecond times a datetime can hold (years 1 to 9999): every stored time is inside them,
# so none overflows a BIGINT, and nothing read back from the catalogue can crash a rendering
MIN_US = to_us(datetime.datetime.min.replace(tzinfo=datetime.timezone.utc))
MAX_US = to_us(datetime.datetime.max.replace(tzinfo=datetime.timezone.utc))
INVALID_DATE = "invalid date"


def in_range(value: int) -> bool:
    """Whether ``value`` is a time a datetime (and so every page and command) can show."""
    return MIN_US <= value <= MAX_US


def clamp_us(value: int) -> int:
    """``value`` brought into [MIN_US, MAX_US]: what the catalogue stores for a computed time
    (a retention date past year 9999, say)."""
    return max(MIN_US, min(MAX_US, value))


def from_us(value: int) -> datetime.datetime:
    """The aware datetime of a microsecond time, clamped to years 1..9999: total, so that a
    camera's absurd clock can never crash a page or a command."""
    return _EPOCH + datetime.timedelta(microseconds=clamp_us(value))


def iso(value: int) -> str:
    """The manifest's UTC form of a microsecond time, e.g. "2026-11-23T07:04:27.123456Z";
    "invalid date" for a time outside years 1..9999."""
    if not in_range(value):
        return INVALID_DATE
    return from_us(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def shown(value: int | None, length: int = 19) -> str:
    """A time for people: "2026-11-23 07:04:27 UTC" (``length`` 10: the day only), "" for
    none, "invalid date" for one outside years 1..9999."""
    if value is None:
        return ""
    if not in_range(value):
        return INVALID_DATE
    text = iso(value)[:length].replace("T", " ")
    return text if length <= 10 else text + " UTC"


def parse_utc(text: str) -> int:
    """Microseconds since the epoch of a manifest UTC string; ValueError when it is not one."""
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return to_us(moment)
