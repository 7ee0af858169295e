"""Notes on a recording (issue 14): a person who may see a recording adds a note on its page
(CSRF token, audited as a note), notes are shown escaped with author and time, never edited or
deleted, bounded in length, kept in the catalogue on SQLite and on PostgreSQL, and go into the
force's export package (not into a package for the public)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from sqlalchemy.exc import DatabaseError
from support.staff import StaffBrowser, add_staff
from support.station import (FakeClock, ServedStation, camera_key, catalogue_url, ingest,
                             make_recording, new_store, postgres_cluster, serve_web)
from support.http import http

from recorder.integrity.keys import DeviceKey
from recorder.station import audit, devices
from recorder.station.catalogue import notes as notes_table
from recorder.station.errors import NoteError, UnknownRecordingError
from recorder.station.evidence_store import EvidenceStore
from recorder.station.export import export_recording
from recorder.station.notes import NOTE_MAX_CHARS, add_note, checked_text, notes_of

__all__ = ["camera_key", "catalogue_url", "new_store", "postgres_cluster"]

pytestmark = pytest.mark.usefixtures("no_fsync")

RECORDING = "20261123T070000Z-cam7"
ATTACK = "<script>alert('x')</script> & <img src=x onerror=alert(1)>"


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock("2026-11-23T10:00:00+00:00")


@pytest.fixture()
def store(new_store: Callable[[], EvidenceStore], tmp_path: Path,
          camera_key: DeviceKey) -> EvidenceStore:
    """A station on each catalogue backend with one recording of officer 4121's camera."""
    store = new_store()
    store.enroll("cam7", camera_key.public_key, by="admin")
    devices.assign(store, "cam7", "4121", by="admin", from_us=store.clock() - 86_400_000_000)
    assert ingest(store, make_recording(tmp_path / "r", camera_key,
                                        utc_start="2026-11-23T07:00:00.000000Z")).verified
    return store


@pytest.fixture()
def web(store: EvidenceStore) -> Iterator[ServedStation]:
    served = serve_web(store)
    yield served
    served.stop()


def logged_in(web: ServedStation, store: EvidenceStore, name: str, role: str,
              officer_id: str | None = None) -> StaffBrowser:
    browser = StaffBrowser(web.url, store)
    assert browser.login(add_staff(store, name, role, officer_id=officer_id)).status_code == 303
    return browser


def note_entries(store: EvidenceStore) -> list[audit.AuditEntry]:
    return [entry for entry in audit.entries(store.engine) if entry.action == "note"]


# --- the catalogue, on both backends ------------------------------------------------------------


def test_notes_are_appended_in_order_with_their_audit_entries(store: EvidenceStore,
                                                              clock: FakeClock) -> None:
    first = add_note(store, RECORDING, "  seen at 07:01, suspect leaves  \r\n", "pc-jones")
    clock.now_us += 60_000_000
    second = add_note(store, RECORDING, "line one\nline two\ttabbed", "sgt-okafor")
    assert [n.text for n in notes_of(store, RECORDING)] == [
        "seen at 07:01, suspect leaves", "line one\nline two\ttabbed"]
    assert [n.author for n in notes_of(store, RECORDING)] == ["pc-jones", "sgt-okafor"]
    assert second.written_us - first.written_us == 60_000_000
    entries = note_entries(store)
    assert [(e.actor, e.recording_id, e.detail["note"]) for e in entries] == [
        ("pc-jones", RECORDING, first.id), ("sgt-okafor", RECORDING, second.id)]
    assert audit.verify(store.engine).ok


def test_a_bad_note_is_refused_and_leaves_nothing(store: EvidenceStore) -> None:
    for text, says in (("", "needs some text"), ("  \n ", "needs some text"),
                       ("x" * (NOTE_MAX_CHARS + 1), "at most"),
                       ("bell\x07", "control characters"), ("nul\x00", "control characters"),
                       ("escape \x1b[31m red", "control characters")):
        with pytest.raises(NoteError, match=says):
            add_note(store, RECORDING, text, "pc-jones")
    with pytest.raises(UnknownRecordingError):
        add_note(store, "20261123T090000Z-cam9", "about nothing", "pc-jones")
    assert notes_of(store, RECORDING) == [] and note_entries(store) == []
    assert checked_text("x" * NOTE_MAX_CHARS) == "x" * NOTE_MAX_CHARS


