"""The station's append-only audit log: one hash-chained entry per ingest, view, export, hold,
release, deletion and enrollment, saying who did what and when.

Each entry is one canonical JSON line, as in the manifest
(recorder.integrity.manifest.canonical_bytes):
``{"action","actor","at","detail","prev","recording_id","seq"}``, where ``prev`` is the hex SHA-256
of the previous entry's line plus ``\\n`` (64 zeros for the first). ``bwv station audit`` prints
the lines, so ``sed -n 3p audit.jsonl | sha256sum`` is line 4's ``prev``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from ..integrity import manifest
from . import catalogue
from .catalogue import GENESIS_HASH, audit, audit_head


class Action:
    """The actions the log records (plain strings, so readers accept newer ones)."""

    ENROLL = "enroll"
    INGEST_SEGMENT = "ingest_segment"
    INGEST = "ingest"  # a manifest arrived and the recording was verified
    REFUSED = "refused"  # an upload from an enrolled device that was refused
    VIEW = "view"
    EXPORT = "export"
    HOLD = "hold"
    RELEASE = "release"
    DELETE = "delete"


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
    """Add an entry inside the caller's transaction (it commits or rolls back with it)."""
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

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(engine: Engine) -> AuditCheck:
    """Recompute every entry's hash and link; compare the columns and the head with the lines."""
    result = AuditCheck()
    previous = GENESIS_HASH
    expected_seq = 1
    with engine.connect() as conn:
        for row in conn.execute(select(audit).order_by(audit.c.seq)):
            result.entries += 1
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
            previous, expected_seq = digest, row.seq + 1
        head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
    if head is None:
        result.problems.append("the audit head row is missing")
    elif (head.seq, head.hash) != (expected_seq - 1, previous):
        result.problems.append(f"the head says entry {head.seq} is the newest, but the log ends "
                               f"at entry {expected_seq - 1}: entries were removed from the end")
    return result
