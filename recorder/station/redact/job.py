"""One redaction, start to finish: the clear footage in a scratch directory, the redacted MP4
written beside ``out``, given C2PA Content Credentials (``credentials``) and linked into place
only when whole (never over an existing file), the signed report beside it (``report``), and an
audit entry like an export's: who, when, the operations, the output's and the report's SHA-256.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import av

from ...private_files import link_into_place
from ..audit import Action
from ..errors import ConflictError, StationError
from ..evidence_store import EvidenceStore
from ..content_ca import ContentCa
from ..export import sha256_of
from .credentials import add_credentials, unavailable
from .detect import FaceDetector
from .plan import Plan
from .report import Original, ReportFiles, check_free, make_report, write_report
from .render import DETECT_EVERY, Encoding, Found, Progress, Rendered, _quiet, render
from .source import clear_footage
from .track import Tracking


class RenderError(StationError):
    """The footage could not be decoded or the copy encoded (FFmpeg's message)."""

    code = "render_failed"


class OutputExistsError(ConflictError):
    """The redacted file's path is taken: nothing is overwritten."""


class CredentialsError(StationError):
    """c2pa-python is there but could not sign the copy (its message)."""

    code = "credentials_failed"


@dataclass(frozen=True)
class RedactionResult:
    path: Path
    sha256: str
    rendered: Rendered
    encrypted: bool
    report: ReportFiles
    # as the report has it: {"added": True, "ca_sha256": ...} or {"added": False, "reason": ...}
    credentials: dict[str, object]


def redact_recording(store: EvidenceStore, plan: Plan, out: Path, by: str, *,
                     detector: FaceDetector | None = None, tracking: Tracking = Tracking(),
                     encoding: Encoding = Encoding(), stride: int = DETECT_EVERY,
                     progress: Progress = _quiet, found: Found | None = None,
                     detail: Mapping[str, object] | None = None,
                     approved: bool = True) -> RedactionResult:
    """Render ``plan`` of its recording to ``out`` (an MP4 that must not exist), with Content
    Credentials where c2pa-python is installed, write its signed report and audit it.
    ``found``: the recording's face tracks found before with the same detector, tracking and
    stride (recorder.station.redact.review), so that the ids the plan names are those;
    ``detail``: added to the audit entry (the public request, the staff page's client);
    ``approved``: ``by`` approves the copy as they render it (the CLI), else the report leaves
    the approval to a second person (recorder.station.redact.approval)."""
    if out.exists() or out.is_symlink():
        raise OutputExistsError(f"{out} exists: give another --out (nothing is overwritten)")
    check_free(out)
    original = Original.of(store, plan.recording_id)
    missing = unavailable()
    made: dict[str, object] = {"added": False, "reason": missing}
    # the CA before the work: a CA file others may read is refused before minutes of rendering
    authority = None if missing is not None else ContentCa.load_or_create(
        store.identity.key.path.parent, store.identity.station_id, _utc(store.clock()))
    detector = detector or FaceDetector()
    plan = dataclasses.replace(plan, detector=detector.describe() | {"stride": stride})
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bwv-redact-") as scratch:
        footage, encrypted = clear_footage(store, plan.recording_id, Path(scratch))
        handle, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial",
                                           dir=out.parent)
        os.close(handle)
        try:
            try:
                rendered = render(footage, Path(partial), plan, detector, tracking, encoding,
                                  stride, progress, found)
            except av.error.FFmpegError as exc:
                raise RenderError(f"the footage of {plan.recording_id} could not be redacted: "
                                  f"{exc}") from None
            os.chmod(partial, 0o600)
            if authority is not None:
                partial, made = _with_credentials(authority, store.identity.station_id,
                                                  Path(partial), out, original, plan)
            try:
                link_into_place(partial, out)
            except FileExistsError:
                raise OutputExistsError(f"{out} appeared while redacting: not overwritten") \
                    from None
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    digest = sha256_of(out)
    report = write_report(store, make_report(store, original, plan, rendered, out, digest, by,
                                             made, encrypted, approved), out)
    masked = [track.id for track in rendered.tracks if track.id not in plan.exclude_tracks]
    store.record_access(by, Action.REDACT, plan.recording_id, {
        "output_sha256": digest, "operations": plan.operations(),
        "tracks_found": len(rendered.tracks), "tracks_masked": masked,
        "frames": rendered.frames, "boxes_masked": rendered.masked_boxes,
        "decrypted": encrypted, "report_sha256": report.sha256,
        "content_credentials": missing is None, **(detail or {})})
    return RedactionResult(out, digest, rendered, encrypted, report, made)


def _with_credentials(authority: ContentCa, station_id: str, rendered: Path, out: Path,
                      original: Original, plan: Plan) -> tuple[str, dict[str, object]]:
    """``rendered`` copied beside itself with the C2PA manifest in it, signed with the
    certificate of the station's CA: the copy's path, and what the report says of it. The
    rendered file is removed."""
    import c2pa

    signed = rendered.with_name(rendered.name + ".c2pa")
    try:
        add_credentials(rendered, signed, station_id, original, plan,
                        authority.signer_cert_pem, authority.signer_key_pem, out.name)
    except c2pa.C2paError as exc:
        if signed.exists():
            signed.unlink()
        raise CredentialsError(f"the Content Credentials of {out.name} could not be signed: "
                               f"{exc}") from None
    finally:
        rendered.unlink()
    return str(signed), {"added": True, "format": "C2PA", "alg": "ES256",
                         "ca_sha256": authority.ca_fingerprint}


def _utc(microseconds: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(microseconds / 1e6, datetime.timezone.utc)
