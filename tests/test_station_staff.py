"""The staff pages (issue 14) tried as an outsider, a spoofer and each role would: their own
listener, nothing without a login (password and TOTP code), the security headers and the Host
check on every answer, CSRF tokens on every form, the role matrix checked on the server, and an
audit entry naming a real account for every page, listing, playback, download, export, hold
and refusal. A real station app under uvicorn on loopback, real accounts in the catalogue."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.staff import Staff, StaffBrowser, add_staff, web
from support.station import (FakeClock, ServedStation, camera_key, ingest, make_recording,
                             make_store, serve, serve_web)
from support.http import http

from recorder.integrity.keys import DeviceKey
from recorder.station import audit, devices, retention
from recorder.station.evidence_store import EvidenceStore

__all__ = ["camera_key", "web"]  # fixtures used by name below

pytestmark = pytest.mark.usefixtures("no_fsync")

MINE = "2026-11-23T07:00:00.000000Z"  # recorded by cam7, assigned to officer 4121
THEIRS = "2026-11-23T09:00:00.000000Z"  # recorded by cam8, assigned to officer 5555


def rid(utc: str, device: str) -> str:
    return utc.replace("-", "").replace(":", "")[:15] + f"Z-{device}"


MY_RECORDING = rid(MINE, "cam7")
THEIR_RECORDING = rid(THEIRS, "cam8")


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock("2026-11-23T10:00:00+00:00")


@pytest.fixture()
def store(tmp_path: Path, camera_key: DeviceKey, clock: FakeClock) -> EvidenceStore:
    store = make_store(tmp_path / "station", clock=clock)
    other = DeviceKey.load_or_create(tmp_path / "cam8")
    store.enroll("cam7", camera_key.public_key, by="admin")
    store.enroll("cam8", other.public_key, by="admin")
    day_before = store.clock() - 86_400_000_000
    devices.assign(store, "cam7", "4121", by="admin", from_us=day_before)
    devices.assign(store, "cam8", "5555", by="admin", from_us=day_before)
    assert ingest(store, make_recording(tmp_path / "r", camera_key, utc_start=MINE)).verified
    assert ingest(store, make_recording(tmp_path / "r", other, utc_start=THEIRS,
                                        device_id="cam8"), device_id="cam8").verified
    return store


ROSTER = {  # role: (account, officer id, team)
    "officer": ("pc-jones", "4121", "blue"),
    "other-officer": ("pc-patel", "5555", "red"),
    "supervisor": ("sgt-okafor", None, "blue"),
    "disclosure": ("do-lee", None, None),
    "custodian": ("cust-ward", None, None),
    "auditor": ("aud-singh", None, None),
    "admin": ("admin-roe", None, None),
}


class Roster(dict[str, Staff]):
    """The accounts of the station by role, each made when a test first asks for it (an
    argon2id hash costs a tenth of a second: no test pays for accounts it does not use). The
    supervisor's team needs its officer, who is made with them."""

    def __init__(self, store: EvidenceStore) -> None:
        super().__init__()
        self.store = store

    def __missing__(self, role: str) -> Staff:
        if role == "supervisor":
            self["officer"]  # noqa: B018  # the team's officer exists first
        name, officer_id, team = ROSTER[role]
        made = add_staff(self.store, name, role.removeprefix("other-"), officer_id=officer_id,
                         team=team)
        self[role] = made
        return made


@pytest.fixture()
def staff(store: EvidenceStore) -> Roster:
    return Roster(store)


@pytest.fixture()
def browser(web: ServedStation, store: EvidenceStore) -> Iterator[StaffBrowser]:
    visit = StaffBrowser(web.url, store)
    yield visit
    visit.close()


def entries_by(store: EvidenceStore, actor: str) -> list[audit.AuditEntry]:
    return [entry for entry in audit.entries(store.engine) if entry.actor == actor]


# --- the outsider and the spoofer ---------------------------------------------------------------


def test_the_device_api_port_serves_no_staff_page(store: EvidenceStore) -> None:
    device = serve(store)
    try:
        for path in ("/", "/login", f"/recordings/{MY_RECORDING}",
                     f"/recordings/{MY_RECORDING}/media/000001.mp4", "/audit",
                     "/static/station.css"):
            answer = http.get(device.url + path, headers={"X-Remote-User": "chief"},
                              timeout=10)
            assert answer.status_code == 404, path
            assert "recording" not in answer.text and "ftyp" not in answer.text
    finally:
        device.stop()


