"""Four eyes on a disclosure: a redacted copy rendered for a public request on the staff pages is
disclosed only after a second person, not the one who rendered it, with the
``approve_redaction`` permission has watched it and approved it.

Each copy is a row of the catalogue's ``redacted_copies`` (recorded when its render ends), bound
to the SHA-256 of the file and of its signed report. An approval names the copy's SHA-256 (the
one the approver's page showed): it is refused when a newer copy of the recording was rendered
since, when the copy is decided already, when the file on disk no longer has that SHA-256, and
when the approver rendered it. Approving writes an approval record beside the report, signed by
the station as the report is (``FILE.mp4.approval.json`` and ``.approval.json.sig``), naming
the copy's and the report's SHA-256, who rendered it and when, who approved it and when. The
request's export discloses a recording's newest copy only when it is approved: a re-render
leaves the recording with a newer, undecided copy, so an earlier approval no longer counts.
A rejection needs a reason; the copy is then never disclosed (render it again).
Every decision is an audit entry, written in the same transaction as the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from ...integrity import keys
from .. import audit
from ..catalogue import iso, redacted_copies
from ..errors import BadRequestError, ConflictError, StationError
from ..evidence_store import EvidenceStore
from ..export import sha256_of
from .report import REPORT_SUFFIX, ReportFiles, write_signed

APPROVAL_FORMAT = "bwv-redaction-approval/1"
APPROVAL_SUFFIX = ".approval.json"
APPROVAL_SIGNATURE_SUFFIX = ".approval.json.sig"
APPROVED, REJECTED = "approved", "rejected"
APPROVE_ACTION, REJECT_ACTION = "redaction_approve", "redaction_reject"  # audit actions
MAX_REASON = 2000


class NotNewestError(ConflictError):
    """The copy named is not the recording's newest (re-rendered since) or is decided already."""


class OwnCopyError(StationError):
    """The person who rendered a copy may not approve it."""

    status = 403
    code = "own_copy"


class CopyChangedError(ConflictError):
    """The file on disk no longer has the SHA-256 recorded when it was rendered."""


@dataclass(frozen=True)
class Copy:
    """A redacted copy of a request's recording, as the catalogue holds it."""

    reference: str
    recording_id: str
    file: str
    sha256: str
    report_sha256: str
    rendered_by: str
    rendered_us: int
    decision: str | None
    decided_by: str | None
    decided_us: int | None
    reason: str | None

    @classmethod
    def of(cls, row: Any) -> Copy:
        return cls(row.reference, row.recording_id, row.file, row.sha256, row.report_sha256,
                   row.rendered_by, row.rendered_us, row.decision, row.decided_by,
                   row.decided_us, row.reason)

    @property
    def approved(self) -> bool:
        return self.decision == APPROVED

    def status(self) -> str:
        """One line for the pages."""
        if self.decision == APPROVED:
            return f"approved by {self.decided_by}"
        if self.decision == REJECTED:
            return f"rejected by {self.decided_by}: {self.reason}"
        return f"awaiting approval by a second person (rendered by {self.rendered_by})"


def approval_paths(output: Path) -> tuple[Path, Path]:
    """The approval record and its signature beside the redacted copy ``output``."""
    return (output.with_name(output.name + APPROVAL_SUFFIX),
            output.with_name(output.name + APPROVAL_SIGNATURE_SUFFIX))


def record_copy(store: EvidenceStore, reference: str, recording_id: str, output: Path,
                sha256: str, report_sha256: str, by: str) -> None:
    """Record a copy just rendered (undecided)."""
    with store.write_lock, store.engine.begin() as conn:
        conn.execute(insert(redacted_copies).values(
            reference=reference, recording_id=recording_id, file=output.name, sha256=sha256,
            report_sha256=report_sha256, rendered_by=by, rendered_us=store.clock()))


def copies(store: EvidenceStore, reference: str) -> list[Copy]:
    """The request's copies, oldest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(redacted_copies)
                            .where(redacted_copies.c.reference == reference)
                            .order_by(redacted_copies.c.id)).all()
    return [Copy.of(row) for row in rows]


def newest(store: EvidenceStore, reference: str) -> dict[str, Copy]:
    """The newest copy of each of the request's recordings: the one its export would disclose."""
    found: dict[str, Copy] = {}
    for copy in copies(store, reference):
        found[copy.recording_id] = copy
    return found


def undecided(store: EvidenceStore) -> list[Copy]:
    """Every request's newest copies that await a decision, oldest first."""
    with store.engine.connect() as conn:
        references = conn.execute(select(redacted_copies.c.reference)
                                  .where(redacted_copies.c.decision.is_(None))
                                  .distinct()).scalars().all()
    waiting = [copy for reference in references for copy in newest(store, str(reference))
               .values() if copy.decision is None]
    return sorted(waiting, key=lambda copy: copy.rendered_us)


