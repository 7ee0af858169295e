"""The staff pages in a real browser (issue 14): Debian's chromium under Playwright logs in
through the login form with a password and the TOTP code of the moment, a supervisor plays a
recording of their team across a segment boundary in the page's one player, flags it as
evidence through the page's form, is refused the audit log; an auditor then finds that hold,
under the supervisor's name, in the audit page. Screenshots are kept (support.browser)."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from support.browser import browser, page, page_problems, screenshot  # noqa: F401
from support.staff import Staff, add_staff, web
from support.station import (ServedStation, camera_key, ingest, make_recording, make_store,
                             serve_web)

from recorder.integrity.keys import DeviceKey
from recorder.station import accounts, audit, devices, public_requests, retention
from recorder.station.evidence_store import EvidenceStore

__all__ = ["camera_key", "web"]  # fixtures used by name below

pytestmark = pytest.mark.usefixtures("no_fsync")


@pytest.fixture()
def store(tmp_path: Path, camera_key: DeviceKey) -> EvidenceStore:
    store = make_store(tmp_path / "station")
    store.enroll("cam7", camera_key.public_key, by="admin")
    devices.assign(store, "cam7", "4121", by="admin", from_us=0)
    assert ingest(store, make_recording(tmp_path / "r", camera_key, seconds=6)).verified
    return store


def log_in(page: Any, web: ServedStation, store: EvidenceStore, who: Staff) -> None:
    """Through the form, as a person does: name, password, the app's code."""
    page.goto(web.url + "/")
    assert "/login" in page.url
    page.fill("input[name=name]", who.name)
    page.fill("input[name=password]", who.password)
    assert who.secret is not None
    page.fill("input[name=code]", accounts.totp_code(who.secret, store.clock()))
    page.click("text=log in")
    page.wait_for_url(web.url + "/")


def test_a_supervisor_plays_flags_and_is_refused_and_the_auditor_sees_it(
        page: Any, browser: Any, web: ServedStation, store: EvidenceStore) -> None:
    add_staff(store, "pc-jones", "officer", officer_id="4121", team="blue")
    supervisor = add_staff(store, "sgt-okafor", "supervisor", team="blue")
    [row] = store.list_recordings()
    problems = page_problems(page)
    log_in(page, web, store, supervisor)
    assert row.recording_id in page.content()
    screenshot(page, "staff-list-supervisor")

    page.click(f"text={row.recording_id}")
    player = page.locator("#player")
    player.evaluate("video => { video.playbackRate = 2; return video.play(); }")
    # segment 1 ends at 2 s: the one player plays on into segment 2
    page.wait_for_function("() => document.querySelector('#player').currentTime > 2.6",
                           timeout=15_000)
    assert page.locator("[role=alert]").count() == 0
    screenshot(page, "staff-recording-playing")

    page.fill("input[name=reason]", "assault on an officer")
    page.fill("input[name=case]", "CASE-77")
    page.click("text=place hold")
    page.wait_for_url(f"{web.url}/recordings/{row.recording_id}")
    assert "CASE-77" in page.content()
    assert [h.case_ref for h in retention.active_holds(store, row.recording_id)] == ["CASE-77"]

    answer = page.goto(web.url + "/audit")
    assert answer is not None and answer.status == 403 and "Not allowed" in page.content()
    screenshot(page, "staff-refused")
    # the refusal just asked for, and the favicon chromium asks for of itself: nothing else
    unexpected = [p for p in problems.all()
                  if not p.endswith(("/favicon.ico)", f"{web.url}/audit)"))]
    assert unexpected == [], problems.all()

    mine = [e for e in audit.entries(store.engine) if e.actor == "sgt-okafor"]
    actions = [e.action for e in mine]
    # each recording page's player is one playback entry, however many segments it fetched
    # (the page was shown twice: before and after the hold)
    assert actions.count("play") == actions.count("view") == 2
    assert "hold" in actions and "login" in actions
    assert any(e.action == "access_refused" and e.detail["wanted"] == "audit" for e in mine)

    auditor = add_staff(store, "aud-singh", "auditor")
    context = browser.new_context()
    try:
        other = context.new_page()
        log_in(other, web, store, auditor)
        other.goto(f"{web.url}/audit?user=sgt-okafor&recording={row.recording_id}")
        text = other.content()
        assert "CASE-77" in text and "play" in text
        screenshot(other, "staff-audit")
    finally:
        context.close()


