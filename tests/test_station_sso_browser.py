"""OpenID Connect login and notes in a real browser (issue 14): Debian's chromium under
Playwright follows the login page's "force's sign-in" link to a real provider started by the
test and back, lands logged in with the station's role, and adds a note on a recording through
its page. Screenshots are kept (support.browser)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import browser, page, page_problems, screenshot
from support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider
from support.staff import add_staff
from support.station import (ServedStation, camera_key, ingest, make_recording, make_store,
                             serve_app)

from recorder.integrity.keys import DeviceKey
from recorder.station import audit, devices
from recorder.station.evidence_store import EvidenceStore
from recorder.station.limits import Limits
from recorder.station.notes import notes_of
from recorder.station.web import create_web_app
from recorder.station.web.security import WebSettings
from recorder.station.web.sso_settings import OidcSettings

__all__ = ["browser", "camera_key", "page"]  # fixtures used by name below

pytestmark = pytest.mark.usefixtures("no_fsync")


@pytest.fixture()
def store(tmp_path: Path, camera_key: DeviceKey) -> EvidenceStore:
    store = make_store(tmp_path / "station")
    store.enroll("cam7", camera_key.public_key, by="admin")
    devices.assign(store, "cam7", "4121", by="admin", from_us=0)
    assert ingest(store, make_recording(tmp_path / "r", camera_key)).verified
    add_staff(store, "pc-jones", "officer", officer_id="4121", team="blue")
    return store


@pytest.fixture()
def station(store: EvidenceStore) -> Iterator[tuple[ServedStation, OidcProvider]]:
    import socket

    provider = OidcProvider(lambda: int(time.time()))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    oidc = OidcSettings(issuer=provider.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                        redirect_url=f"http://127.0.0.1:{port}/oidc/callback",
                        amr_values=("otp",))
    served = serve_app(create_web_app(store, WebSettings(oidc=oidc)), store, port, None,
                       Limits.default())
    yield served, provider
    served.stop()
    provider.stop()


def test_an_officer_signs_in_at_the_provider_and_adds_a_note(
        page: Any, station: tuple[ServedStation, OidcProvider], store: EvidenceStore) -> None:
    web, provider = station
    [row] = store.list_recordings()
    problems = page_problems(page)
    page.goto(web.url + "/")
    assert "/login" in page.url
    screenshot(page, "sso-login-page")
    page.click("text=log in with your force's sign-in")
    page.wait_for_url(web.url + "/")
    assert row.recording_id in page.content() and "pc-jones" in page.content()
    assert len(provider.authorize_requests) == 1 and len(provider.token_requests) == 1
    screenshot(page, "sso-logged-in")

    page.click(f"text={row.recording_id}")
    page.fill("textarea[name=text]", "Suspect's face visible at 0:02.\n<b>not bold</b>")
    page.click("text=add note")
    page.wait_for_url(f"{web.url}/recordings/{row.recording_id}")
    note = page.locator(".note-text")
    assert note.inner_text() == "Suspect's face visible at 0:02.\n<b>not bold</b>"
    assert page.locator(".notes b").count() == 0  # shown as text, never as markup
    screenshot(page, "sso-note-added")
    [written] = notes_of(store, row.recording_id)
    assert written.author == "pc-jones"
    logins = [e for e in audit.entries(store.engine) if e.action == "login"]
    assert [(e.actor, e.detail["via"]) for e in logins] == [("pc-jones", "oidc")]
    unexpected = [p for p in problems.all() if not p.endswith("/favicon.ico)")]
    assert unexpected == [], problems.all()