def decide(store: EvidenceStore, directory: Path, reference: str, recording_id: str,
           sha256: str, by: str, approve: bool, reason: str = "",
           detail: dict[str, Any] | None = None) -> Copy:
    """Approve or reject the recording's newest copy, which must have ``sha256``; audited.
    ``directory``: where the request's copies are (the approval record is written there)."""
    reason = reason.strip()[:MAX_REASON]
    if not approve and not reason:
        raise BadRequestError("a rejection needs its reason")
    # the copy's hash before the lock (a long file must not hold up ingest); checked against
    # the row inside the transaction below
    on_disk = _hash_of(directory / _newest_file(store, reference, recording_id))
    now = store.clock()
    with store.write_lock, store.engine.begin() as conn:
        row = conn.execute(select(redacted_copies)
                           .where(redacted_copies.c.reference == reference)
                           .where(redacted_copies.c.recording_id == recording_id)
                           .order_by(redacted_copies.c.id.desc()).limit(1)
                           .with_for_update()).first()
        if row is None:
            raise NotNewestError(f"{recording_id} has no redacted copy for request {reference}")
        if row.sha256 != sha256:
            raise NotNewestError(f"{recording_id} was rendered again since that copy was shown: "
                                 f"watch the newest copy, {row.file}, before deciding")
        if row.decision is not None:
            raise NotNewestError(f"{row.file} is {row.decision} already ({row.decided_by})")
        if row.rendered_by == by:
            raise OwnCopyError(f"{by} rendered {row.file}: a second person approves it")
        output = directory / row.file
        if on_disk.get(row.file) != row.sha256:
            raise CopyChangedError(f"{row.file} on disk is not the copy rendered (SHA-256 "
                                   "differs): render it again")
        values: dict[str, Any] = {"decision": APPROVED if approve else REJECTED,
                                  "decided_by": by, "decided_us": now,
                                  "reason": None if approve else reason}
        written: ReportFiles | None = None
        if approve:
            written = write_signed(store, _record(store, row, by, now), *approval_paths(output))
            values["approval_sha256"] = written.sha256
        conn.execute(update(redacted_copies).where(redacted_copies.c.id == row.id)
                     .values(**values))
        audit.append(conn, now, by, APPROVE_ACTION if approve else REJECT_ACTION, recording_id,
                     {"request": reference, "redacted": row.file, "sha256": row.sha256,
                      "report_sha256": row.report_sha256, "rendered_by": row.rendered_by,
                      **({"approval_sha256": written.sha256} if written else
                         {"reason": reason}), **(detail or {})})
        decided = conn.execute(select(redacted_copies)
                               .where(redacted_copies.c.id == row.id)).one()
    return Copy.of(decided)


def _newest_file(store: EvidenceStore, reference: str, recording_id: str) -> str:
    copy = newest(store, reference).get(recording_id)
    return copy.file if copy is not None else ""


def _hash_of(path: Path) -> dict[str, str]:
    """{file name: SHA-256} of ``path`` when it is a file, else empty."""
    return {path.name: sha256_of(path)} if path.name and path.is_file() else {}


def _record(store: EvidenceStore, row: Any, by: str, now: int) -> dict[str, Any]:
    """The approval record: canonical JSON, signed by the station as the report is."""
    return {
        "format": APPROVAL_FORMAT,
        "station_id": store.identity.station_id,
        "station_key_sha256": store.identity.fingerprint,
        "station_public_key": keys.public_key_pem(store.identity.public_key),
        "request": row.reference,
        "recording_id": row.recording_id,
        "output": {"file": row.file, "sha256": row.sha256},
        "report": {"file": row.file + REPORT_SUFFIX, "sha256": row.report_sha256},
        "rendered_by": row.rendered_by,
        "rendered_at": iso(row.rendered_us),
        "approved_by": by,
        "approved_at": iso(now),
    }


def disclosable(store: EvidenceStore, directory: Path, copy: Copy) -> str | None:
    """Why ``copy`` (a recording's newest) may not be disclosed, or None when it may: it is
    approved, its file still has the SHA-256 approved, and its approval record is there."""
    if copy.decision is None:
        return f"{copy.file} awaits approval by a second person"
    if copy.decision == REJECTED:
        return f"{copy.file} was rejected by {copy.decided_by} ({copy.reason}): render it again"
    output = directory / copy.file
    if not output.is_file() or sha256_of(output) != copy.sha256:
        return f"{copy.file} on disk is not the copy approved"
    if not all(path.is_file() for path in approval_paths(output)):
        return f"{copy.file}: its approval record is missing"
    return None
