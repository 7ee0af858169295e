"""Export packages, public (subject access) requests and the web pages that list and play
recordings: packages check with sha256sum and `bwv verify --key`, a request holds exactly the
footage in its window, pages play the segments (ffprobe reads them over HTTP), and every view and
export is in the audit log with who did it."""

from __future__ import annotations

import datetime
import hashlib
import html
import json
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.staff import StaffBrowser, add_staff, logged_in, web
from support.station import (FakeClock, ServedStation, camera_key, ingest, make_recording,
                             make_store, serve_web)

from recorder import cli
from recorder.integrity.keys import DeviceKey
from recorder.station import audit, catalogue, retention
from recorder.station.errors import BadRequestError, ConflictError
from recorder.station.evidence_store import EvidenceStore
from recorder.station.export import export_recording
from recorder.station.public_requests import export_request, record_request

__all__ = ["camera_key", "web"]  # fixtures used by name below

# what is uploaded, catalogued or kept is checked here, not durability: fsync does nothing
pytestmark = pytest.mark.usefixtures("no_fsync")

EARLY = "2026-11-23T07:00:00.000000Z"
LATE = "2026-11-23T09:00:00.000000Z"


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock("2026-11-23T10:00:00+00:00")


@pytest.fixture()
def store(tmp_path: Path, camera_key: DeviceKey, clock: FakeClock) -> EvidenceStore:
    store = make_store(tmp_path / "station", clock=clock)
    store.enroll("cam7", camera_key.public_key, by="admin")
    for utc in (EARLY, LATE):
        assert ingest(store, make_recording(tmp_path / "recordings", camera_key,
                                            utc_start=utc)).verified
    return store


def rid(utc: str) -> str:
    return utc.replace("-", "").replace(":", "")[:15] + "Z-cam7"


