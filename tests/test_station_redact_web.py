"""The review of a redaction on the staff pages (issue 17): a disclosure officer opens a public
request's recording, has its faces found (in the background, the page reloading itself until
done), leaves one track visible, draws a box, mutes a range and renders; the copy and its signed
report are downloaded and checked (PyAV, the station's key); a second person (a supervisor)
watches the copy and approves it, and only then does the request's export disclose it instead of
the original. Roles without the ``redact`` or ``approve_redaction`` permission are refused and
the refusal is audited; a form without the session's CSRF token starts nothing. Every
protection of the approval is tried as an attack: the renderer approving their own copy, a role
without the permission, a forged form, approving a copy rendered again since, disclosing before
approval. The tracks found survive a restart of the server (kept in the catalogue).

A real station under uvicorn on loopback with real accounts, and the small footage with faces
of tests/test_station_redact.py (320x240, 2 s): one detection and one render for the module.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from support import faces
from support.segments import cut_segments
from support.staff import StaffBrowser, add_staff, logged_in
from support.station import FakeClock, ServedStation, ingest, make_recording, make_store, serve_web
from test_station_redact import openssl_verifies

from recorder.integrity.keys import DeviceKey
from recorder.station import audit, public_requests
from recorder.station.evidence_store import EvidenceStore
from recorder.station.redact import review

WIDTH, HEIGHT, SECONDS = 320, 240, 2
REFERENCE = "SAR-9"
BOX = "0.5:20,150,60,30;1.5:200,100,100,60"
REFRESH = '<meta http-equiv=refresh content="2">'


def utc_us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1e6)


@dataclass
class Station:
    store: EvidenceStore
    web: ServedStation
    recording_id: str

    @property
    def page(self) -> str:
        return f"/requests/{REFERENCE}/recordings/{self.recording_id}/redact"


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    tmp = tmp_path_factory.mktemp("redact-web")
    store = make_store(tmp / "station", clock=FakeClock("2026-11-23T10:00:00+00:00"))
    key = DeviceKey.load_or_create(tmp / "camera")
    store.enroll("cam7", key.public_key, by="admin")
    segments = cut_segments(tmp / "segments", faces.encode(WIDTH, HEIGHT, SECONDS), 1)
    recording = make_recording(tmp / "recordings", key, segments=segments)
    assert ingest(store, recording).verified
    public_requests.record_request(store, REFERENCE, "A. Member", "stopped in the street",
                                   utc_us("2026-11-23T06:59"), utc_us("2026-11-23T07:01"),
                                   "intake")
    served = Station(store, serve_web(store), recording.name)
    yield served
    served.web.stop()  # the server of the restart test, when it ran


def wait_until_done(browser: StaffBrowser, path: str) -> list[str]:
    """The pages shown while the work runs, up to the first without a reload."""
    shown = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = browser.get(path)
        assert answer.status_code == 200, answer.text
        shown.append(answer.text)
        if REFRESH not in answer.text:
            return shown
        time.sleep(0.2)
    raise AssertionError("the work did not end in 120 s")


def alert(text: str) -> str:
    found = re.search(r"<p class=failed role=alert>([^<]*)</p>", text)
    assert found is not None, text
    return html.unescape(found.group(1))


def test_a_disclosure_officer_reviews_renders_and_discloses_a_redacted_copy(
        station: Station, tmp_path: Path) -> None:
    store, rid = station.store, station.recording_id
    browser = logged_in(station.web.url, store, "disclosure", "do-lee")
    try:
        request_page = browser.get(f"/requests/{REFERENCE}").text
        assert f'href="{station.page}"' in request_page
        first = browser.get(station.page).text
        assert "find the faces" in first and "keep-" not in first
        assert browser.post(station.page + "/faces", {}).status_code == 303
        pages = wait_until_done(browser, station.page)
        tracks = [int(n) for n in re.findall(r'name="keep-(\d+)"', pages[-1])]
        assert len(tracks) >= 3, pages[-1]  # three faces cross the footage
        assert re.search(r'<td>1</td><td><img src="[^"]+/tracks/1.jpg" alt="track 1" height=96>'
                         r"</td><td>0.00 s</td><td>\d\.\d\d s</td><td>\d+</td>", pages[-1])
        still = browser.get(f"{station.page}/tracks/1.jpg")  # a small crop of the face
        assert still.headers["content-type"] == "image/jpeg"
        assert still.headers["cache-control"] == "no-store"
        picture = cv2.imdecode(np.frombuffer(still.content, np.uint8), cv2.IMREAD_COLOR)
        assert picture.shape[0] == 96 and picture.shape[1] < WIDTH
        assert browser.get(f"{station.page}/tracks/99.jpg").status_code == 404
        # bad input: one line on the page, nothing started
        for bad, message in (({"boxes": "0.5:300,10,40,40"},
                              "box 0.5:300,10,40,40: 0.5:300,10,40,40 is outside the "
                              "320x240 frame"),
                             ({"boxes": "soon"}, "box 1: 'soon' is not a keyframe T:X,Y,W,H"),
                             ({"mute": "5-2"}, "mute: '5-2': the range ends before it starts"),
                             ({"mute": "3-4"}, "mute 3-4: the footage is 2.00 s long"),
                             ({"keep-99": "on"}, "keep-99: no such face track"),
                             ({"mask": "blur"}, "mask: one of pixelate, solid")):
            answer = browser.post(station.page + "/render", {"mask": "pixelate", **bad})
            assert answer.status_code == 400, bad
            assert alert(answer.text).startswith(message), bad
        # the render: track 1 left visible, a box, a muted range
        form = {"mask": "pixelate", "keep-1": "on", "boxes": BOX, "mute": "0.4-0.9"}
        assert browser.post(station.page + "/render", form).status_code == 303
        again = browser.post(station.page + "/render", form)  # never twice at once
        assert again.status_code == 409 and "under way already" in alert(again.text)
        pages = wait_until_done(browser, station.page)
        assert re.search(r"rendering: <progress max=100 value=\d+></progress> <strong>\d+%",
                         pages[0]), pages[0]
        name = f"{rid}-redacted-1.mp4"
        assert f"rendered {name} (100%)" in pages[-1]
        video = browser.get(f"/requests/{REFERENCE}/redacted/{name}")
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert video.headers["cache-control"] == "no-store"
        with av.open(io.BytesIO(video.content)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            assert sum(1 for _ in container.decode(video=0)) == SECONDS * faces.FPS
        body = browser.get(f"/requests/{REFERENCE}/redacted/{name}.report.json").content
        signature = browser.get(f"/requests/{REFERENCE}/redacted/{name}.report.json.sig")
        store.identity.public_key.verify(signature.content, body)  # raises if it does not
        report = json.loads(body)
        ops = report["operations"]
        assert {"op": "exclude_track", "track": 1} in ops
        assert {"op": "mute", "start_ms": 400, "end_ms": 900} in ops
        assert {"op": "box", "keyframes": [
            {"t_ms": 500, "x": 20, "y": 150, "w": 60, "h": 30},
            {"t_ms": 1500, "x": 200, "y": 100, "w": 100, "h": 60}]} in ops
        assert report["result"]["tracks_visible"] == [1]
        assert report["result"]["tracks_found"] == len(tracks)
        assert report["rendered_by"] == "do-lee" and report["approval"] == "separate"
        assert "approved_by" not in report  # a second person approves it, in its own record
        assert report["output"]["sha256"] == hashlib.sha256(video.content).hexdigest()
        assert browser.get(f"/requests/{REFERENCE}/redacted/other.mp4").status_code == 404
        # not disclosed before a second person approves it
        assert browser.post(f"/requests/{REFERENCE}/status",
                            {"status": "searched"}).status_code == 303
        early = browser.post(f"/requests/{REFERENCE}/export", {})
        assert early.status_code == 400
        assert f"{name} awaits approval by a second person" in html.unescape(early.text)
        assert "awaiting approval by a second person (rendered by do-lee)" in browser.get(
            f"/requests/{REFERENCE}").text
        # a supervisor watches it and approves it
        approved = approve(station, "sgt-approver", REFERENCE, video.content)
        record = approved["record"]
        assert record["approved_by"] == "sgt-approver" and record["rendered_by"] == "do-lee"
        assert record["output"] == {"file": name, "sha256": report["output"]["sha256"]}
        assert record["report"] == {"file": f"{name}.report.json",
                                    "sha256": hashlib.sha256(body).hexdigest()}
        assert "approved by sgt-approver" in browser.get(f"/requests/{REFERENCE}").text
        # the request's export discloses the approved copy instead of the original
        exported = browser.post(f"/requests/{REFERENCE}/export", {})
        assert exported.status_code == 200, exported.text
        with zipfile.ZipFile(io.BytesIO(exported.content)) as bundle:
            assert sorted(bundle.namelist()) == [f"redacted/{name}",
                                                 f"redacted/{name}.approval.json",
                                                 f"redacted/{name}.approval.json.sig",
                                                 f"redacted/{name}.report.json",
                                                 f"redacted/{name}.report.json.sig"]
            assert bundle.read(f"redacted/{name}") == video.content
            assert bundle.read(f"redacted/{name}.approval.json") == approved["body"]
            bundle.extractall(tmp_path)
    finally:
        browser.close()
    # the record verifies with docs/redaction.md's recipe (jq, openssl), and not once changed
    record_path = tmp_path / "redacted" / f"{name}.approval.json"
    record_signature = record_path.with_name(record_path.name + ".sig")
    assert openssl_verifies(record_path, record_signature, tmp_path)
    assert openssl_verifies(record_path.with_name(f"{name}.report.json"),
                            record_path.with_name(f"{name}.report.json.sig"), tmp_path)
    changed = tmp_path / "changed.json"
    changed.write_bytes(approved["body"].replace(b'"approved_by":"sgt-approver"',
                                                 b'"approved_by":"sgt-approvee"'))
    assert not openssl_verifies(changed, record_signature, tmp_path)
    mine = [entry for entry in audit.entries(store.engine) if entry.actor == "do-lee"]
    redacted, = [entry for entry in mine if entry.action == "redact"]
    assert redacted.detail["request"] == REFERENCE and redacted.recording_id == rid
    assert redacted.detail["operations"] == ops
    assert [entry.detail.get("started") for entry in mine
            if entry.detail.get("started")] == ["finding faces", "rendering"]
    assert {entry.detail["redacted"] for entry in mine if entry.action == "download"} == {
        name, f"{name}.report.json", f"{name}.report.json.sig"}
    exports = [entry for entry in mine if entry.action == "export"]
    assert [entry.detail["redacted"] for entry in exports] == [name]
    assert exports[0].detail["approved_by"] == "sgt-approver"
    decided, = [entry for entry in audit.entries(store.engine)
                if entry.actor == "sgt-approver" and entry.action == "redaction_approve"]
    assert decided.recording_id == rid and decided.detail["sha256"] == record["output"]["sha256"]
    assert decided.detail["rendered_by"] == "do-lee"


def approve(station: Station, account: str, reference: str, video: bytes | None = None,
            role: str = "supervisor") -> dict[str, Any]:
    """``account`` (new, of ``role``) opens the approval page of the recording for the
    request, sees the newest copy in its player (``video``: its bytes, fetched and compared)
    and approves it; the signed approval record, checked with the station's key."""
    browser = StaffBrowser(station.web.url, station.store)
    try:
        browser.login(add_staff(station.store, account, role, team="blue"))
        path = f"/requests/{reference}/recordings/{station.recording_id}/approve"
        shown = browser.get(path)
        assert shown.status_code == 200, shown.text
        src = re.search(r'<video controls preload=metadata src="([^"]+)">', shown.text)
        assert src is not None, shown.text
        if video is not None:
            assert browser.get(html.unescape(src.group(1))).content == video
        sha = re.search(r'name=sha256 value="([0-9a-f]{64})"', shown.text)
        assert sha is not None, shown.text
        answer = browser.post(path, {"decision": "approve", "sha256": sha.group(1)})
        assert answer.status_code == 303, answer.text
        after = browser.get(path).text
        assert f"approved by {account}" in after
        files = html.unescape(src.group(1))
        body = browser.get(files + ".approval.json").content
        signature = browser.get(files + ".approval.json.sig").content
        station.store.identity.public_key.verify(signature, body)  # raises if it does not
        return {"record": json.loads(body), "body": body, "sha256": sha.group(1)}
    finally:
        browser.close()


