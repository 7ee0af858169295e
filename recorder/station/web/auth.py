"""Logging in and out of the staff pages, and the session of a request.

Login is name, password and the authenticator app's code in one form (recorder.station.accounts
checks all three, locks an account after repeated failures and audits every attempt). The login
form is protected against cross-site submission by a random token in a cookie of its own and in
the form; once in, every state-changing form carries the session's CSRF token. The session
cookie holds a random token the catalogue keeps only as a hash.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import accounts
from ..evidence_store import EvidenceStore
from .html import e, error_page, page
from .security import LOGIN_COOKIE, SESSION_COOKIE, WebSettings, cookie_header, read_form


class NotLoggedIn(Exception):
    """The request has no live session (none, expired, ended, or its user disabled)."""


class ForbiddenForm(Exception):
    """A state-changing form without the right CSRF token."""


@dataclass(frozen=True)
class Visitor:
    """A logged-in person on this request: their session and where they connect from."""

    session: accounts.WebSession
    token: str
    client: str

    @property
    def user(self) -> accounts.User:
        return self.session.user

    @property
    def name(self) -> str:
        return self.session.user.name


def client_of(request: Request) -> str:
    """The connecting address, as the socket says (a header such as X-Forwarded-For is never
    believed: anyone can send one)."""
    return request.client.host if request.client else "unknown"


async def visitor(request: Request, store: EvidenceStore, settings: WebSettings) -> Visitor:
    """The logged-in visitor of ``request``; NotLoggedIn if there is none."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token or len(token) > 128:
        raise NotLoggedIn()
    session = await run_in_threadpool(accounts.session_for, store.engine, token,
                                      now_us=store.clock(), idle_s=settings.idle_timeout_s,
                                      max_age_s=settings.max_session_s)
    if session is None:
        raise NotLoggedIn()
    return Visitor(session, token, client_of(request))


def check_csrf(who: Visitor, fields: dict[str, str]) -> None:
    """ForbiddenForm unless the form carries this session's CSRF token."""
    if not accounts.csrf_ok(who.session, fields.get("csrf", "")):
        raise ForbiddenForm()


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this station, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_routes(store: EvidenceStore, settings: WebSettings) -> list[Route]:
    """GET and POST /login, POST /logout."""

    def login_page(next_path: str, message: str = "", status: int = 200) -> Response:
        token = secrets.token_urlsafe(32)
        notice = f"<p class=failed role=alert>{e(message)}</p>" if message else ""
        sso = ""
        if settings.oidc is not None:
            start = f"/oidc/start?{urlencode({'next': next_path})}"
            sso = (f'<p class=sso><a href="{e(start)}">log in with your force\'s sign-in</a>'
                   "</p>")
        body = (f"<h1>bwv station</h1>{notice}<form method=post action=/login class=login>"
                f'<input type=hidden name=csrf value="{e(token)}">'
                f'<input type=hidden name=next value="{e(next_path)}">'
                "<label>name <input name=name autocomplete=username required></label>"
                "<label>password <input name=password type=password "
                "autocomplete=current-password required></label>"
                "<label>code from your authenticator app <input name=code "
                "inputmode=numeric autocomplete=one-time-code pattern='[0-9]{6}'></label>"
                "<button>log in</button></form>" + sso)
        response = page("log in", body, status=status)
        response.headers.append("set-cookie", cookie_header(LOGIN_COOKIE, token, path="/login"))
        return response

    async def show(request: Request) -> Response:
        if settings.proxy is not None:  # the proxy has logged this person in already
            return RedirectResponse(safe_next(request.query_params.get("next")), 303)
        return login_page(safe_next(request.query_params.get("next")))

    async def submit(request: Request) -> Response:
        if settings.proxy is not None:
            return error_page(403, "Staff log in through the force's sign-in here, not with "
                              "a station password.")
        fields = await read_form(request)
        expected = request.cookies.get(LOGIN_COOKIE, "")
        given = fields.get("csrf", "")
        if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
            return login_page("/", "The login form expired: try again.", 400)
        target = safe_next(fields.get("next"))
        client = client_of(request)
        try:
            user = await run_in_threadpool(
                accounts.login, store.engine, fields.get("name", "")[:256],
                fields.get("password", "")[:1024], fields.get("code", "")[:16],
                now_us=store.clock(), client=client)
            token, _ = await run_in_threadpool(accounts.start_session, store.engine, user,
                                               now_us=store.clock(), client=client)
        except accounts.LoginRefused as refused:  # disabled in between, too
            return login_page(target, str(refused), 401)
        response = RedirectResponse(target, status_code=303)
        response.headers.append("set-cookie", cookie_header(SESSION_COOKIE, token))
        response.headers.append("set-cookie", cookie_header(LOGIN_COOKIE, "", max_age=0,
                                                            path="/login"))
        return response

    async def logout(request: Request) -> Response:
        who = await visitor(request, store, settings)
        check_csrf(who, await read_form(request))
        await run_in_threadpool(accounts.end_session, store.engine, who.token,
                                now_us=store.clock(), client=who.client)
        response = RedirectResponse("/login", status_code=303)
        response.headers.append("set-cookie", cookie_header(SESSION_COOKIE, "", max_age=0))
        return response

    return [Route("/login", show, methods=["GET"]), Route("/login", submit, methods=["POST"]),
            Route("/logout", logout, methods=["POST"])]
