"""The station's append-only audit log: one hash-chained entry per ingest, view, export, hold,
release, deletion and enrollment, saying who did what and when.

Each entry is one canonical JSON line, as in the manifest
(recorder.integrity.manifest.canonical_bytes):
``{"action","actor","at","detail","prev","recording_id","seq"}``, where ``prev`` is the hex SHA-256
of the previous entry's line plus ``\\n`` (64 zeros for the first). ``bwv station audit`` prints
the lines, so ``sed -n 3p audit.jsonl | sha256sum`` is line 4's ``prev``.

A chain alone proves nothing against whoever can write the catalogue: they can remove entries and
recompute every hash after them. So the station signs **checkpoints** with its key (the seq and
hash of an entry, the station id and the station's time): every ``CHECKPOINT_EVERY`` entries, at
the first entry after ``CHECKPOINT_INTERVAL_US`` without one, every few minutes while serving
when the log moved, and on demand (``bwv station audit --checkpoint``), which prints the
checkpoint as one line to keep off the station (write-once storage, a second party). ``verify``
checks every stored checkpoint's signature and that its hash is still on the chain;
``verify_against`` does the same for checkpoints exported earlier, which catches even an
operator who holds the station key and re-signed the stored ones.
"""

from __future__ import annotations

import base64
import binascii
import json
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from ..integrity import keys, manifest
from . import catalogue
from .catalogue import GENESIS_HASH, audit, audit_checkpoints, audit_head
from .identity import StationIdentity

CHECKPOINT_FORMAT = "bwv-audit-checkpoint/1"
CHECKPOINT_EVERY = 100  # entries
CHECKPOINT_INTERVAL_US = 5 * 60 * 1_000_000
# the station identity that signs checkpoints for each catalogue engine (EvidenceStore registers
# it), so that every append, wherever it is called from, can checkpoint without a new argument
_signers: weakref.WeakKeyDictionary[Engine, StationIdentity] = weakref.WeakKeyDictionary()


class Action:
    """The actions the log records (plain strings, so readers accept newer ones)."""

    ENROLL = "enroll"
    INGEST_SEGMENT = "ingest_segment"
    INGEST = "ingest"  # a manifest arrived and the recording was verified
    REFUSED = "refused"  # an upload from an enrolled device that was refused
    VIEW = "view"
    VIEW_MEDIA = "view_media"  # footage fetched from the web pages (each request, its range)
    EXPORT = "export"
    REDACT = "redact"  # a redacted copy rendered (recorder.station.redact), its operations
    HOLD = "hold"
    RELEASE = "release"
    DELETE = "delete"
    # the staff pages (recorder.station.web), each naming the account and the client address
    LIST = "list"  # the recordings list or a search, with its filters
    PLAY = "play"  # one playback in the page's player (its first fetch of footage)
    DOWNLOAD = "download"  # a segment fetched outside a playback (every fetch)
    AUDIT_VIEW = "audit_view"  # the audit log read, with its filters
    ACCESS_REFUSED = "access_refused"  # a logged-in person asked for what their role may not
    REQUEST_VIEW = "request_view"  # the requests from the public, or one of them, shown
    NOTE = "note"  # a note added to a recording (recorder.station.notes)
    KEY_RELEASE = "key_release"  # an encrypted recording's content key given to a page's player
    # staff accounts and web sessions (recorder.station.accounts)
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"  # detail: the client and the reason; never the password/code
    LOGOUT = "logout"
    USER_ADD = "user_add"
    USER_DISABLE = "user_disable"
    USER_RESET = "user_reset"


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at_us: int
    actor: str
    action: str
    recording_id: str | None
    detail: Mapping[str, Any]
    line: str
    hash: str