@pytest.mark.parametrize("path", ["/", f"/recordings/{MY_RECORDING}",
                                  f"/recordings/{MY_RECORDING}/media/000001.mp4", "/audit",
                                  f"/recordings/{THEIR_RECORDING}"])
def test_without_a_session_nothing_but_the_login_page(web: ServedStation, store: EvidenceStore,
                                                      path: str) -> None:
    spoofed = {"X-Remote-User": "chief.constable", "X-Forwarded-For": "10.0.0.1",
               "Cookie": "bwv_session=forged-token-of-the-right-shape-aaaaaaaaaaaaaaaa"}
    answer = http.get(web.url + path, headers=spoofed, timeout=10)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")
    assert answer.content == b""
    assert MY_RECORDING not in answer.text and "4121" not in answer.text
    assert not any(entry.action in ("view", "list", "play", "download")
                   for entry in audit.entries(store.engine))


def test_a_state_changing_post_without_a_session_is_refused(web: ServedStation,
                                                            store: EvidenceStore) -> None:
    for action in ("export", "hold", "release"):
        answer = http.post(f"{web.url}/recordings/{MY_RECORDING}/{action}",
                           data={"purpose": "x", "reason": "x", "case": "x"}, timeout=10)
        assert answer.status_code == 401 and "text/html" in answer.headers["content-type"]
    assert retention.active_holds(store, MY_RECORDING) == []


def test_a_host_the_station_does_not_answer_to_is_refused(web: ServedStation) -> None:
    for host in ("evil.example", "localhost.evil.example", "127.0.0.1:80:80", ""):
        answer = http.get(web.url + "/login", headers={"Host": host}, timeout=10)
        assert answer.status_code == 400, host
    assert http.get(web.url + "/login", timeout=10).status_code == 200


def test_every_answer_carries_the_security_headers(web: ServedStation,
                                                   browser: StaffBrowser,
                                                   staff: Roster) -> None:
    browser.login(staff["disclosure"])
    answers = [http.get(web.url + "/login", timeout=10),
               http.get(web.url + "/nowhere", timeout=10),
               http.get(web.url + "/", headers={"Host": "evil.example"}, timeout=10),
               browser.get("/"), browser.get(f"/recordings/{MY_RECORDING}")]
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
    page = answers[-1].text
    assert "<script>" not in page and " style=" not in page and "<style" not in page


def test_the_session_cookie_is_secure_httponly_and_strict(browser: StaffBrowser,
                                                          staff: Roster) -> None:
    answer = browser.login(staff["officer"])
    assert answer.status_code == 303
    [session] = [c for c in answer.headers.get_list("set-cookie")
                 if c.startswith("bwv_session=")]
    assert {"Secure", "HttpOnly", "SameSite=Strict"} <= set(session.split("; "))


def test_a_wrong_code_logs_nobody_in_and_names_no_cause(browser: StaffBrowser,
                                                        staff: Roster,
                                                        store: EvidenceStore) -> None:
    wrong_code = browser.login(staff["officer"], code="000000")
    wrong_password = browser.login(staff["officer"], password="not the password at all")
    nobody = browser.login(Staff("nobody", "whatever password", staff["officer"].secret,
                                 staff["officer"].user))
    for answer in (wrong_code, wrong_password, nobody):
        assert answer.status_code == 401 and "bwv_session" not in browser.cookies
    messages = {re.sub(r'value="[^"]*"', "", a.text) for a in (wrong_code, wrong_password,
                                                                nobody)}
    assert len(messages) == 1  # one page for every cause
    assert browser.get("/").status_code == 303


def test_a_login_form_posted_from_elsewhere_is_refused(web: ServedStation,
                                                       staff: Roster,
                                                       store: EvidenceStore) -> None:
    from recorder.station import accounts

    who = staff["officer"]
    assert who.secret is not None
    answer = http.post(web.url + "/login", timeout=10, data={
        "name": who.name, "password": who.password, "csrf": "guessed",
        "code": accounts.totp_code(who.secret, store.clock())})
    assert answer.status_code == 400 and "bwv_session" not in answer.headers.get(
        "set-cookie", "")


def test_logout_ends_the_session(browser: StaffBrowser, staff: Roster) -> None:
    browser.login(staff["officer"])
    assert browser.get("/").status_code == 200
    token = browser.cookies["bwv_session"]
    assert browser.post("/logout", {}).status_code == 303
    browser.cookies["bwv_session"] = token  # the old cookie, kept by an attacker
    assert browser.get("/").status_code == 303


