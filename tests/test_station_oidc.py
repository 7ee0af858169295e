"""OpenID Connect login of staff (issue 14), followed end to end with httpx against a real
provider started by the test (tests/support/oidc_provider.py: discovery, /authorize, /token with
PKCE, /jwks, ES256 ID tokens): a login that works, and the attacks that must not: a wrong or
foreign state, a replayed code, a token signed by another key or by none, the wrong audience,
issuer or nonce, an expired token, an unknown or disabled account, MFA not shown. Each failure
is an audit entry and opens no session."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc.jwk import ECKey
from support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider
from support.staff import StaffBrowser, add_staff, station_with_one_recording
from support.station import FakeClock, ServedStation, camera_key, make_store, serve_app
from support.http import http

from recorder.integrity.keys import DeviceKey
from recorder.station import accounts, audit
from recorder.station.evidence_store import EvidenceStore
from recorder.station.limits import Limits
from recorder.station.web import create_web_app
from recorder.station.web.sso_settings import OidcConfigError, OidcSettings
from recorder.station.web.security import WebSettings

__all__ = ["camera_key"]

pytestmark = pytest.mark.usefixtures("no_fsync")

RECORDING = "20261123T070000Z-cam7"


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock("2026-11-23T10:00:00+00:00")


@pytest.fixture()
def store(tmp_path: Path, camera_key: DeviceKey, clock: FakeClock) -> EvidenceStore:
    store = station_with_one_recording(tmp_path, camera_key, clock)
    add_staff(store, "pc-jones", "officer", officer_id="4121", team="blue")
    return store


@pytest.fixture()
def provider(store: EvidenceStore) -> Iterator[OidcProvider]:
    running = OidcProvider(lambda: store.clock() // 1_000_000)
    yield running
    running.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_with_oidc(store: EvidenceStore, provider: OidcProvider,
                    **options: object) -> ServedStation:
    port = free_port()
    oidc = OidcSettings(issuer=provider.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                        redirect_url=f"http://127.0.0.1:{port}/oidc/callback",
                        **options)  # type: ignore[arg-type]
    return serve_app(create_web_app(store, WebSettings(oidc=oidc)), store, port, None,
                     Limits.default())


@pytest.fixture()
def station(store: EvidenceStore, provider: OidcProvider) -> Iterator[ServedStation]:
    served = serve_with_oidc(store, provider)
    yield served
    served.stop()


@pytest.fixture()
def browser(station: ServedStation, store: EvidenceStore) -> Iterator[StaffBrowser]:
    visit = StaffBrowser(station.url, store)
    yield visit
    visit.close()


def to_provider(browser: StaffBrowser, next_path: str = "/") -> str:
    """The browser starts a login; the provider signs the person in and sends them back: the
    callback URL (path and query) the browser is redirected to."""
    start = browser.get(f"/oidc/start?{urlencode({'next': next_path})}")
    assert start.status_code == 303, start.text
    at_provider = http.get(start.headers["location"], follow_redirects=False, timeout=10)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["location"])
    return f"{back.path}?{back.query}"


def sign_in(browser: StaffBrowser) -> httpx.Response:
    return browser.get(to_provider(browser))


def failures(store: EvidenceStore) -> list[audit.AuditEntry]:
    return [entry for entry in audit.entries(store.engine)
            if entry.action == "login_failed" and entry.detail.get("via") == "oidc"]


def refused(browser: StaffBrowser, answer: httpx.Response, store: EvidenceStore,
            reason: str) -> None:
    """The login failed as it should: an error page, no session, one audit entry saying why."""
    assert answer.status_code == 401, answer.text
    assert "text/html" in answer.headers["content-type"]
    assert "bwv_session" not in browser.cookies
    assert browser.get("/").status_code == 303  # still not logged in
    assert [entry.detail["reason"] for entry in failures(store)] == [reason]
    assert not [entry for entry in audit.entries(store.engine) if entry.action == "login"]


def with_query(callback: str, **changes: str) -> str:
    path, _, query = callback.partition("?")
    params = {name: values[0] for name, values in parse_qs(query).items()}
    params.update(changes)
    return f"{path}?{urlencode(params)}"


# --- the login that works -----------------------------------------------------------------------


def test_a_login_through_the_provider_opens_a_session_with_the_stations_role(
        browser: StaffBrowser, provider: OidcProvider, store: EvidenceStore) -> None:
    provider.tamper.claims = {"role": "admin", "groups": ["admin"]}  # the provider's word
    login_page = browser.get("/login")
    assert "/oidc/start?next=%2F" in login_page.text
    answer = browser.get(to_provider(browser, f"/recordings/{RECORDING}"))
    assert answer.status_code == 303 and answer.headers["location"] == f"/recordings/{RECORDING}"
    assert "bwv_session" in browser.cookies and "bwv_oidc" not in browser.cookies
    assert browser.get(f"/recordings/{RECORDING}").status_code == 200
    assert browser.get("/audit").status_code == 403  # an officer, whatever the token says
    [login] = [entry for entry in audit.entries(store.engine) if entry.action == "login"]
    assert login.actor == "pc-jones" and login.detail["via"] == "oidc"
    assert login.detail["subject"] == "subject-pc-jones"
    # PKCE: the station sent an S256 challenge, then the verifier that matches it
    [asked] = provider.authorize_requests
    [redeemed] = provider.token_requests
    assert asked["code_challenge_method"] == "S256" and asked["nonce"] and asked["state"]
    assert redeemed["code_verifier"] and "client_secret" not in redeemed
    digest = __import__("hashlib").sha256(redeemed["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == asked["code_challenge"]


def test_without_oidc_settings_there_is_no_oidc_route(store: EvidenceStore) -> None:
    from support.station import serve_web

    plain = serve_web(store)
    try:
        assert http.get(plain.url + "/oidc/start", timeout=10).status_code == 404
        assert http.get(plain.url + "/oidc/callback?code=x&state=y",
                        timeout=10).status_code == 404
        assert "/oidc/start" not in http.get(plain.url + "/login", timeout=10).text
    finally:
        plain.stop()


# --- the attacks --------------------------------------------------------------------------------


def test_a_wrong_state_is_refused(browser: StaffBrowser, store: EvidenceStore) -> None:
    callback = to_provider(browser)
    answer = browser.get(with_query(callback, state="forged-state-" + "a" * 30))
    refused(browser, answer, store, "bad_state")


def test_a_callback_without_a_state_is_refused(browser: StaffBrowser,
                                               store: EvidenceStore) -> None:
    callback = to_provider(browser)
    path, _, query = callback.partition("?")
    code = parse_qs(query)["code"][0]
    refused(browser, browser.get(f"{path}?code={code}"), store, "bad_state")


def test_a_state_made_for_another_browser_is_refused(station: ServedStation,
                                                     browser: StaffBrowser,
                                                     store: EvidenceStore) -> None:
    # login CSRF: an attacker signs in at the provider and sends their callback to a victim
    attacker = StaffBrowser(station.url, store)
    callback = to_provider(attacker)
    attacker.close()
    refused(browser, browser.get(callback), store, "state_of_another_browser")


def test_a_replayed_code_is_refused(station: ServedStation, browser: StaffBrowser,
                                    store: EvidenceStore) -> None:
    first = to_provider(browser)
    assert browser.get(first).status_code == 303
    other = StaffBrowser(station.url, store)
    assert browser.get(first).status_code == 401  # the same callback again: state used
    fresh = to_provider(other)  # a new state of the other browser, with the old code
    old_code = parse_qs(first.partition("?")[2])["code"][0]
    answer = other.get(with_query(fresh, code=old_code))
    assert answer.status_code == 401 and "bwv_session" not in other.cookies
    assert [entry.detail["reason"] for entry in failures(store)] == ["bad_state",
                                                                      "token_refused"]
    other.close()


def test_a_token_signed_by_another_key_is_refused(browser: StaffBrowser,
                                                  provider: OidcProvider,
                                                  store: EvidenceStore) -> None:
    provider.tamper.sign_with = ECKey.generate_key("P-256",
                                                   parameters={"kid": "provider-key-1"})
    refused(browser, sign_in(browser), store, "bad_signature")


def test_an_unsigned_token_is_refused(browser: StaffBrowser, provider: OidcProvider,
                                      store: EvidenceStore, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    def unsigned(grant: object) -> str:
        now = store.clock() // 1_000_000
        header = {"alg": "none", "kid": "provider-key-1"}
        claims = {"iss": provider.url, "aud": CLIENT_ID, "sub": "s", "iat": now,
                  "exp": now + 300, "nonce": getattr(grant, "nonce"),
                  "preferred_username": "pc-jones"}

        def part(value: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        return f"{part(header)}.{part(claims)}."

    monkeypatch.setattr(provider, "id_token", unsigned)
    refused(browser, sign_in(browser), store, "bad_signature")


@pytest.mark.parametrize("audience", ["another-client", ["another-client"],
                                      [CLIENT_ID, "another-client"]],
                         ids=["other", "other-list", "shared-without-azp"])
def test_a_token_for_another_audience_is_refused(browser: StaffBrowser, provider: OidcProvider,
                                                 store: EvidenceStore, audience: object) -> None:
    provider.tamper.audience = audience
    refused(browser, sign_in(browser), store, "wrong_audience")


def test_a_token_from_another_issuer_is_refused(browser: StaffBrowser, provider: OidcProvider,
                                                store: EvidenceStore) -> None:
    provider.tamper.issuer = "https://idp.evil.example"
    refused(browser, sign_in(browser), store, "wrong_issuer")


def test_an_expired_token_is_refused(browser: StaffBrowser, provider: OidcProvider,
                                     store: EvidenceStore) -> None:
    provider.tamper.expires_in_s = -120  # past the minute of leeway
    refused(browser, sign_in(browser), store, "expired_token")


def test_a_token_with_another_nonce_is_refused(browser: StaffBrowser, provider: OidcProvider,
                                               store: EvidenceStore) -> None:
    provider.tamper.nonce = "nonce-of-another-login"
    refused(browser, sign_in(browser), store, "wrong_nonce")


def test_an_unknown_user_is_refused_and_never_made(browser: StaffBrowser,
                                                   provider: OidcProvider,
                                                   store: EvidenceStore) -> None:
    provider.user = "chief.constable"
    refused(browser, sign_in(browser), store, "unknown_user")
    assert failures(store)[0].detail["claimed"] == "chief.constable"
    assert accounts.get_user(store.engine, "chief.constable") is None


def test_a_disabled_user_is_refused(browser: StaffBrowser, store: EvidenceStore) -> None:
    accounts.disable_user(store.engine, "pc-jones", by="admin", now_us=store.clock())
    refused(browser, sign_in(browser), store, "disabled")
    assert failures(store)[0].actor == "pc-jones"


def test_an_error_from_the_provider_is_refused(browser: StaffBrowser,
                                               store: EvidenceStore) -> None:
    callback = to_provider(browser)
    path = callback.partition("?")[0]
    state = parse_qs(callback.partition("?")[2])["state"][0]
    answer = browser.get(f"{path}?error=access_denied&state={state}")
    refused(browser, answer, store, "provider_refused")


# --- MFA at the identity provider ---------------------------------------------------------------


def test_a_required_amr_the_token_lacks_is_refused(store: EvidenceStore,
                                                   provider: OidcProvider) -> None:
    served = serve_with_oidc(store, provider, amr_values=("hwk",))
    browser = StaffBrowser(served.url, store)
    try:
        refused(browser, sign_in(browser), store, "mfa_not_shown")
        provider.tamper.claims = {"amr": ["pwd", "hwk"]}
        assert sign_in(browser).status_code == 303
    finally:
        browser.close()
        served.stop()


def test_a_required_acr_is_checked(store: EvidenceStore, provider: OidcProvider) -> None:
    served = serve_with_oidc(store, provider, acr_values=("urn:force:mfa",))
    browser = StaffBrowser(served.url, store)
    try:
        provider.tamper.claims = {"acr": "urn:force:password-only"}
        refused(browser, sign_in(browser), store, "mfa_not_shown")
        provider.tamper.claims = {}
        assert sign_in(browser).status_code == 303
    finally:
        browser.close()
        served.stop()


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("issuer", "redirect", "says"), [
    ("http://idp.example", "https://station.example/oidc/callback", "must be an https://"),
    ("https://idp.example", "http://station.example/oidc/callback", "must be an https://"),
    ("https://idp.example", "https://station.example/callback", "must end in /oidc/callback"),
    ("ftp://idp.example", "https://station.example/oidc/callback", "must be an https://"),
])
def test_settings_that_would_send_codes_in_the_clear_are_refused(issuer: str, redirect: str,
                                                                  says: str) -> None:
    with pytest.raises(OidcConfigError, match=says):
        OidcSettings(issuer=issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                     redirect_url=redirect)


# --- `bwv station serve --web-oidc-...`, the real command ---------------------------------------


def test_serve_logs_staff_in_through_the_provider(tmp_path: Path) -> None:
    import signal
    import time

    from support import warm

    data = tmp_path / "station"
    made = make_store(data)
    add_staff(made, "pc-jones", "officer", officer_id="4121")
    made.engine.dispose()
    provider = OidcProvider(lambda: int(time.time()))
    secret = tmp_path / "client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    secret.chmod(0o600)
    device_port, web_port = free_port(), free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        process = warm.spawn([
            "station", "serve", "--data", str(data), "--listen", f"127.0.0.1:{device_port}",
            "--web-listen", f"127.0.0.1:{web_port}", "--sweep-every", "0",
            "--web-oidc-issuer", provider.url, "--web-oidc-client-id", CLIENT_ID,
            "--web-oidc-client-secret-file", str(secret), "--web-oidc-redirect-url",
            f"http://127.0.0.1:{web_port}/oidc/callback", "--web-oidc-amr", "otp"],
            stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                http.get(f"http://127.0.0.1:{web_port}/login", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, \
                    (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
        browser = StaffBrowser(f"http://127.0.0.1:{web_port}", made)
        answer = sign_in(browser)
        assert answer.status_code == 303, answer.text
        assert browser.get("/").status_code == 200
        browser.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
        provider.stop()
    said = (tmp_path / "serve.log").read_text()
    assert f"log in through {provider.url}" in said and "Traceback" not in said


@pytest.mark.parametrize(("extra", "message"), [
    (["--web-oidc-issuer", "https://idp.example"], "give --web-listen"),
    (["--web-listen", "127.0.0.1:8471", "--web-oidc-issuer", "https://idp.example"],
     "also needs --web-oidc-client-id, --web-oidc-client-secret-file, "
     "--web-oidc-redirect-url"),
    (["--web-listen", "127.0.0.1:8471", "--web-oidc-issuer", "http://idp.example",
      "--web-oidc-client-id", "c", "--web-oidc-client-secret-file", "{secret}",
      "--web-oidc-redirect-url", "http://127.0.0.1:8471/oidc/callback"], "must be an https://"),
    (["--web-listen", "127.0.0.1:8471", "--web-oidc-issuer", "https://idp.example",
      "--web-oidc-client-id", "c", "--web-oidc-client-secret-file", "{open}",
      "--web-oidc-redirect-url", "http://127.0.0.1:8471/oidc/callback"], "chmod 600"),
    (["--web-listen", "127.0.0.1:8471", "--web-oidc-issuer", "https://idp.example",
      "--web-oidc-client-id", "c", "--web-oidc-client-secret-file", "{secret}",
      "--web-oidc-redirect-url", "https://station.example/oidc/callback"],
     "add --web-host station.example"),
    (["--web-listen", "127.0.0.1:8471", "--web-oidc-issuer", "https://idp.example",
      "--web-oidc-client-id", "c", "--web-oidc-client-secret-file", "{secret}",
      "--web-oidc-redirect-url", "http://127.0.0.1:8471/oidc/callback",
      "--web-proxy-secret-file", "{proxy}"], "choose one"),
])
def test_serve_refuses_oidc_settings_it_cannot_use(tmp_path: Path, extra: list[str],
                                                   message: str) -> None:
    from support import warm

    files = {"secret": (CLIENT_SECRET, 0o600), "open": (CLIENT_SECRET, 0o644),
             "proxy": ("p" * 40, 0o600)}
    for name, (text, mode) in files.items():
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(mode)
    args = [part.format(**{name: str(tmp_path / name) for name in files}) for part in extra]
    result = warm.run(["station", "serve", "--data", str(tmp_path / "station"), "--listen",
                       "127.0.0.1:8470", *args], timeout=60)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "station").exists()


def test_a_state_older_than_its_time_is_refused(browser: StaffBrowser, store: EvidenceStore,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from recorder.station.web import oidc

    callback = to_provider(browser)
    monkeypatch.setattr(oidc, "PENDING_S", -1)  # every login under way is too old now
    refused(browser, browser.get(callback), store, "state_expired")