def append(conn: Connection, at_us: int, actor: str, action: str, recording_id: str | None,
           detail: Mapping[str, Any] | None = None) -> AuditEntry:
    """Add an entry inside the caller's transaction (it commits or rolls back with it).

    One chain, whatever the number of writers: the head row is locked (``SELECT ... FOR
    UPDATE``) until the transaction ends, so appends from every thread and every station
    process on one PostgreSQL catalogue take their turn; the next writer's lock returns the head
    as the previous one committed it (READ COMMITTED re-reads a row it waited for), or as it
    was before if that one rolled back. On SQLite the one writer's BEGIN IMMEDIATE does it.
    Entries are thus numbered in commit order, and their ``at`` times (each process's clock,
    taken before the wait) may step back a little between processes: the chain's order is
    ``seq``, never ``at``. The head is meant to be the last lock a transaction takes (a
    recording's row first, then the append): a transaction that appends and then locks rows
    can deadlock with one that does the reverse, and PostgreSQL then aborts one of them."""
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)
                        .where(audit_head.c.id == 1).with_for_update()).one()
    seq = int(head.seq) + 1
    body = {"seq": seq, "prev": head.hash, "at": catalogue.iso(at_us), "actor": actor,
            "action": action, "recording_id": recording_id, "detail": dict(detail or {})}
    line = manifest.canonical_bytes(body).decode("utf-8")
    digest = manifest.line_hash(line.encode("utf-8") + b"\n")
    conn.execute(insert(audit).values(seq=seq, at_us=at_us, actor=actor, action=action,
                                      recording_id=recording_id, line=line, hash=digest))
    changed = conn.execute(update(audit_head).where(audit_head.c.id == 1)
                           .where(audit_head.c.seq == head.seq)
                           .values(seq=seq, hash=digest)).rowcount
    if changed != 1:
        raise RuntimeError("the audit head moved during an append: another writer raced; the "
                           "transaction is rolled back")
    signer = _signers.get(conn.engine)
    if signer is not None and (seq % CHECKPOINT_EVERY == 0 or _checkpoint_due(conn, at_us)):
        _insert_checkpoint(conn, signer, seq, digest, at_us)
    return AuditEntry(seq, at_us, actor, action, recording_id, body["detail"], line, digest)


def entries(engine: Engine, recording_id: str | None = None) -> Iterator[AuditEntry]:
    """Every entry in order (or those about one recording)."""
    query = select(audit).order_by(audit.c.seq)
    if recording_id is not None:
        query = query.where(audit.c.recording_id == recording_id)
    with engine.connect() as conn:
        for row in conn.execute(query):
            body = json.loads(row.line)
            yield AuditEntry(row.seq, row.at_us, row.actor, row.action, row.recording_id,
                             body.get("detail", {}), row.line, row.hash)


@dataclass
class AuditCheck:
    """The result of checking the chain: ``ok`` when every link holds."""

    entries: int = 0
    problems: list[str] = field(default_factory=list)
    checkpoints: int = 0  # signed checkpoints checked

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(engine: Engine, identity: StationIdentity | None = None) -> AuditCheck:
    """Recompute every entry's hash and link; compare the columns and the head with the lines.
    With the station's ``identity``, also check every stored checkpoint: signed by this
    station, and its hash is the recomputed hash of the entry at its seq."""
    result = AuditCheck()
    previous = GENESIS_HASH
    expected_seq = 1
    with engine.connect() as conn:
        stored = list(conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.id)))
        wanted = {int(row.seq) for row in stored}
        on_chain: dict[int, str] = {0: GENESIS_HASH}
        coverage = _Coverage(stored)
        for row in conn.execute(select(audit).order_by(audit.c.seq)):
            result.entries += 1
            coverage.see(int(row.seq), int(row.at_us))
            where = f"entry {row.seq}"
            try:
                body = manifest.parse_line(row.line.encode("utf-8"))
                canonical = manifest.canonical_bytes(body).decode("utf-8") == row.line
            except ValueError as exc:
                result.problems.append(f"{where}: the line is not valid JSON ({exc})")
                previous, expected_seq = row.hash, row.seq + 1
                continue
            if not canonical:
                result.problems.append(f"{where}: the line is not in canonical form: edited")
            if row.seq != expected_seq or body.get("seq") != row.seq:
                result.problems.append(f"{where}: expected seq {expected_seq} (line says "
                                       f"{body.get('seq')}): entries were deleted or inserted")
            if body.get("prev") != previous:
                result.problems.append(f"{where}: prev is not the hash of entry {row.seq - 1}: "
                                       "the entry before it was changed, removed or inserted")
            digest = manifest.line_hash(row.line.encode("utf-8") + b"\n")
            if digest != row.hash:
                result.problems.append(f"{where}: its stored hash is not the SHA-256 of its "
                                       "line: the line was edited")
            if (body.get("action"), body.get("actor"), body.get("recording_id")) != (
                    row.action, row.actor, row.recording_id) or body.get("at") != catalogue.iso(
                    row.at_us):
                result.problems.append(f"{where}: the columns do not match the hashed line")
            if row.seq in wanted:
                on_chain[row.seq] = digest
            previous, expected_seq = digest, row.seq + 1
        head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
    if head is None:
        result.problems.append("the audit head row is missing")
    elif (head.seq, head.hash) != (expected_seq - 1, previous):
        result.problems.append(f"the head says entry {head.seq} is the newest, but the log ends "
                               f"at entry {expected_seq - 1}: entries were removed from the end")
    if identity is not None:
        for row in stored:
            result.problems.extend(_stored_checkpoint_problems(row, identity, on_chain))
        result.checkpoints = len(stored)
        if coverage.missing:
            shown = ", ".join(str(seq) for seq in coverage.missing[:5])
            more = f" and {len(coverage.missing) - 5} more" if len(coverage.missing) > 5 else ""
            result.problems.append(
                f"entries {shown}{more} have no signed checkpoint where the station always "
                f"makes one (at entry 1, every {CHECKPOINT_EVERY}th, and at the first entry "
                f"{CHECKPOINT_INTERVAL_US // 60_000_000} minutes after the last one): "
                "checkpoints were removed, or the log was rewritten")
    return result


