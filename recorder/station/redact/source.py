"""The recording's footage as one clear MP4 file in a scratch directory: its segments, as the
camera wrote them, joined end to end (a recording's segments continue one timeline, so their
bytes joined play as one file: docs/formats.md), each encrypted one first decrypted with the
station's own decryptor (recorder.station.decrypt, as `bwv station export --decrypted` does).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import content_keys
from ..decrypt import decrypt_segment
from ..evidence_store import EvidenceStore

JOINED = "footage.mp4"


def clear_footage(store: EvidenceStore, recording_id: str, scratch: Path) -> tuple[Path, bool]:
    """The joined clear footage of ``recording_id`` written in ``scratch``, and whether the
    recording was encrypted. Raises UnknownRecordingError, RecordingGoneError, DecryptError,
    ContentKeyUnavailableError."""
    directory = scratch / recording_id
    store.materialize(recording_id, directory)
    key = content_keys.content_key(store, recording_id)
    joined = scratch / JOINED
    with open(joined, "wb") as out:
        for segment in sorted(directory.glob("*.mp4")):
            if key is None:
                with open(segment, "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
            else:
                out.write(decrypt_segment(segment.read_bytes(), key))
    shutil.rmtree(directory)
    return joined, key is not None