def test_a_disclosure_officer_takes_a_request_from_intake_to_review_and_is_refused_the_original(
        page: Any, browser: Any, web: ServedStation, store: EvidenceStore,
        camera_key: DeviceKey, tmp_path: Path) -> None:
    """A written request about 07:58-07:59 UTC, which only the pre-event seconds of a recording
    started at 08:00 cover: logged through the form, matched and held, reviewed; its export is
    refused while no redacted copy exists (the original never goes to a requester), then while
    the copy the officer rendered in the browser awaits approval; a supervisor watches it and
    approves it in a browser of their own, and the export then downloads the zip of the copy
    with its report and approval record (the details of redaction and approval are
    tests/test_station_redact_web.py). Every step is in the audit log."""
    early = make_recording(tmp_path / "r2", camera_key, utc_start="2026-11-23T08:00:00.000000Z",
                           pre_event_us=90_000_000)  # footage from 07:58:30
    assert ingest(store, early).verified
    officer = add_staff(store, "do-lee", "disclosure")
    log_in(page, web, store, officer)
    page.click("text=requests from the public")
    page.click("text=log a new request")
    for name, value in (("reference", "SAR-2026-0042"), ("requester", "A. Member"),
                        ("received", "2026-11-24"), ("from", "2026-11-23T07:58"),
                        ("to", "2026-11-23T07:59"), ("place", "High Street"),
                        ("description", "stopped and spoken to outside the bank")):
        page.fill(f"input[name={name}]", value)
    page.click("text=log the request")
    page.wait_for_url(f"{web.url}/requests/SAR-2026-0042")
    assert early.name in page.locator("ul.held").inner_text()
    assert "received" in page.locator("p.status").inner_text()
    assert "2026-12-25" in page.content()  # 31 days from the letter of 24 November
    screenshot(page, "request-received")

    page.click("text=the matches are reviewed")
    page.wait_for_url(f"{web.url}/requests/SAR-2026-0042")
    assert "searched" in page.locator("p.status").inner_text()
    with page.expect_response(lambda answer: answer.url.endswith("/export")) as refused:
        page.click("text=export and disclose")
    assert refused.value.status == 400
    assert "no recording has a redacted copy yet" in refused.value.text()
    page.goto(f"{web.url}/requests/SAR-2026-0042")
    assert "searched" in page.locator("p.status").inner_text()
    screenshot(page, "request-export-refused")

    steps = [(e.action, e.detail.get("to")) for e in audit.entries(store.engine)
             if e.actor == "do-lee"]
    for step in (("public_request", None), ("hold", None), ("public_request_status", "searched")):
        assert step in steps, steps
    assert ("export", None) not in steps and ("public_request_status", "disclosed") not in steps

    # redacted in the browser: the pages reload themselves while the work runs
    page.click("a.redact")
    redact_url = page.url
    page.click("text=find the faces")
    wait_for_text(page, redact_url, "render the redacted copy")
    page.click("text=render the redacted copy")
    name = f"{early.name}-redacted-1.mp4"
    wait_for_text(page, redact_url, f"rendered {name} (100%)")
    screenshot(page, "request-rendered")
    page.goto(f"{web.url}/requests/SAR-2026-0042")
    assert "awaiting approval by a second person" in page.locator("ul.held").inner_text()
    with page.expect_response(lambda answer: answer.url.endswith("/export")) as waiting:
        page.click("text=export and disclose")
    assert waiting.value.status == 400 and "awaits approval" in waiting.value.text()

    # a second person, in a browser of their own, watches the copy and approves it
    supervisor = add_staff(store, "sgt-okafor", "supervisor", team="blue")
    context = browser.new_context()
    try:
        other = context.new_page()
        log_in(other, web, store, supervisor)
        other.click("text=redacted copies awaiting approval")
        other.click(f"text={name}")
        other.wait_for_function("() => document.querySelector('video').readyState >= 1",
                                timeout=15_000)
        screenshot(other, "request-approve")
        other.click("text=approve this copy for disclosure")
        other.wait_for_selector("text=approved by sgt-okafor")
    finally:
        context.close()

    page.goto(f"{web.url}/requests/SAR-2026-0042")
    assert "approved by sgt-okafor" in page.locator("ul.held").inner_text()
    with page.expect_download() as download:
        page.click("text=export and disclose")
    with zipfile.ZipFile(download.value.path()) as bundle:
        assert sorted(bundle.namelist()) == [f"redacted/{name}{suffix}" for suffix in (
            "", ".approval.json", ".approval.json.sig", ".report.json", ".report.json.sig")]
    assert public_requests.request_state(store, "SAR-2026-0042").status == "disclosed"


def wait_for_text(page: Any, url: str, text: str) -> None:
    """Load ``url`` until it shows ``text`` (the page reloads itself while work runs: loading
    it afresh is what the reload does)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        page.goto(url)
        if text in page.content():
            return
        time.sleep(0.5)
    raise AssertionError(f"{url} did not show {text!r} in 120 s")