class _Coverage:
    """Where the station must have signed a checkpoint, by the rule ``append`` follows: at
    entry 1, at every ``CHECKPOINT_EVERY``-th entry, and at any entry made
    ``CHECKPOINT_INTERVAL_US`` or more after the newest checkpoint before it. Someone who
    removes checkpoint rows to rewrite the log unseen can then do so only for the newest
    entries (fewer than ``CHECKPOINT_EVERY``, and only by also rewriting their times): what
    exported checkpoints (``verify_against``) are for."""

    def __init__(self, stored: list[Any]) -> None:
        self.marks = sorted((int(row.seq), int(row.at_us)) for row in stored)
        self.at = {seq for seq, _ in self.marks}
        self.next = 0
        self.last_us: int | None = None  # the newest checkpoint time before the entry seen
        self.missing: list[int] = []

    def see(self, seq: int, at_us: int) -> None:
        while self.next < len(self.marks) and self.marks[self.next][0] < seq:
            mark_us = self.marks[self.next][1]
            self.last_us = mark_us if self.last_us is None else max(self.last_us, mark_us)
            self.next += 1
        if seq in self.at:
            return
        if (seq == 1 or seq % CHECKPOINT_EVERY == 0 or self.last_us is None
                or at_us - self.last_us >= CHECKPOINT_INTERVAL_US):
            self.missing.append(seq)


# -- signed checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement by the station: "entry ``seq`` of my audit log has hash ``hash``"."""

    seq: int
    hash: str
    station_id: str
    at_us: int
    line: str  # the canonical JSON that is signed
    signature: bytes

    def export_line(self) -> str:
        """One line of canonical JSON, the signed body plus ``signature`` (base64): what
        ``bwv station audit --checkpoint`` prints to keep off the station."""
        body = json.loads(self.line)
        body["signature"] = base64.b64encode(self.signature).decode("ascii")
        return manifest.canonical_bytes(body).decode("utf-8")


def sign_checkpoints(engine: Engine, identity: StationIdentity) -> None:
    """From now on, appends on ``engine`` checkpoint the chain with ``identity``'s key."""
    _signers[engine] = identity


def _checkpoint_due(conn: Connection, at_us: int) -> bool:
    last = conn.execute(select(audit_checkpoints.c.at_us)
                        .order_by(audit_checkpoints.c.id.desc()).limit(1)).scalar()
    return last is None or at_us - int(last) >= CHECKPOINT_INTERVAL_US


def _checkpoint_body(seq: int, digest: str, station_id: str, at_us: int) -> dict[str, Any]:
    return {"format": CHECKPOINT_FORMAT, "seq": seq, "hash": digest, "station_id": station_id,
            "at": catalogue.iso(at_us)}


def _insert_checkpoint(conn: Connection, identity: StationIdentity, seq: int, digest: str,
                       at_us: int) -> Checkpoint:
    line = manifest.canonical_bytes(
        _checkpoint_body(seq, digest, identity.station_id, at_us)).decode("utf-8")
    signature = identity.sign(line.encode("utf-8"))
    conn.execute(insert(audit_checkpoints).values(
        seq=seq, hash=digest, at_us=at_us, line=line,
        signature=base64.b64encode(signature).decode("ascii")))
    return Checkpoint(seq, digest, identity.station_id, at_us, line, signature)