@pytest.mark.parametrize(("role", "account", "officer_id", "team"), [
    ("supervisor", "sgt-okafor", None, "blue"), ("officer", "pc-jones", "4121", "blue")])
def test_roles_without_the_permission_are_refused_and_audited(
        station: Station, role: str, account: str, officer_id: str | None, team: str) -> None:
    browser = StaffBrowser(station.web.url, station.store)
    try:
        browser.login(add_staff(station.store, account, role, officer_id=officer_id, team=team))
        browser.get("/")
        assert browser.get(station.page).status_code == 403
        assert browser.post(station.page + "/render", {"mask": "solid"}).status_code == 403
        assert browser.post(station.page + "/faces", {}).status_code == 403
        # a supervisor approves copies (and so may fetch them); an officer may not
        fetched = browser.get(f"/requests/{REFERENCE}/redacted/x.mp4").status_code
        assert fetched == (404 if role == "supervisor" else 403)
    finally:
        browser.close()
    refused = [entry for entry in audit.entries(station.store.engine)
               if entry.actor == account and entry.action == "access_refused"]
    assert [entry.detail["wanted"] for entry in refused] == ["redact"] * (
        3 if role == "supervisor" else 4)
    assert [entry.recording_id for entry in refused[:3]] == [station.recording_id] * 3