# --- CSRF ---------------------------------------------------------------------------------------


def test_a_form_without_this_sessions_token_changes_nothing(web: ServedStation,
                                                            store: EvidenceStore,
                                                            staff: Roster) -> None:
    custodian, other = StaffBrowser(web.url, store), StaffBrowser(web.url, store)
    try:
        custodian.login(staff["custodian"])
        custodian.get("/")
        other.login(staff["disclosure"])
        other.get("/")
        path = f"/recordings/{MY_RECORDING}/hold"
        for csrf in ("", "0" * 43, other.csrf):
            answer = custodian.post(path, {"csrf": csrf, "reason": "r", "case": "C1"})
            assert answer.status_code == 403, csrf
        assert retention.active_holds(store, MY_RECORDING) == []
        assert custodian.post(path, {"reason": "assault", "case": "C1"}).status_code == 303
        assert [h.case_ref for h in retention.active_holds(store, MY_RECORDING)] == ["C1"]
    finally:
        custodian.close()
        other.close()


# --- roles ----------------------------------------------------------------------------------------

# what each role may do with pc-jones's recording (MY_RECORDING, team blue)
MATRIX = {
    #              list   view   play   download export hold  release audit
    "officer":    (True,  True,  True,  False,  False, False, False, False),
    "other-officer": (False, False, False, False, False, False, False, False),
    "supervisor": (True,  True,  True,  False,  False, True,  False, False),
    "disclosure": (True,  True,  True,  True,   True,  False, False, False),
    "custodian":  (True,  True,  False, False,  False, True,  True,  False),
    "auditor":    (False, False, False, False,  False, False, False, True),
    "admin":      (False, False, False, False,  False, False, False, False),
}
ACTIONS = ("list", "view", "play", "download", "export", "hold", "release", "audit")


def _try(browser: StaffBrowser, action: str) -> bool:
    """Whether ``action`` on MY_RECORDING was allowed (and, if so, done)."""
    page = f"/recordings/{MY_RECORDING}"
    if action == "list":
        answer = browser.get("/")
        return answer.status_code == 200 and MY_RECORDING in answer.text
    if action == "view":
        return browser.get(page).status_code == 200
    if action == "play":
        view = browser.get(page)
        found = re.search(r"play=([\w-]+)", view.text)
        if view.status_code != 200 or found is None:
            return False
        return browser.get(f"{page}/media/000001.mp4?play={found.group(1)}").status_code == 200
    if action == "download":
        return browser.get(f"{page}/media/000001.mp4").status_code == 200
    if action == "export":
        return browser.post(f"{page}/export", {"purpose": "court"}).status_code == 200
    if action == "hold":
        return browser.post(f"{page}/hold", {"reason": "r", "case": "C9"}).status_code == 303
    if action == "release":
        return browser.post(f"{page}/release", {"reason": "done"}).status_code == 303
    answer = browser.get("/audit")
    return answer.status_code == 200 and "Audit log" in answer.text


@pytest.mark.parametrize("role", sorted(MATRIX))
def test_the_role_matrix(role: str, web: ServedStation, store: EvidenceStore,
                         staff: Roster) -> None:
    retention.place_hold(store, MY_RECORDING, "kept", "C0", by="admin")  # something to release
    browser = StaffBrowser(web.url, store)
    try:
        assert browser.login(staff[role]).status_code == 303
        browser.get("/")
        done = {action: _try(browser, action) for action in ACTIONS}
    finally:
        browser.close()
    assert done == dict(zip(ACTIONS, MATRIX[role])), role
    name = staff[role].name
    # every refused request is in the log under the account (a player that is not on the page
    # and a recording not in the list were never asked for)
    wanted = {e.detail["wanted"] for e in entries_by(store, name) if e.action == "access_refused"}
    assert wanted == {a for a, ok in done.items() if not ok and a not in ("list", "play")}
    assert all(entry.detail["client"] == "127.0.0.1" for entry in entries_by(store, name)
               if entry.action in ("list", "view", "play", "download", "access_refused",
                                   "login", "audit_view"))


def test_an_officer_lists_only_their_own_and_cannot_guess_anothers(browser: StaffBrowser,
                                                                   staff: Roster,
                                                                   store: EvidenceStore) -> None:
    browser.login(staff["officer"])
    listing = browser.get("/")
    assert MY_RECORDING in listing.text and THEIR_RECORDING not in listing.text
    for path in (f"/recordings/{THEIR_RECORDING}", "/recordings/20260101T000000Z-cam9"):
        answer = browser.get(path)
        assert answer.status_code == 403  # unknown and not-yours answer alike
    filtered = browser.get("/?officer=5555")
    assert THEIR_RECORDING not in filtered.text


