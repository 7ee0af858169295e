"""Notes staff write on a recording: text, author and time, kept in the catalogue's ``notes``
table. Append-only: this module adds and reads notes and nothing edits or deletes one; each
note is an audit entry written in the same transaction."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from sqlalchemy import insert, select

from . import audit
from .audit import Action
from .catalogue import notes, recordings
from .errors import NoteError, UnknownRecordingError
from .evidence_store import EvidenceStore

NOTE_MAX_CHARS = 2000
ALLOWED_CONTROLS = {"\n", "\t"}


@dataclass(frozen=True)
class Note:
    id: int
    recording_id: str
    text: str
    author: str
    written_us: int


def checked_text(text: str) -> str:
    """``text`` as stored: line ends made \\n, the ends trimmed; NoteError when it is empty,
    longer than NOTE_MAX_CHARS, or holds control characters other than line ends and tabs."""
    cleaned = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not cleaned:
        raise NoteError("a note needs some text")
    if len(cleaned) > NOTE_MAX_CHARS:
        raise NoteError(f"a note is at most {NOTE_MAX_CHARS} characters (this one has "
                        f"{len(cleaned)})")
    if any(unicodedata.category(char) in ("Cc", "Cs") and char not in ALLOWED_CONTROLS
           for char in cleaned):
        raise NoteError("a note may not hold control characters")
    return cleaned


def add_note(store: EvidenceStore, recording_id: str, text: str, author: str,
             detail: dict[str, str] | None = None) -> Note:
    """Append a note to ``recording_id`` and its audit entry (``detail`` added to it, e.g. the
    client address). UnknownRecordingError for a recording the catalogue does not have."""
    cleaned = checked_text(text)
    now_us = store.clock()
    with store.write_lock, store.engine.begin() as conn:
        if conn.execute(select(recordings.c.recording_id)
                        .where(recordings.c.recording_id == recording_id)).first() is None:
            raise UnknownRecordingError(f"no recording {recording_id} in the catalogue")
        inserted = conn.execute(insert(notes).values(
            recording_id=recording_id, text=cleaned, author=author, written_us=now_us))
        (note_id,) = inserted.inserted_primary_key or (None,)
        if note_id is None:
            raise RuntimeError("the catalogue gave the new note no id")
        audit.append(conn, now_us, author, Action.NOTE, recording_id,
                     dict(detail or {}, note=note_id, chars=len(cleaned)))
    return Note(int(note_id), recording_id, cleaned, author, now_us)


def notes_of(store: EvidenceStore, recording_id: str) -> list[Note]:
    """The notes on ``recording_id``, oldest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(notes).where(notes.c.recording_id == recording_id)
                            .order_by(notes.c.id))
        return [Note(int(row.id), row.recording_id, row.text, row.author, int(row.written_us))
                for row in rows]