def test_a_forged_form_starts_nothing(station: Station) -> None:
    browser = logged_in(station.web.url, station.store, "disclosure", "do-forged")
    try:
        browser.get(station.page)
        for path in ("/faces", "/render"):
            answer = browser.post(station.page + path, {"mask": "solid"}, csrf=False)
            assert answer.status_code == 403 and "not sent from this station" in answer.text
            forged = browser.post(station.page + path, {"mask": "solid", "csrf": "x" * 43},
                                  csrf=False)
            assert forged.status_code == 403
        assert REFRESH not in browser.get(station.page).text  # no work under way
    finally:
        browser.close()
    assert not [entry for entry in audit.entries(station.store.engine)
                if entry.actor == "do-forged" and "started" in entry.detail]


def test_a_request_not_holding_the_recording_is_refused(station: Station) -> None:
    other = add_staff(station.store, "do-other", "disclosure")
    browser = StaffBrowser(station.web.url, station.store)
    try:
        browser.login(other)
        public_requests.record_request(station.store, "SAR-10", "B", "elsewhere",
                                       utc_us("2026-11-22T06:59"), utc_us("2026-11-22T07:01"),
                                       "intake")
        path = f"/requests/SAR-10/recordings/{station.recording_id}/redact"
        assert browser.get(path).status_code == 403
        assert browser.get("/requests/NOPE/recordings/x/redact").status_code == 404
    finally:
        browser.close()
    refused, = [entry for entry in audit.entries(station.store.engine)
                if entry.actor == "do-other" and entry.action == "access_refused"]
    assert refused.detail["reason"] == "not held for request SAR-10"