# --- audit of every access ---------------------------------------------------------------------


def test_a_playback_is_one_entry_and_a_download_one_per_fetch(browser: StaffBrowser,
                                                              staff: Roster,
                                                              store: EvidenceStore) -> None:
    browser.login(staff["disclosure"])
    view = browser.get(f"/recordings/{MY_RECORDING}")
    play = re.search(r"play=([\w-]+)", view.text)
    assert play is not None
    media = f"/recordings/{MY_RECORDING}/media/000001.mp4"
    for headers in ({}, {"Range": "bytes=0-999"}, {"Range": "bytes=1000-"}):
        assert browser.get(f"{media}?play={play.group(1)}", headers=headers).status_code in (
            200, 206)
    whole = browser.get(media)
    part = browser.get(media, headers={"Range": "bytes=100-"})
    assert whole.status_code == 200 and part.status_code == 206
    assert part.content == whole.content[100:]
    actions = [entry.action for entry in entries_by(store, "do-lee")]
    assert actions.count("play") == 1 and actions.count("download") == 2
    assert actions.count("view") == 1 and actions.count("login") == 1


def test_a_play_id_of_another_person_is_a_download_or_refused(web: ServedStation,
                                                              store: EvidenceStore,
                                                              staff: Roster) -> None:
    jones, patel = StaffBrowser(web.url, store), StaffBrowser(web.url, store)
    try:
        jones.login(staff["officer"])
        play = re.search(r"play=([\w-]+)", jones.get(f"/recordings/{MY_RECORDING}").text)
        assert play is not None
        patel.login(staff["other-officer"])
        stolen = patel.get(f"/recordings/{MY_RECORDING}/media/000001.mp4?play={play.group(1)}")
        assert stolen.status_code == 403 and b"ftyp" not in stolen.content
    finally:
        jones.close()
        patel.close()


def test_listings_searches_views_and_exports_are_audited_under_the_account(
        browser: StaffBrowser, staff: Roster, store: EvidenceStore) -> None:
    browser.login(staff["disclosure"])
    browser.get("/?device=cam7&held=no")
    browser.get(f"/recordings/{MY_RECORDING}")
    exported = browser.post(f"/recordings/{MY_RECORDING}/export", {"purpose": "CPS file"})
    assert exported.status_code == 200 and exported.content[:2] == b"PK"
    mine = entries_by(store, "do-lee")
    [search] = [e for e in mine if e.action == "list" and e.detail.get("device") == "cam7"]
    assert search.detail["held"] == "no"
    [export] = [e for e in mine if e.action == "export"]
    assert "CPS file" in str(export.detail)
    assert all(not e.actor.startswith("web:") for e in audit.entries(store.engine))


def test_an_export_is_a_post_with_a_purpose(browser: StaffBrowser, staff: Roster,
                                            store: EvidenceStore) -> None:
    browser.login(staff["disclosure"])
    assert browser.get(f"/recordings/{MY_RECORDING}/export").status_code == 405
    browser.get(f"/recordings/{MY_RECORDING}")
    assert browser.post(f"/recordings/{MY_RECORDING}/export", {"purpose": " "}).status_code == 400
    assert not [e for e in audit.entries(store.engine) if e.action == "export"]


def test_the_auditor_filters_the_log_by_user_and_recording(browser: StaffBrowser,
                                                           staff: Roster,
                                                           store: EvidenceStore) -> None:
    retention.place_hold(store, MY_RECORDING, "assault", "C7", by="cust-ward")
    browser.login(staff["auditor"])
    page = browser.get(f"/audit?user=cust-ward&recording={MY_RECORDING}")
    assert page.status_code == 200 and "C7" in page.text
    assert "ingest" not in page.text  # by the station, not cust-ward
    assert browser.get(f"/recordings/{MY_RECORDING}").status_code == 403  # no footage


def test_errors_are_html_pages(browser: StaffBrowser, staff: Roster) -> None:
    browser.login(staff["disclosure"])
    for path in ("/nowhere", "/?page=x", "/?status=lost"):
        answer = browser.get(path)
        assert answer.status_code in (400, 404) and "text/html" in answer.headers["content-type"]
        assert "Traceback" not in answer.text and not answer.text.startswith("{")


