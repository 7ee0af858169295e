"""One redaction, start to finish: the clear footage in a scratch directory, the redacted MP4
written beside ``out`` and linked into place only when whole (never over an existing file), and
an audit entry like an export's: who, when, the operations, the output's SHA-256.
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av

from ..audit import Action
from ..errors import ConflictError, StationError
from ..evidence_store import EvidenceStore
from ..export import sha256_of
from .detect import FaceDetector
from .plan import Plan
from .render import DETECT_EVERY, Encoding, Progress, Rendered, _quiet, render
from .source import clear_footage
from .track import Tracking


class RenderError(StationError):
    """The footage could not be decoded or the copy encoded (FFmpeg's message)."""

    code = "render_failed"


class OutputExistsError(ConflictError):
    """The redacted file's path is taken: nothing is overwritten."""


@dataclass(frozen=True)
class RedactionResult:
    path: Path
    sha256: str
    rendered: Rendered
    encrypted: bool


def redact_recording(store: EvidenceStore, plan: Plan, out: Path, by: str, *,
                     detector: FaceDetector | None = None, tracking: Tracking = Tracking(),
                     encoding: Encoding = Encoding(), stride: int = DETECT_EVERY,
                     progress: Progress = _quiet) -> RedactionResult:
    """Render ``plan`` of its recording to ``out`` (an MP4 that must not exist) and audit it."""
    if out.exists() or out.is_symlink():
        raise OutputExistsError(f"{out} exists: give another --out (nothing is overwritten)")
    detector = detector or FaceDetector()
    plan = Plan(plan.recording_id, plan.mask, plan.exclude_tracks, plan.mute, plan.bleep,
                detector.describe() | {"stride": stride})
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bwv-redact-") as scratch:
        footage, encrypted = clear_footage(store, plan.recording_id, Path(scratch))
        handle, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial",
                                           dir=out.parent)
        os.close(handle)
        try:
            try:
                rendered = render(footage, Path(partial), plan, detector, tracking, encoding,
                                  stride, progress)
            except av.error.FFmpegError as exc:
                raise RenderError(f"the footage of {plan.recording_id} could not be redacted: "
                                  f"{exc}") from None
            os.chmod(partial, 0o600)
            try:
                os.link(partial, out)  # atomic, and fails rather than replace a file
            except FileExistsError:
                raise OutputExistsError(f"{out} appeared while redacting: not overwritten") \
                    from None
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP):
                    raise
                os.rename(partial, out)  # no hard links on this file system
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    digest = sha256_of(out)
    masked = [track.id for track in rendered.tracks if track.id not in plan.exclude_tracks]
    store.record_access(by, Action.REDACT, plan.recording_id, {
        "output_sha256": digest, "operations": plan.operations(),
        "tracks_found": len(rendered.tracks), "tracks_masked": masked,
        "frames": rendered.frames, "boxes_masked": rendered.masked_boxes,
        "decrypted": encrypted})
    return RedactionResult(out, digest, rendered, encrypted)