def test_nothing_unredacted_is_disclosed_and_what_has_no_copy_is_withheld(
        station: Station, tmp_path: Path) -> None:
    """A request holding two recordings: its export is refused while neither has a redacted
    copy (the originals never go to a requester), then, with one redacted, the zip holds that
    copy and names the other as withheld, as does the request's status note."""
    store, rid = station.store, station.recording_id
    key = DeviceKey.load_or_create(tmp_path / "camera2")
    store.enroll("cam8", key.public_key, by="admin")
    second = make_recording(tmp_path / "recordings", key, device_id="cam8",
                            utc_start="2026-11-23T07:00:30.000000Z", seconds=2)
    assert ingest(store, second, device_id="cam8").verified
    held = public_requests.record_request(store, "SAR-11", "C. Member", "on the corner",
                                          utc_us("2026-11-23T06:59"),
                                          utc_us("2026-11-23T07:01"), "intake")
    assert sorted(held.matches) == sorted([rid, second.name])
    browser = logged_in(station.web.url, store, "disclosure", "do-withheld")
    page = f"/requests/SAR-11/recordings/{rid}/redact"
    try:
        assert browser.get("/requests/SAR-11").status_code == 200
        assert browser.post("/requests/SAR-11/status", {"status": "searched"}).status_code == 303
        refused = browser.post("/requests/SAR-11/export", {})
        assert refused.status_code == 400
        assert "no recording has a redacted copy yet" in refused.text
        assert not [entry for entry in audit.entries(store.engine)
                    if entry.actor == "do-withheld" and entry.action == "export"]
        if "keep-" not in browser.get(page).text:  # the faces may be found already
            assert browser.post(page + "/faces", {}).status_code == 303
            wait_until_done(browser, page)
        assert browser.post(page + "/render", {"mask": "solid"}).status_code == 303
        assert "rendered" in wait_until_done(browser, page)[-1]
        approve(station, "do-second", "SAR-11", role="disclosure")
        exported = browser.post("/requests/SAR-11/export", {})
        assert exported.status_code == 200, exported.text
        with zipfile.ZipFile(io.BytesIO(exported.content)) as bundle:
            names = sorted(bundle.namelist())
            withheld = bundle.read("WITHHELD.txt").decode()
        name = f"{rid}-redacted-1.mp4"
        assert names == ["WITHHELD.txt", f"redacted/{name}", f"redacted/{name}.approval.json",
                         f"redacted/{name}.approval.json.sig", f"redacted/{name}.report.json",
                         f"redacted/{name}.report.json.sig"]
        assert withheld == f"{second.name}: held for this request, not disclosed (no " \
                           "redacted copy)\n"
    finally:
        browser.close()
    exports = [entry for entry in audit.entries(store.engine)
               if entry.actor == "do-withheld" and entry.action == "export"]
    assert [(entry.recording_id, entry.detail["redacted"]) for entry in exports] == [(rid, name)]
    disclosed, = [entry for entry in audit.entries(store.engine)
                  if entry.actor == "do-withheld" and entry.detail.get("to") == "disclosed"]
    assert f"withheld, no redacted copy: {second.name}" in str(disclosed.detail)


