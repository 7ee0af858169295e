"""Staff accounts and a scripted browser for the staff pages' tests: an account of a role made
in the catalogue (recorder.station.accounts), and an HTTP client that logs in through the real
login form with the password and the TOTP code of the moment, keeps its cookies, and sends each
form with the page's CSRF token. (httpx's cookie jar never sends a Secure cookie over http,
which browsers do on loopback, so the cookies are kept here.)"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest

from recorder.station import accounts
from recorder.station.evidence_store import EvidenceStore
from recorder.integrity.keys import DeviceKey
from recorder.station import devices
from support.station import FakeClock, ServedStation, ingest, make_recording, make_store, serve_web

CSRF_FIELD = re.compile(r'name=csrf value="([^"]+)"')


@dataclass(frozen=True)
class Staff:
    name: str
    password: str
    secret: str | None
    user: accounts.User


def add_staff(store: EvidenceStore, name: str, role: str, *, officer_id: str | None = None,
              team: str | None = None) -> Staff:
    password = f"{name} uses a long passphrase 42"
    enrolment = accounts.add_user(store.engine, name, role, password, by="admin",
                                  now_us=store.clock(), officer_id=officer_id, team=team)
    return Staff(name, password, enrolment.totp_secret, enrolment.user)


class StaffBrowser:
    """One person's visits to the staff pages at ``url``."""

    def __init__(self, url: str, store: EvidenceStore) -> None:
        self.client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
        self.store = store
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, *, form: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{n}={v}" for n, v in self.cookies.items())
        if form is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            kwargs["content"] = httpx.QueryParams(dict(form)).__str__().encode()
        response = self.client.request(method, path, headers=sent, **kwargs)
        for value in response.headers.get_list("set-cookie"):
            for name, morsel in SimpleCookie(value).items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        found = CSRF_FIELD.search(response.text) if "text/html" in response.headers.get(
            "content-type", "") else None
        if found is not None:
            self.csrf = found.group(1)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form: Mapping[str, str], *, csrf: bool = True,
             **kwargs: Any) -> httpx.Response:
        fields = dict(form)
        if csrf:
            fields.setdefault("csrf", self.csrf)
        return self.request("POST", path, form=fields, **kwargs)

    def login(self, staff: Staff, code: str | None = None,
              password: str | None = None) -> httpx.Response:
        """The login form, filled in: the code of the store's clock unless one is given."""
        self.get("/login")
        if code is None:
            assert staff.secret is not None
            code = accounts.totp_code(staff.secret, self.store.clock())
        return self.post("/login", {"name": staff.name, "code": code,
                                    "password": staff.password if password is None
                                    else password})


def logged_in(url: str, store: EvidenceStore, role: str = "disclosure",
              name: str = "do-lee") -> StaffBrowser:
    """A browser on the staff pages at ``url``, logged in as a new account of ``role``."""
    browser = StaffBrowser(url, store)
    answer = browser.login(add_staff(store, name, role))
    assert answer.status_code == 303, answer.text
    return browser


@pytest.fixture()
def web(store: EvidenceStore) -> Iterator[ServedStation]:
    """The staff pages of the test module's ``store`` fixture, on a listener of their own."""
    served = serve_web(store)
    yield served
    served.stop()


def station_with_one_recording(tmp_path: Path, camera_key: DeviceKey, clock: FakeClock,
                               utc_start: str = "2026-11-23T07:00:00.000000Z") -> EvidenceStore:
    """A station on ``clock`` with cam7 enrolled, worn by officer 4121 since the day before,
    and one verified recording of it made at ``utc_start``."""
    store = make_store(tmp_path / "station", clock=clock)
    store.enroll("cam7", camera_key.public_key, by="admin")
    devices.assign(store, "cam7", "4121", by="admin", from_us=store.clock() - 86_400_000_000)
    assert ingest(store, make_recording(tmp_path / "r", camera_key,
                                        utc_start=utc_start)).verified
    return store