def test_an_export_package_checks_with_sha256sum_and_bwv_verify(
        store: EvidenceStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export" / "package.zip"
    result = export_recording(store, rid(EARLY), out, by="insp-khan", purpose="court bundle")
    assert result.verified and result.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(out) as package:
        assert sorted(package.namelist()) == sorted([
            f"{rid(EARLY)}/000001.mp4", f"{rid(EARLY)}/000002.mp4",
            f"{rid(EARLY)}/manifest.jsonl", "device_key.pem", "verification.json",
            "audit.jsonl", "README.txt", "SHA256SUMS", "SHA256SUMS.sig", "station_key.pem"])
        package.extractall(unpacked)
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=unpacked, capture_output=True,
                           text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 8
    assert cli.main(["verify", "--key", str(unpacked / "device_key.pem"),
                     str(unpacked / rid(EARLY))]) == 0
    assert capsys.readouterr().out.startswith("bwv verify: OK")
    assert json.loads((unpacked / "verification.json").read_text())["ok"] is True
    actions = [json.loads(line)["action"] for line in
               (unpacked / "audit.jsonl").read_text().splitlines()]
    assert actions == ["ingest_segment", "ingest_segment", "ingest"]
    last = list(audit.entries(store.engine))[-1]
    assert (last.action, last.actor, last.detail["package_sha256"]) == (
        "export", "insp-khan", result.sha256)


def test_a_public_request_holds_only_the_footage_in_its_window(
        store: EvidenceStore, clock: FakeClock, tmp_path: Path) -> None:
    request = record_request(
        store, "SAR-2026-0042", "J. Smith", "stopped outside the station",
        catalogue.parse_utc("2026-11-23T08:59:00Z"), catalogue.parse_utc("2026-11-23T09:10:00Z"),
        by="foi-office", device_id="cam7")
    assert request.matches == (rid(LATE),)
    holds = retention.active_holds(store, rid(LATE))
    assert [(h.case_ref, h.placed_by) for h in holds] == [("SAR-2026-0042", "foi-office")]
    clock.advance_days(32)
    assert retention.sweep(store).deleted == [rid(EARLY)]
    exported = export_request(store, "SAR-2026-0042", tmp_path / "sar", by="foi-office")
    assert [r.path.name for r in exported] == [f"SAR-2026-0042-{rid(LATE)}.zip"]
    assert all(r.verified for r in exported)
    actions = [(e.action, e.recording_id) for e in audit.entries(store.engine)]
    assert actions[-4:] == [("public_request", None), ("hold", rid(LATE)),
                            ("delete", rid(EARLY)), ("export", rid(LATE))]
    assert audit.verify(store.engine).ok


def test_a_public_request_needs_a_window_and_a_unique_reference(store: EvidenceStore) -> None:
    start = catalogue.parse_utc(EARLY)
    with pytest.raises(BadRequestError, match="ends before it starts"):
        record_request(store, "R1", "A", "", start, start, by="x")
    record_request(store, "R1", "A", "", start, start + 1, by="x")
    with pytest.raises(ConflictError, match="already recorded"):
        record_request(store, "R1", "A", "", start, start + 1, by="x")


@pytest.fixture()
def officer(web: ServedStation, store: EvidenceStore) -> Iterator[StaffBrowser]:
    """A disclosure officer logged in to the staff pages."""
    browser = StaffBrowser(web.url, store)
    browser.login(add_staff(store, "insp-khan", "disclosure"))
    yield browser
    browser.close()


def test_the_list_page_shows_every_recording(officer: StaffBrowser) -> None:
    page = officer.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count("<tr>") == 3 and f'href="/recordings/{rid(EARLY)}"' in page.text
    assert "recorded 2, uploaded 2, auto deleted 0, held 0" in page.text


def test_a_recording_page_has_one_player_for_its_segments_and_the_view_is_audited(
        officer: StaffBrowser, store: EvidenceStore) -> None:
    page = officer.get(f"/recordings/{rid(EARLY)}")
    assert page.status_code == 200
    assert page.text.count("<video") == 1 and '<script src="/static/player.js"' in page.text
    mime = html.unescape(re.search(r"data-mime='([^']*)'", page.text)[1])
    assert mime.startswith('video/mp4; codecs="avc1.') and "mp4a.40.2" in mime
    segments = json.loads(html.unescape(re.search(r"data-segments='([^']*)'", page.text)[1]))
    assert [url.split("?")[0].rsplit("/", 1)[1] for url in segments] == ["000001.mp4",
                                                                         "000002.mp4"]
    entry = list(audit.entries(store.engine))[-1]
    assert entry.action == "view" and entry.actor == "insp-khan"
    assert entry.recording_id == rid(EARLY) and entry.detail["client"] == "127.0.0.1"


def test_the_media_is_the_stored_bytes_with_ranges_and_ffprobe_reads_it(
        web: ServedStation, officer: StaffBrowser, store: EvidenceStore) -> None:
    path = f"/recordings/{rid(EARLY)}/media/000001.mp4"
    whole = officer.get(path)
    digest = store.holdings(rid(EARLY)).segments["000001.mp4"]
    assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == digest
    assert whole.headers["content-type"] == "video/mp4"
    part = officer.get(path, headers={"Range": "bytes=0-7"})
    assert part.status_code == 206 and part.content[4:8] == b"ftyp"
    cookie = f"Cookie: bwv_session={officer.cookies['bwv_session']}\r\n"
    probe = subprocess.run(["ffprobe", "-v", "error", "-headers", cookie, "-show_entries",
                            "stream=codec_name", "-of", "json", web.url + path],
                           capture_output=True, text=True, check=True, timeout=60)
    codecs = sorted(s["codec_name"] for s in json.loads(probe.stdout)["streams"])
    assert codecs == ["aac", "h264"]
    refused = subprocess.run(["ffprobe", "-v", "error", web.url + path], capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode != 0  # without the session: the login page, no footage


def test_the_export_download_is_a_package_and_is_audited(officer: StaffBrowser,
                                                         store: EvidenceStore) -> None:
    officer.get(f"/recordings/{rid(LATE)}")
    response = officer.post(f"/recordings/{rid(LATE)}/export", {"purpose": "court bundle"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    entry = list(audit.entries(store.engine))[-1]
    assert entry.action == "export" and entry.actor == "insp-khan"
    assert entry.detail["package_sha256"] == hashlib.sha256(response.content).hexdigest()


def test_unknown_and_deleted_recordings(web: ServedStation, officer: StaffBrowser,
                                        store: EvidenceStore, clock: FakeClock) -> None:
    assert officer.get("/recordings/nope").status_code == 403  # as one not the visitor's
    clock.advance_days(40)
    retention.sweep(store)
    assert officer.get("/").status_code == 303  # 40 days idle: the session ended
    later = logged_in(web.url, store, name="do-lee")
    try:
        later.get("/")
        assert later.post(f"/recordings/{rid(EARLY)}/export", {"purpose": "x"}).status_code == 410
        assert later.get(f"/recordings/{rid(EARLY)}/media/000001.mp4").status_code == 404
    finally:
        later.close()


def test_a_request_about_the_pre_event_seconds_finds_that_recording(
        tmp_path: Path, camera_key: DeviceKey, clock: FakeClock) -> None:
    """The pre-event buffer is footage from before the header's utc_start: a window inside it
    matched nothing before (issue 14)."""
    store = make_store(tmp_path / "station", clock=clock)
    store.enroll("cam7", camera_key.public_key, by="admin")
    pressed = "2026-11-23T08:00:00.000000Z"  # 2 s of pre-event before it
    made = make_recording(tmp_path / "r", camera_key, utc_start=pressed, pre_event_us=2_000_000)
    assert ingest(store, made).verified
    start = catalogue.to_us(datetime.datetime.fromisoformat("2026-11-23T07:59:58.5+00:00"))
    request = record_request(store, "SAR-9", "A. Member", "outside the shop", start,
                             start + 1_000_000, by="do-lee")
    assert request.matches == (made.name,)
    row = store.recording(made.name)
    assert row.recorded_us - row.footage_start_us == 2_000_000


def test_a_manifest_cannot_claim_an_hour_of_pre_event(tmp_path: Path, camera_key: DeviceKey,
                                                      clock: FakeClock) -> None:
    store = make_store(tmp_path / "station", clock=clock)
    store.enroll("cam7", camera_key.public_key, by="admin")
    made = make_recording(tmp_path / "r", camera_key, pre_event_us=3600 * 1_000_000)
    assert ingest(store, made).verified
    row = store.recording(made.name)
    assert row.footage_start_us == row.recorded_us  # bounded: no claim moves it an hour


def test_a_marker_button_seeks_to_its_place_on_the_players_timeline(
        officer: StaffBrowser) -> None:
    page = officer.get(f"/recordings/{rid(EARLY)}")
    # the template recording's marker is 1 s after the header's start, its first frame at 0
    assert "data-seek='1.000'" in page.text