def render_copy(browser: StaffBrowser, reference: str, recording_id: str,
                form: dict[str, str]) -> None:
    page = f"/requests/{reference}/recordings/{recording_id}/redact"
    assert browser.post(page + "/render", form).status_code == 303
    assert "rendered" in wait_until_done(browser, page)[-1]


def test_the_approval_takes_a_second_person_and_the_newest_copy(station: Station) -> None:
    """Each protection of the four eyes, tried as an attack: the renderer approving their own
    copy, roles without the permission, a forged form, disclosing before approval, approving a
    copy rendered again since (and the re-render voiding an approval given before it), a
    rejection without its reason; a rejected copy is not disclosed."""
    store, rid = station.store, station.recording_id
    reference = "SAR-12"
    public_requests.record_request(store, reference, "D. Member", "by the station",
                                   utc_us("2026-11-23T06:59"), utc_us("2026-11-23T07:01"),
                                   "intake")
    path = f"/requests/{reference}/recordings/{rid}/approve"
    renderer = logged_in(station.web.url, store, "disclosure", "do-render")
    supervisor = StaffBrowser(station.web.url, store)
    try:
        page = f"/requests/{reference}/recordings/{rid}/redact"
        if "keep-" not in renderer.get(page).text:  # the faces may be found already
            assert renderer.post(page + "/faces", {}).status_code == 303
            wait_until_done(renderer, page)
        render_copy(renderer, reference, rid, {"mask": "solid"})
        assert renderer.post(f"/requests/{reference}/status",
                             {"status": "searched"}).status_code == 303
        # disclosing before approval
        early = renderer.post(f"/requests/{reference}/export", {})
        assert early.status_code == 400 and "awaits approval" in early.text
        # the renderer approving their own copy: no form, and the POST refused and audited
        own = renderer.get(path)
        assert own.status_code == 200 and "You rendered this copy" in own.text
        assert "name=decision" not in own.text
        first = re.search(r"SHA-256 <code>([0-9a-f]{64})</code>", own.text)
        assert first is not None, own.text
        refused = renderer.post(path, {"decision": "approve", "sha256": first.group(1)})
        assert refused.status_code == 403
        # a forged form (no token, or a wrong one) decides nothing
        supervisor.login(add_staff(store, "sgt-four-eyes", "supervisor", team="blue"))
        assert supervisor.get("/approvals").status_code == 200
        assert path in supervisor.get("/approvals").text
        shown = supervisor.get(path).text
        assert f'name=sha256 value="{first.group(1)}"' in shown
        for forged in ({"decision": "approve", "sha256": first.group(1)},
                       {"decision": "approve", "sha256": first.group(1), "csrf": "x" * 43}):
            answer = supervisor.post(path, forged, csrf=False)
            assert answer.status_code == 403 and "not sent from this station" in answer.text
        assert "awaiting approval" in supervisor.get(path).text
        # approved, then rendered again: the approval no longer counts, the new copy awaits one
        assert supervisor.post(path, {"decision": "approve",
                                      "sha256": first.group(1)}).status_code == 303
        render_copy(renderer, reference, rid, {"mask": "pixelate"})
        again = renderer.post(f"/requests/{reference}/export", {})
        assert again.status_code == 400
        assert f"{rid}-redacted-2.mp4 awaits approval" in html.unescape(again.text)
        # approving the copy the page showed before the re-render
        stale = supervisor.post(path, {"decision": "approve", "sha256": first.group(1)})
        assert stale.status_code == 409
        assert "was rendered again since that copy was shown" in alert(stale.text)
        second = re.search(r'name=sha256 value="([0-9a-f]{64})"', supervisor.get(path).text)
        assert second is not None and second.group(1) != first.group(1)
        # a rejection needs its reason; a rejected copy is not disclosed
        bare = supervisor.post(path, {"decision": "reject", "sha256": second.group(1)})
        assert bare.status_code == 400 and "needs its reason" in alert(bare.text)
        assert supervisor.post(path, {"decision": "reject", "sha256": second.group(1),
                                      "reason": "a face at 1.2 s is visible"}).status_code == 303
        rejected = renderer.post(f"/requests/{reference}/export", {})
        assert rejected.status_code == 400
        assert "rejected by sgt-four-eyes (a face at 1.2 s is visible)" in html.unescape(
            rejected.text)
    finally:
        renderer.close()
        supervisor.close()
    for role, account in (("officer", "pc-approve"), ("custodian", "cu-approve"),
                          ("auditor", "au-approve")):
        browser = StaffBrowser(station.web.url, store)
        try:  # roles without the permission
            browser.login(add_staff(store, account, role, officer_id="4122", team="blue"))
            assert browser.get(path).status_code == 403
            assert browser.post(path, {"decision": "approve",
                                       "sha256": second.group(1)}).status_code == 403
            assert browser.get("/approvals").status_code == 403
        finally:
            browser.close()
    entries = list(audit.entries(store.engine))
    own_refusal, = [entry for entry in entries
                    if entry.actor == "do-render" and entry.action == "access_refused"]
    assert own_refusal.detail["wanted"] == "approve_redaction"
    assert own_refusal.detail["reason"] == (f"rendered {rid}-redacted-1.mp4: a second person "
                                            "approves it")
    for account in ("pc-approve", "cu-approve", "au-approve"):
        assert [entry.detail["wanted"] for entry in entries if entry.actor == account
                and entry.action == "access_refused"] == ["approve_redaction"] * 3
    decisions = [(entry.action, entry.detail["redacted"], entry.detail.get("reason"))
                 for entry in entries if entry.actor == "sgt-four-eyes"
                 and entry.action.startswith("redaction_")]
    assert decisions == [("redaction_approve", f"{rid}-redacted-1.mp4", None),
                         ("redaction_reject", f"{rid}-redacted-2.mp4",
                          "a face at 1.2 s is visible")]
    assert not [entry for entry in entries if entry.action == "export"
                and entry.detail.get("request") == reference]


