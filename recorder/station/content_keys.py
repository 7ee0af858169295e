"""The content key of a held encrypted recording: read from the wrapped key in its signed
manifest header and unwrapped with the station's encryption private key, for the staff pages'
ClearKey licence (recorder.station.web.pages) and the export package (recorder.station.export).

A key unwrapped here lives in memory only; callers audit every release of one.
"""

from __future__ import annotations

from ..integrity import manifest
from ..integrity.content_key import ContentKey, UnwrapError, WrappedContentKey, unwrap
from .errors import StationError, UnknownRecordingError
from .evidence_store import EvidenceStore


class ContentKeyUnavailableError(StationError):
    """An encrypted recording's content key cannot be unwrapped at this station."""

    status = 500
    code = "content_key_unavailable"


class NoEncryptionKeyError(ContentKeyUnavailableError):
    """The station has no encryption private key file to unwrap with."""


class ContentKeyUnwrapError(ContentKeyUnavailableError):
    """The wrapped key does not open: wrapped for another station, or changed."""


def wrapped_key(store: EvidenceStore, recording_id: str) -> WrappedContentKey | None:
    """The wrapped content key in the recording's stored manifest header; None when the
    recording is in the clear. UnknownRecordingError when it has no manifest yet."""
    row = store.recording(recording_id)
    if row.manifest_sha256 is None:
        raise UnknownRecordingError(f"recording {recording_id} has no manifest yet")
    with store.blobs.open(row.manifest_sha256) as stored:
        header = manifest.read_lines(stored.read()).header
    return None if header is None else header.encryption


def content_key(store: EvidenceStore, recording_id: str) -> ContentKey | None:
    """The recording's content key, unwrapped with the station's encryption key (for the
    recording id and key id of the signed header); None when the recording is in the clear."""
    wrapped = wrapped_key(store, recording_id)
    if wrapped is None:
        return None
    private = store.identity.encryption
    if private is None:
        raise NoEncryptionKeyError(
            f"recording {recording_id} is encrypted, and this station has no encryption key "
            "file (station_encryption_key in its data directory): restore it from backup")
    try:
        return unwrap(wrapped, recording_id, private)
    except UnwrapError as exc:
        raise ContentKeyUnwrapError(
            f"the content key of recording {recording_id} does not open with this station's "
            f"encryption key ({exc})") from None