def test_the_catalogue_itself_refuses_to_edit_or_delete_a_note(store: EvidenceStore) -> None:
    note = add_note(store, RECORDING, "what was seen", "pc-jones")
    for change in (update(notes_table).where(notes_table.c.id == note.id)
                   .values(text="what was not seen"),
                   update(notes_table).values(author="someone else"),
                   delete(notes_table).where(notes_table.c.id == note.id),
                   delete(notes_table)):
        with pytest.raises(DatabaseError, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(change)
    assert notes_of(store, RECORDING) == [note]


def test_the_notes_table_has_no_way_to_change_a_note_in_the_code() -> None:
    # append-only by construction: no module of the station updates or deletes from it
    import recorder.station as package

    root = Path(package.__file__).parent
    for source in root.rglob("*.py"):
        text = source.read_text()
        for verb in ("update(notes", "delete(notes", "update(notes_table",
                     "delete(notes_table"):
            assert verb not in text, f"{source} changes notes: {verb}"
    assert notes_table.name == "notes"


# --- the page -----------------------------------------------------------------------------------


def test_an_officer_adds_a_note_that_is_shown_escaped_with_author_and_time(
        web: ServedStation, store: EvidenceStore) -> None:
    officer = logged_in(web, store, "pc-jones", "officer", "4121")
    page = officer.get(f"/recordings/{RECORDING}")
    assert page.status_code == 200 and "add note" in page.text
    added = officer.post(f"/recordings/{RECORDING}/notes", {"text": ATTACK})
    assert added.status_code == 303 and added.headers["location"] == f"/recordings/{RECORDING}"
    shown = officer.get(f"/recordings/{RECORDING}").text
    assert ATTACK not in shown and "<script>alert" not in shown and "<img src=x" not in shown
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;img" in shown
    assert "pc-jones, 2026-11-23 10:00:00 UTC" in shown
    [entry] = note_entries(store)
    assert entry.actor == "pc-jones" and entry.detail["client"] == "127.0.0.1"
    officer.close()


def test_a_note_without_the_csrf_token_is_refused(web: ServedStation,
                                                  store: EvidenceStore) -> None:
    officer = logged_in(web, store, "pc-jones", "officer", "4121")
    officer.get(f"/recordings/{RECORDING}")
    forged = officer.post(f"/recordings/{RECORDING}/notes", {"text": "planted"}, csrf=False)
    assert forged.status_code == 403
    wrong = officer.post(f"/recordings/{RECORDING}/notes", {"text": "planted",
                                                            "csrf": "not-the-token"})
    assert wrong.status_code == 403
    anonymous = http.post(f"{web.url}/recordings/{RECORDING}/notes", data={"text": "x"},
                          timeout=10)
    assert anonymous.status_code == 401
    assert notes_of(store, RECORDING) == []
    officer.close()


def test_a_role_that_may_not_see_the_recording_cannot_add_a_note(web: ServedStation,
                                                                 store: EvidenceStore) -> None:
    for name, role, officer_id in (("pc-patel", "officer", "5555"),
                                   ("aud-singh", "auditor", None), ("admin-roe", "admin", None)):
        who = logged_in(web, store, name, role, officer_id)
        who.get("/")
        answer = who.post(f"/recordings/{RECORDING}/notes", {"text": "mine now"})
        assert answer.status_code == 403, role
        assert RECORDING not in answer.text or role != "officer"
        refused = [e for e in audit.entries(store.engine)
                   if e.actor == name and e.action == "access_refused"]
        assert refused and refused[-1].detail["wanted"] == "note"
        who.close()
    assert notes_of(store, RECORDING) == []


def test_a_too_long_or_empty_note_gets_an_error_page(web: ServedStation,
                                                     store: EvidenceStore) -> None:
    custodian = logged_in(web, store, "cust-ward", "custodian")
    custodian.get(f"/recordings/{RECORDING}")
    for text in ("x" * (NOTE_MAX_CHARS + 1), "   ", "\x1b[2J"):
        answer = custodian.post(f"/recordings/{RECORDING}/notes", {"text": text})
        assert answer.status_code == 400 and "text/html" in answer.headers["content-type"]
        assert "Traceback" not in answer.text
    assert notes_of(store, RECORDING) == []
    custodian.close()


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_a_note_cannot_be_edited_or_deleted_through_the_pages(
        web: ServedStation, store: EvidenceStore, method: str) -> None:
    officer = logged_in(web, store, "pc-jones", "officer", "4121")
    officer.get(f"/recordings/{RECORDING}")
    officer.post(f"/recordings/{RECORDING}/notes", {"text": "first words"})
    [note] = notes_of(store, RECORDING)
    for path in (f"/recordings/{RECORDING}/notes", f"/recordings/{RECORDING}/notes/{note.id}"):
        answer = officer.request(method, path, form={"text": "other words",
                                                     "csrf": officer.csrf})
        assert answer.status_code in (404, 405)
    assert [n.text for n in notes_of(store, RECORDING)] == ["first words"]
    officer.close()


# --- the export package -------------------------------------------------------------------------


def test_notes_go_into_the_forces_package_but_not_into_a_public_one(
        store: EvidenceStore, tmp_path: Path) -> None:
    add_note(store, RECORDING, "suspect's face visible at 0:12", "pc-jones")
    full = export_recording(store, RECORDING, tmp_path / "full.zip", "do-lee", "CPS file")
    with zipfile.ZipFile(full.path) as package:
        [line] = package.read("notes.jsonl").decode().splitlines()
        readme = package.read("README.txt").decode()
        sums = package.read("SHA256SUMS").decode()
    assert json.loads(line) == {"at": "2026-11-23T10:00:00.000000Z", "author": "pc-jones",
                                "text": "suspect's face visible at 0:12"}
    assert "notes.jsonl" in readme and "  notes.jsonl\n" in sums
    public = export_recording(store, RECORDING, tmp_path / "public.zip", "do-lee",
                              "subject access", request_ref="SAR-1")
    with zipfile.ZipFile(public.path) as package:
        assert "notes.jsonl" not in package.namelist()
        assert "notes.jsonl" not in package.read("README.txt").decode()
