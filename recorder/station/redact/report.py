"""The signed redaction report: what a redacted copy was made from, how, by whom and when,
written beside the copy and signed with the station key as an export package's SHA256SUMS is.

For ``--out FILE.mp4`` two files (docs/redaction.md, "The signed report"):

  ``FILE.mp4.report.json``      one line of canonical JSON (keys sorted, no spaces, UTF-8, no
                                floats, as the manifest's lines) and a newline
  ``FILE.mp4.report.json.sig``  the station's raw Ed25519 signature (64 bytes) of those bytes,
                                which ``openssl pkeyutl -verify -rawin`` checks with the
                                station's public key

Both are 0600, written whole under a temporary name and linked into place (never over a file).
The report holds: the station (its id, its public key in PEM, and that key's fingerprint, which
a recipient compares out of band as for an export package); the original recording (id,
device, its manifest's SHA-256 and every segment's, from the catalogue: the hashes the camera
signed, as an export package has them); every operation (``Plan.operations``) and what the
detector found and masked; the output (file name, size, SHA-256, whether it carries Content
Credentials and if not, why); who rendered it and when (the station's clock), and who
approved it and when: the same person at render for ``bwv station redact`` (its ``--by``); for
a copy rendered on the staff pages, a second person later, in a separate approval record
signed by the station beside the report (recorder.station.redact.approval), so the report
itself says ``"approval": "separate"`` and names no approver.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...integrity import keys
from ...integrity.manifest import canonical_bytes
from ...private_files import FILE_MODE, link_into_place
from ..catalogue import iso
from ..errors import ConflictError
from ..evidence_store import EvidenceStore
from ..export import sha256_of
from .plan import Plan
from .render import Rendered

REPORT_FORMAT = "bwv-redaction-report/1"
REPORT_SUFFIX = ".report.json"
SIGNATURE_SUFFIX = ".report.json.sig"


class ReportExistsError(ConflictError):
    """The report's path is taken: nothing is overwritten."""


@dataclass(frozen=True)
class Original:
    """The recording a redacted copy is made from, as the catalogue holds it."""

    recording_id: str
    device_id: str
    manifest_sha256: str
    segments: tuple[tuple[str, str], ...]  # (file, sha256), in the recording's order

    @classmethod
    def of(cls, store: EvidenceStore, recording_id: str) -> Original:
        row = store.recording(recording_id)
        held = store.holdings(recording_id).segments
        return cls(recording_id, row.device_id, row.manifest_sha256 or "",
                   tuple(sorted(held.items())))

    def to_json(self) -> dict[str, Any]:
        return {"recording_id": self.recording_id, "device_id": self.device_id,
                "manifest_sha256": self.manifest_sha256,
                "segments": [{"file": file, "sha256": sha} for file, sha in self.segments]}


@dataclass(frozen=True)
class ReportFiles:
    path: Path
    signature: Path
    sha256: str


def report_paths(out: Path) -> tuple[Path, Path]:
    """The report and signature files of the redacted copy ``out``."""
    return out.with_name(out.name + REPORT_SUFFIX), out.with_name(out.name + SIGNATURE_SUFFIX)


def make_report(store: EvidenceStore, original: Original, plan: Plan, rendered: Rendered,
                out: Path, output_sha256: str, by: str, credentials: dict[str, Any],
                decrypted: bool, approved: bool = True) -> dict[str, Any]:
    """The report as a JSON object (integers, strings, booleans: canonical JSON takes no float).
    ``approved``: ``by`` approves the copy as they render it (the CLI); else a second person
    approves it later (recorder.station.redact.approval)."""
    now = iso(store.clock())
    approval: dict[str, str] = ({"approved_by": by, "approved_at": now} if approved
                                else {"approval": "separate"})
    visible = [track.id for track in rendered.tracks if track.id in plan.exclude_tracks]
    return {
        "format": REPORT_FORMAT,
        "station_id": store.identity.station_id,
        "station_key_sha256": store.identity.fingerprint,
        "station_public_key": keys.public_key_pem(store.identity.public_key),
        "original": original.to_json() | {"decrypted_by_station": decrypted},
        "operations": plan.operations(),
        "result": {"frames": rendered.frames, "duration_ms": round(rendered.duration_s * 1000),
                   "width": rendered.width, "height": rendered.height,
                   "tracks_found": len(rendered.tracks),
                   "tracks_masked": [track.id for track in rendered.tracks
                                     if track.id not in visible],
                   "tracks_visible": visible, "boxes_masked": rendered.masked_boxes},
        "output": {"file": out.name, "bytes": out.stat().st_size, "sha256": output_sha256,
                   "content_credentials": credentials},
        "rendered_by": by,
        "rendered_at": now,
        **approval,
    }


def write_report(store: EvidenceStore, report: dict[str, Any], out: Path) -> ReportFiles:
    """Write ``report`` and its signature beside ``out``; ReportExistsError if either exists."""
    path, signature = report_paths(out)
    return write_signed(store, report, path, signature)


def check_free(out: Path) -> None:
    """Refuse before any work when the report's or signature's path is taken."""
    for path in report_paths(out):
        if os.path.lexists(path):
            raise ReportExistsError(f"{path} exists: give another --out (nothing is "
                                    "overwritten)")


def write_signed(store: EvidenceStore, record: dict[str, Any], path: Path,
                 signature: Path) -> ReportFiles:
    """``record`` as one line of canonical JSON at ``path`` and the station's signature of it
    at ``signature``, neither over an existing file (ReportExistsError)."""
    body = canonical_bytes(record) + b"\n"
    _write_new(path, body)
    _write_new(signature, store.identity.sign(body))
    return ReportFiles(path, signature, sha256_of(body))


def _write_new(path: Path, data: bytes) -> None:
    """``data`` at ``path`` (0600, fsynced), written beside it and linked into place."""
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial",
                                       dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            os.fchmod(file.fileno(), FILE_MODE)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        try:
            link_into_place(partial, path)
        except FileExistsError:
            raise ReportExistsError(f"{path} appeared while redacting: not overwritten") \
                from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