def checkpoint(engine: Engine, identity: StationIdentity, at_us: int,
               only_if_moved: bool = False) -> Checkpoint | None:
    """Sign the newest entry now. With ``only_if_moved`` (the serve loop), None when the
    newest checkpoint already covers it."""
    with engine.begin() as conn:
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)
                            .where(audit_head.c.id == 1).with_for_update()).one()
        if only_if_moved:
            last = conn.execute(select(audit_checkpoints.c.seq)
                                .order_by(audit_checkpoints.c.id.desc()).limit(1)).scalar()
            if last is not None and int(last) >= int(head.seq):
                return None
        return _insert_checkpoint(conn, identity, int(head.seq), str(head.hash), at_us)


def _signature_problem(body: Mapping[str, Any], signature: bytes,
                       identity: StationIdentity) -> str | None:
    """Why a checkpoint body is not one this station signed, or None."""
    if body.get("format") != CHECKPOINT_FORMAT:
        return f"it is not a {CHECKPOINT_FORMAT} checkpoint"
    if body.get("station_id") != identity.station_id:
        return (f"it is of station {body.get('station_id')!r}, not this station "
                f"({identity.station_id})")
    message = manifest.canonical_bytes(body)
    if not keys.verify_signature(identity.public_key, signature, message):
        return "its signature does not verify with this station's key: forged or edited"
    return None


def _chain_problem(seq: Any, digest: Any, on_chain: Mapping[int, str]) -> str | None:
    """Why entry ``seq`` of the log does not have hash ``digest``, or None."""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return f"its seq {seq!r} is not an entry number"
    if seq not in on_chain:
        return (f"the log has no entry {seq} any more: entries were removed and the chain "
                "recomputed")
    if on_chain[seq] != digest:
        return (f"entry {seq} no longer has the hash the station signed ({str(digest)[:16]}…): "
                "entries were removed, edited or inserted and the chain recomputed")
    return None


def _stored_checkpoint_problems(row: Any, identity: StationIdentity,
                                on_chain: Mapping[int, str]) -> list[str]:
    where = f"checkpoint {row.id} (entry {row.seq})"
    try:
        body = json.loads(row.line)
        signature = base64.b64decode(row.signature, validate=True)
    except (ValueError, binascii.Error):
        return [f"{where}: not a readable checkpoint"]
    if not isinstance(body, dict):
        return [f"{where}: not a readable checkpoint"]
    if (body.get("seq"), body.get("hash")) != (row.seq, row.hash):
        return [f"{where}: its columns do not match its signed line"]
    problems = [_signature_problem(body, signature, identity),
                _chain_problem(body.get("seq"), body.get("hash"), on_chain)]
    return [f"{where}: {problem}" for problem in problems if problem is not None]


def parse_exported(line: str) -> tuple[dict[str, Any], bytes]:
    """The signed body and the signature of an exported checkpoint line; ValueError if it is
    not one."""
    value = json.loads(line)
    if not isinstance(value, dict) or not isinstance(value.get("signature"), str):
        raise ValueError("not a checkpoint line (a JSON object with a signature)")
    signature = base64.b64decode(value.pop("signature"), validate=True)
    return value, signature


def verify_against(engine: Engine, identity: StationIdentity,
                   lines: Iterable[str]) -> AuditCheck:
    """Check checkpoints exported earlier (one per line) against the log as it is now: each
    must be signed by this station and its entry must still have the hash it had."""
    exported = []
    result = AuditCheck()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            exported.append((number, *parse_exported(line)))
        except (ValueError, binascii.Error) as exc:
            result.problems.append(f"exported line {number}: not a checkpoint ({exc})")
    wanted = {body.get("seq") for _, body, _ in exported}
    on_chain: dict[int, str] = {0: GENESIS_HASH}
    with engine.connect() as conn:
        for row in conn.execute(select(audit.c.seq, audit.c.line).order_by(audit.c.seq)):
            if row.seq in wanted:
                on_chain[row.seq] = manifest.line_hash(row.line.encode("utf-8") + b"\n")
    for number, body, signature in exported:
        result.checkpoints += 1
        for problem in (_signature_problem(body, signature, identity),
                        _chain_problem(body.get("seq"), body.get("hash"), on_chain)):
            if problem is not None:
                result.problems.append(f"exported line {number} (entry {body.get('seq')}): "
                                       f"{problem}")
    return result