def test_the_tracks_found_survive_a_restart_of_the_server(station: Station) -> None:
    """The review's tracks and stills are kept in the catalogue: the server stopped and a new
    one started on a store opened afresh from the same data directory shows the same tracks
    (ids, times, stills) without finding them again, and renders with them. It replaces the
    module's server (tests after it on this worker use the new one)."""
    rid = station.recording_id
    page = f"/requests/{REFERENCE}/recordings/{rid}/redact"
    before = logged_in(station.web.url, station.store, "disclosure", "do-before")
    try:
        if "keep-" not in before.get(page).text:  # found already where the module ran before
            assert before.post(page + "/faces", {}).status_code == 303
            wait_until_done(before, page)
        shown = before.get(page).text
        rows = re.findall(r"<tr><td>\d+</td>.*?</tr>", shown)
        assert len(rows) >= 3, shown
        stills = {n: before.get(f"{page}/tracks/{n}.jpg").content for n in (1, 2)}
    finally:
        before.close()
    station.web.stop()
    data = station.store.identity.key.path.parent
    station.store = make_store(data, clock=station.store.clock)
    station.web = serve_web(station.store)
    public_requests.record_request(station.store, "SAR-13", "E. Member", "again",
                                   utc_us("2026-11-23T06:59"), utc_us("2026-11-23T07:01"),
                                   "intake")
    after = logged_in(station.web.url, station.store, "disclosure", "do-after")
    try:
        again = after.get(page).text
        assert "find the faces" not in again
        assert re.findall(r"<tr><td>\d+</td>.*?</tr>", again) == rows
        assert {n: after.get(f"{page}/tracks/{n}.jpg").content for n in (1, 2)} == stills
        other = f"/requests/SAR-13/recordings/{rid}/redact"
        render_copy(after, "SAR-13", rid, {"mask": "solid", "keep-2": "on"})
        name = f"{rid}-redacted-1.mp4"
        report = json.loads(after.get(f"/requests/SAR-13/redacted/{name}.report.json").content)
        assert report["result"]["tracks_found"] == len(rows)
        assert report["result"]["tracks_visible"] == [2]
        assert "find the faces" not in after.get(other).text
    finally:
        after.close()
    assert not [entry for entry in audit.entries(station.store.engine)
                if entry.actor == "do-after" and entry.detail.get("started") == "finding faces"]
    # tracks found by another detector or other settings are not used (their ids could differ)
    current = review._settings()
    assert review.load_detected(station.store, rid, current) is not None
    other_stride = current | {"stride": int(current["stride"]) + 1}
    assert review.load_detected(station.store, rid, other_stride) is None
