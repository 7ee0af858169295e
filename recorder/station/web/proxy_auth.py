"""The trusted reverse-proxy mode of the staff pages (``bwv station serve --web-proxy-secret-file
FILE``): a force's single sign-on proxy authenticates staff and names them in a header, and
proves it is that proxy with a shared secret in another header.

Off unless a secret file is given; then every request to the staff pages must carry the secret
(compared in constant time) and the name of an existing, enabled station account, or it is
refused with an error page and an audit entry. The role is the station's, never the proxy's.
When the mode is off the user header means nothing at all. A station session (and its CSRF
token) is started for the person the proxy names, the first time, and replaced whenever the
proxy names someone else.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import accounts
from ..audit import Action
from ..evidence_store import EvidenceStore
from .html import error_page
from .secret_file import read_secret_file
from .security import SESSION_COOKIE, WebSettings, cookie_header
from .sso_settings import ProxySettings

log = logging.getLogger("recorder.station.web")

MIN_SECRET_CHARS = 32
PROXY_ACTOR = "anonymous"  # who a refusal naming no account is audited as


def load_proxy_secret(path: Path) -> bytes:
    """The shared secret in ``path``: at least MIN_SECRET_CHARS printable characters, in a
    file nobody but its owner may read (SecretFileError otherwise)."""
    return read_secret_file(path, "proxy secret", MIN_SECRET_CHARS,
                            ", e.g. from `openssl rand -hex 32`")


class ProxyRefusal(Exception):
    """A request the proxy mode refuses: ``reason`` goes to the audit log, ``status`` to the
    page."""

    def __init__(self, status: int, reason: str, actor: str, claimed: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.actor = actor
        self.claimed = claimed


class ProxyAuthentication:
    """ASGI middleware in front of the staff pages: checks the secret and the named account,
    and makes sure the request carries a live session of that account."""

    def __init__(self, app: ASGIApp, store: EvidenceStore, settings: WebSettings,
                 proxy: ProxySettings) -> None:
        self.app = app
        self.store = store
        self.settings = settings
        self.proxy = proxy
        self.user_header = proxy.user_header.lower().encode("latin-1")
        self.secret_header = proxy.secret_header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        client = request.client.host if request.client else "unknown"
        try:
            user = await self._account(scope)
        except ProxyRefusal as refusal:
            detail = {"client": client, "reason": refusal.reason, "via": "proxy"}
            if refusal.claimed:
                detail["claimed"] = refusal.claimed
            log.warning("proxy login refused from %s: %s", client, refusal.reason)
            await run_in_threadpool(self.store.record_access, refusal.actor,
                                    Action.LOGIN_FAILED, None, detail)
            message = ("This station's staff pages are reached through the force's sign-in "
                       "only." if refusal.status == 401 else
                       "The sign-in named no account of this station that may log in.")
            await error_page(refusal.status, message)(scope, receive, send)
            return
        token = request.cookies.get(SESSION_COOKIE, "")
        session = None
        if token and len(token) <= accounts.MAX_TOKEN:
            session = await run_in_threadpool(
                accounts.session_for, self.store.engine, token, now_us=self.store.clock(),
                idle_s=self.settings.idle_timeout_s, max_age_s=self.settings.max_session_s)
        if session is not None and session.user.name == user.name:
            await self.app(scope, receive, send)
            return
        try:
            token = await self._start_session(user, client)
        except accounts.LoginRefused:  # disabled a moment ago
            await error_page(403, "The sign-in named no account of this station that may log "
                             "in.")(scope, receive, send)
            return
        await self.app(_with_session(scope, token), receive, _setting_cookie(send, token))

    async def _account(self, scope: Scope) -> accounts.User:
        """The enabled account the proxy names; ProxyRefusal otherwise."""
        headers = scope.get("headers", [])
        secrets_given = [value for name, value in headers if name == self.secret_header]
        names = [value for name, value in headers if name == self.user_header]
        claimed = names[0].decode("latin-1")[:64] if len(names) == 1 else ""
        if not secrets_given:
            raise ProxyRefusal(401, "proxy_secret_missing", PROXY_ACTOR, claimed)
        if len(secrets_given) > 1 or not hmac.compare_digest(secrets_given[0],
                                                             self.proxy.secret):
            raise ProxyRefusal(401, "proxy_secret_wrong", PROXY_ACTOR, claimed)
        if len(names) != 1 or not claimed.strip():
            raise ProxyRefusal(401, "proxy_user_missing", PROXY_ACTOR)
        wanted = claimed.strip().lower()
        user = await run_in_threadpool(accounts.get_user, self.store.engine, wanted)
        if user is None:
            raise ProxyRefusal(403, "unknown_user", PROXY_ACTOR, claimed)
        if user.disabled:
            raise ProxyRefusal(403, "disabled", user.name)
        return user

    async def _start_session(self, user: accounts.User, client: str) -> str:
        token, _ = await run_in_threadpool(accounts.start_session, self.store.engine, user,
                                           now_us=self.store.clock(), client=client)
        await run_in_threadpool(self.store.record_access, user.name, Action.LOGIN, None,
                                {"client": client, "via": "proxy"})
        return token


def _with_session(scope: Scope, token: str) -> Scope:
    """``scope`` whose Cookie header holds ``token`` as the session (any other session cookie
    the browser sent is dropped: the proxy's word decides who this is)."""
    kept = [(name, value) for name, value in scope.get("headers", []) if name != b"cookie"]
    others = [part.strip() for name, value in scope.get("headers", []) if name == b"cookie"
              for part in value.decode("latin-1").split(";")
              if part.strip() and not part.strip().startswith(SESSION_COOKIE + "=")]
    cookie = "; ".join([*others, f"{SESSION_COOKIE}={token}"])
    return dict(scope, headers=[*kept, (b"cookie", cookie.encode("latin-1"))])


def _setting_cookie(send: Send, token: str) -> Send:
    header = (b"set-cookie", cookie_header(SESSION_COOKIE, token).encode("latin-1"))

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message, headers=[*message.get("headers", []), header])
        await send(message)

    return sending