# --- `bwv station serve --web-listen`, the real command ------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_gives_the_staff_pages_their_own_port_and_stops_both_on_sigterm(
        tmp_path: Path) -> None:
    import signal
    import time

    from support import warm

    data = tmp_path / "station"
    make_store(data)
    device_port, web_port = _free_port(), _free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        process = warm.spawn(["station", "serve", "--data", str(data), "--listen",
                              f"127.0.0.1:{device_port}", "--web-listen",
                              f"127.0.0.1:{web_port}", "--sweep-every", "0"], stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                login = http.get(f"http://127.0.0.1:{web_port}/login", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, \
                    (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
        assert login.status_code == 200 and "password" in login.text
        health = http.get(f"http://127.0.0.1:{device_port}/api/v1/health", timeout=5)
        assert health.status_code == 200
        assert http.get(f"http://127.0.0.1:{device_port}/login", timeout=5).status_code == 404
        assert http.get(f"http://127.0.0.1:{web_port}/api/v1/health",
                        timeout=5).status_code != 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
    said = (tmp_path / "serve.log").read_text()
    assert f"staff pages on http://127.0.0.1:{web_port}" in said and "Traceback" not in said


@pytest.mark.parametrize(("args", "message"), [
    (["--web"], "--web-listen HOST:PORT"),
    (["--web-listen", "0.0.0.0:8471"], "need TLS"),
    (["--web-listen", "127.0.0.1:8470"], "must differ from --listen"),
    (["--web-listen", "nowhere"], "is not HOST:PORT"),
])
def test_serve_refuses_staff_pages_it_cannot_serve_safely(tmp_path: Path, args: list[str],
                                                          message: str) -> None:
    from support import warm

    result = warm.run(["station", "serve", "--data", str(tmp_path / "station"), "--listen",
                       "127.0.0.1:8470", *args], timeout=60)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "station").exists()


# --- requests from the public -------------------------------------------------------------------


def test_only_disclosure_officers_see_requests_and_each_refusal_is_audited(
        web: ServedStation, store: EvidenceStore, staff: Roster) -> None:
    for role in ("officer", "supervisor", "custodian", "auditor", "admin"):
        browser = StaffBrowser(web.url, store)
        try:
            browser.login(staff[role])
            browser.get("/")
            assert browser.get("/requests").status_code == 403, role
            assert browser.post("/requests", {"reference": "X"}).status_code == 403, role
        finally:
            browser.close()
        refused = [e for e in entries_by(store, staff[role].name)
                   if e.action == "access_refused"]
        assert [e.detail["wanted"] for e in refused] == ["requests", "requests"], role


def test_a_request_is_searched_before_it_is_disclosed_and_refused_only_with_a_reason(
        browser: StaffBrowser, staff: Roster, store: EvidenceStore) -> None:
    browser.login(staff["disclosure"])
    browser.get("/requests/new")
    made = browser.post("/requests", {
        "reference": "SAR-1", "requester": "A. Member", "received": "2026-11-23",
        "from": "2026-11-23T06:59", "to": "2026-11-23T07:01", "place": "", "description": "d"})
    assert made.status_code == 303 and made.headers["location"] == "/requests/SAR-1"
    page = browser.get("/requests/SAR-1")
    assert MY_RECORDING in page.text and THEIR_RECORDING not in page.text
    too_soon = browser.post("/requests/SAR-1/export", {})
    assert too_soon.status_code == 400 and "searched" in too_soon.text
    assert browser.post("/requests/SAR-1/status", {"status": "refused", "note": " "}
                        ).status_code == 400
    assert browser.post("/requests/SAR-1/status", {"status": "disclosed"}).status_code == 409
    assert browser.post("/requests/SAR-1/status", {"status": "searched"}).status_code == 303
    assert browser.post("/requests/SAR-1/status",
                        {"status": "refused", "note": "third parties throughout"}
                        ).status_code == 303
    assert "refused" in browser.get("/requests/SAR-1").text
    assert browser.post("/requests/SAR-1/export", {}).status_code == 400
    for bad in ({"from": "yesterday"}, {"received": "2030-01-01"}):
        form = {"reference": "SAR-2", "requester": "B", "received": "2026-11-23",
                "from": "2026-11-23T06:59", "to": "2026-11-23T07:01", "description": "d",
                **bad}
        assert browser.post("/requests", form).status_code == 400, bad
    assert browser.get("/requests/NOPE").status_code == 404
