"""The trusted reverse-proxy mode of the staff pages (issue 14): a proxy that signs staff in names
them in X-Remote-User and proves itself with a shared secret. Each attack is performed against a
real station app under uvicorn: a spoofed name without the secret, a wrong secret, the secret in
another header, an unknown or disabled account, and the header with the mode off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.staff import StaffBrowser, add_staff, station_with_one_recording, web
from support.station import FakeClock, ServedStation, camera_key, serve_web
from support.http import http

from recorder.integrity.keys import DeviceKey
from recorder.station import accounts, audit, retention
from recorder.station.evidence_store import EvidenceStore
from recorder.station.web.proxy_auth import load_proxy_secret
from recorder.station.web.secret_file import SecretFileError
from recorder.station.web.security import WebSettings
from recorder.station.web.sso_settings import ProxySettings

__all__ = ["camera_key", "web"]

pytestmark = pytest.mark.usefixtures("no_fsync")

SECRET = "a8f1c2d39e4b5a6f7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"
RECORDED = "2026-11-23T07:00:00.000000Z"
RECORDING = "20261123T070000Z-cam7"


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock("2026-11-23T10:00:00+00:00")


@pytest.fixture()
def store(tmp_path: Path, camera_key: DeviceKey, clock: FakeClock) -> EvidenceStore:
    store = station_with_one_recording(tmp_path, camera_key, clock)
    add_staff(store, "pc-jones", "officer", officer_id="4121", team="blue")
    add_staff(store, "pc-patel", "officer", officer_id="5555", team="red")
    add_staff(store, "cust-ward", "custodian")
    return store


@pytest.fixture()
def proxied(store: EvidenceStore) -> Iterator[ServedStation]:
    """The staff pages in proxy mode, with the default header names."""
    served = serve_web(store, WebSettings(proxy=ProxySettings(SECRET.encode())))
    yield served
    served.stop()


@pytest.fixture()
def visit(proxied: ServedStation, store: EvidenceStore) -> Iterator[StaffBrowser]:
    browser = StaffBrowser(proxied.url, store)
    yield browser
    browser.close()


def as_proxy(user: str, secret: str = SECRET) -> dict[str, str]:
    return {"X-Remote-User": user, "X-BWV-Proxy-Secret": secret}


def failures(store: EvidenceStore) -> list[audit.AuditEntry]:
    return [entry for entry in audit.entries(store.engine) if entry.action == "login_failed"]


def shows_nothing(answer: httpx.Response) -> None:
    assert "text/html" in answer.headers["content-type"]
    assert RECORDING not in answer.text and "4121" not in answer.text
    assert "bwv_session" not in answer.headers.get("set-cookie", "")


# --- the attacks --------------------------------------------------------------------------------


def test_a_spoofed_user_header_without_the_secret_is_refused_and_audited(
        proxied: ServedStation, store: EvidenceStore) -> None:
    for path in ("/", f"/recordings/{RECORDING}", f"/recordings/{RECORDING}/media/000001.mp4",
                 "/static/station.css", "/login"):
        answer = http.get(proxied.url + path, headers={"X-Remote-User": "pc-jones"},
                          timeout=10)
        assert answer.status_code == 401, path
        shows_nothing(answer)
    refused = failures(store)
    assert len(refused) == 5
    assert all(entry.actor == "anonymous" and entry.detail["reason"] == "proxy_secret_missing"
               and entry.detail["claimed"] == "pc-jones" for entry in refused)
    assert not any(entry.action in ("login", "list", "view", "play", "download")
                   for entry in audit.entries(store.engine))


def test_a_wrong_secret_is_refused(proxied: ServedStation, store: EvidenceStore) -> None:
    for wrong in (SECRET[:-1] + "0", SECRET[:-1], SECRET + "0", "", SECRET.upper()):
        answer = http.get(proxied.url + "/", headers=as_proxy("pc-jones", wrong), timeout=10)
        assert answer.status_code == 401, wrong
        shows_nothing(answer)
    assert {entry.detail["reason"] for entry in failures(store)} == {"proxy_secret_wrong"}


@pytest.mark.parametrize("headers", [
    {"X-Remote-User": "pc-jones", "X-Proxy-Secret": SECRET},
    {"X-Remote-User": "pc-jones", "Authorization": f"Bearer {SECRET}"},
    {"X-Remote-User": SECRET},
    {"X-Remote-User": "pc-jones", "Cookie": f"X-BWV-Proxy-Secret={SECRET}"},
], ids=["other-header", "authorization", "in-user-header", "cookie"])
def test_the_secret_in_another_header_is_refused(proxied: ServedStation, store: EvidenceStore,
                                                 headers: dict[str, str]) -> None:
    answer = http.get(proxied.url + "/", headers=headers, timeout=10)
    assert answer.status_code == 401
    shows_nothing(answer)
    assert [entry.detail["reason"] for entry in failures(store)] == ["proxy_secret_missing"]


def test_the_secret_in_the_query_is_refused(proxied: ServedStation) -> None:
    answer = http.get(f"{proxied.url}/?X-BWV-Proxy-Secret={SECRET}",
                      headers={"X-Remote-User": "pc-jones"}, timeout=10)
    assert answer.status_code == 401
    shows_nothing(answer)


def test_a_repeated_secret_or_user_header_is_refused(proxied: ServedStation) -> None:
    twice_secret = [("X-Remote-User", "pc-jones"), ("X-BWV-Proxy-Secret", SECRET),
                    ("X-BWV-Proxy-Secret", SECRET)]
    twice_user = [("X-Remote-User", "pc-jones"), ("X-Remote-User", "cust-ward"),
                  ("X-BWV-Proxy-Secret", SECRET)]
    no_user = [("X-BWV-Proxy-Secret", SECRET)]
    for headers in (twice_secret, twice_user, no_user):
        answer = http.get(proxied.url + "/", headers=headers, timeout=10)
        assert answer.status_code == 401
        shows_nothing(answer)


def test_an_unknown_user_is_refused_even_with_the_secret(proxied: ServedStation,
                                                         store: EvidenceStore) -> None:
    for name in ("chief.constable", "PC-JONES", "../admin", "x" * 300):
        answer = http.get(proxied.url + "/", headers=as_proxy(name), timeout=10)
        expected = 200 if name.strip().lower() == "pc-jones" else 403
        assert answer.status_code == expected, name
        if expected == 403:
            shows_nothing(answer)
    refused = failures(store)
    assert len(refused) == 3
    assert all(entry.detail["reason"] == "unknown_user" for entry in refused)


def test_a_disabled_user_is_refused_and_their_proxy_session_ends(
        proxied: ServedStation, store: EvidenceStore, visit: StaffBrowser) -> None:
    assert visit.get("/", headers=as_proxy("pc-jones")).status_code == 200
    accounts.disable_user(store.engine, "pc-jones", by="admin", now_us=store.clock())
    answer = visit.get(f"/recordings/{RECORDING}", headers=as_proxy("pc-jones"))
    assert answer.status_code == 403
    shows_nothing(answer)
    assert failures(store)[-1].actor == "pc-jones"
    assert failures(store)[-1].detail["reason"] == "disabled"


def test_with_the_mode_off_the_user_header_means_nothing(web: ServedStation,
                                                         store: EvidenceStore) -> None:
    for headers in (as_proxy("pc-jones"), {"X-Remote-User": "cust-ward"}):
        answer = http.get(web.url + "/", headers=headers, timeout=10)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
        media = http.get(f"{web.url}/recordings/{RECORDING}/media/000001.mp4",
                         headers=headers, timeout=10)
        assert media.status_code == 303 and media.content == b""
    assert not [entry for entry in audit.entries(store.engine)
                if entry.action in ("login", "login_failed", "list", "view")]


# --- what the proxy's word does, and does not, give ---------------------------------------------


def test_the_named_account_gets_its_station_role_and_one_audited_session(
        visit: StaffBrowser, store: EvidenceStore) -> None:
    # the proxy cannot grant a role: a header claiming one is ignored
    own = visit.get("/", headers={**as_proxy("pc-jones"), "X-Remote-Role": "admin"})
    assert own.status_code == 200 and RECORDING in own.text
    assert visit.get(f"/recordings/{RECORDING}",
                     headers=as_proxy("pc-jones")).status_code == 200
    logins = [entry for entry in audit.entries(store.engine) if entry.action == "login"]
    assert [(e.actor, e.detail["via"]) for e in logins] == [("pc-jones", "proxy")]
    views = [entry for entry in audit.entries(store.engine) if entry.action == "view"]
    assert [entry.actor for entry in views] == ["pc-jones"]
    other = visit.get(f"/recordings/{RECORDING}", headers=as_proxy("pc-patel"))
    assert other.status_code == 403  # not their recording: the station's roles decide
    listed = visit.get("/", headers=as_proxy("pc-patel"))
    assert listed.status_code == 200 and RECORDING not in listed.text


def test_a_session_cookie_of_another_account_does_not_outrank_the_proxy(
        visit: StaffBrowser, store: EvidenceStore) -> None:
    assert visit.get("/", headers=as_proxy("cust-ward")).status_code == 200
    custodian_cookie = visit.cookies["bwv_session"]
    answer = visit.get("/", headers=as_proxy("pc-patel"))
    assert answer.status_code == 200 and RECORDING not in answer.text
    assert visit.cookies["bwv_session"] != custodian_cookie
    assert "pc-patel" in answer.text


def test_forms_still_need_the_session_csrf_token(visit: StaffBrowser,
                                                 store: EvidenceStore) -> None:
    headers = as_proxy("cust-ward")
    visit.get(f"/recordings/{RECORDING}", headers=headers)
    forged = visit.post(f"/recordings/{RECORDING}/hold", {"reason": "r", "case": "c"},
                        csrf=False, headers=headers)
    assert forged.status_code == 403 and retention.active_holds(store, RECORDING) == []
    placed = visit.post(f"/recordings/{RECORDING}/hold", {"reason": "evidence", "case": "C1"},
                        headers=headers)
    assert placed.status_code == 303
    [hold] = retention.active_holds(store, RECORDING)
    assert hold.placed_by == "cust-ward"


def test_the_password_form_is_not_a_way_around_the_proxy(visit: StaffBrowser,
                                                        store: EvidenceStore) -> None:
    headers = as_proxy("pc-patel")
    assert visit.get("/login", headers=headers).status_code == 303
    answer = visit.post("/login", {"name": "pc-jones", "password": "x", "code": "123456"},
                        headers=headers)
    assert answer.status_code == 403


# --- the secret file ----------------------------------------------------------------------------


def test_the_secret_file_must_be_private_and_long(tmp_path: Path) -> None:
    path = tmp_path / "proxy-secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    assert load_proxy_secret(path) == SECRET.encode()
    path.chmod(0o640)
    with pytest.raises(SecretFileError, match="chmod 600"):
        load_proxy_secret(path)
    path.chmod(0o600)
    for bad in ("short", "has a space in it and is long enough to pass", ""):
        path.write_text(bad)
        with pytest.raises(SecretFileError, match="printable characters"):
            load_proxy_secret(path)
    with pytest.raises(SecretFileError, match="cannot be read"):
        load_proxy_secret(tmp_path / "absent")


@pytest.mark.parametrize(("extra", "message"), [
    (["--web-proxy-secret-file", "{secret}"], "give --web-listen"),
    (["--web-listen", "127.0.0.1:8471", "--web-proxy-secret-file", "{absent}"],
     "cannot be read"),
    (["--web-listen", "127.0.0.1:8471", "--web-proxy-secret-file", "{open}"], "chmod 600"),
    (["--web-listen", "127.0.0.1:8471", "--web-proxy-secret-file", "{secret}",
      "--web-proxy-user-header", "Cookie"], "is not a header name"),
    (["--web-listen", "127.0.0.1:8471", "--web-proxy-secret-file", "{secret}",
      "--web-proxy-secret-header", "X-Remote-User"], "must differ"),
])
def test_serve_refuses_a_proxy_mode_it_cannot_trust(tmp_path: Path, extra: list[str],
                                                    message: str) -> None:
    from support import warm

    secret, open_file = tmp_path / "secret", tmp_path / "open"
    for path, mode in ((secret, 0o600), (open_file, 0o644)):
        path.write_text(SECRET)
        path.chmod(mode)
    names = {"secret": str(secret), "absent": str(tmp_path / "absent"), "open": str(open_file)}
    args = [part.format(**names) for part in extra]
    result = warm.run(["station", "serve", "--data", str(tmp_path / "station"), "--listen",
                       "127.0.0.1:8470", *args], timeout=60)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "station").exists()
