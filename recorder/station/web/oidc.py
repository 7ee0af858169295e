"""OpenID Connect login of staff (``bwv station serve --web-oidc-issuer URL ...``): the
authorization code flow with PKCE against a force's identity provider, after which the person
is the station account the ID token names; the role is the station's.

``GET /oidc/start`` sends the browser to the provider with a fresh ``state``, ``nonce`` and PKCE
challenge (S256; authlib makes the challenge), remembered here and bound to the browser by a
cookie of its own. ``GET /oidc/callback`` accepts each state once, from the browser it was made
for, redeems the code at the token endpoint with the PKCE verifier and the client secret, and
checks the ID token: its signature against the issuer's JWKS (joserfc, authlib's JOSE library),
``iss``, ``aud`` (and ``azp``), ``exp``, ``iat``, the ``nonce``, and ``acr``/``amr`` when the
station asks for them. The account named by ``sub`` or a claim (default
``preferred_username``) must exist and be enabled: no account is ever made from a token.
Every success and every failure is an audit entry (``login``/``login_failed``, ``"via":
"oidc"``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError, MissingKeyError
from joserfc.jwk import KeySet
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import accounts
from ..audit import Action
from ..evidence_store import EvidenceStore
from .html import e, page
from .security import SESSION_COOKIE, WebSettings, cookie_header
from .sso_settings import CALLBACK_PATH, OidcConfigError, OidcSettings, check_url

log = logging.getLogger("recorder.station.web")

BROWSER_COOKIE = "bwv_oidc"  # binds a pending login to the browser that started it
PENDING_S = 600  # a login not finished in ten minutes is forgotten
PENDING_MAX = 10_000
LEEWAY_S = 60  # clock difference tolerated between the station and the provider
METADATA_TTL_S = 3600
JWKS_REFETCH_S = 60  # an unknown key id fetches the JWKS again at most this often
SIGNING_ALGORITHMS = ("RS256", "PS256", "ES256", "ES384", "EdDSA")  # never "none" or HS*
HTTP_TIMEOUT_S = 10.0
MAX_TOKEN_BYTES = 64 * 1024
ANONYMOUS = "anonymous"  # the actor of a failure that names no account
FAILED_MESSAGE = ("The sign-in with the identity provider did not succeed, or named no "
                  "account of this station that may log in.")


class OidcLoginFailed(Exception):
    """A login through the provider that did not succeed; ``reason`` is for the audit log."""

    def __init__(self, reason: str, actor: str = ANONYMOUS, **detail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.actor = actor
        self.detail = detail


@dataclass(frozen=True)
class Pending:
    """A login sent to the provider and not back yet."""

    browser: str  # the value of the browser's BROWSER_COOKIE
    nonce: str
    verifier: str  # the PKCE code verifier
    next_path: str
    started: float  # time.monotonic()


class PendingLogins:
    """The logins under way, by ``state``: each taken once, by the browser it was made for,
    within PENDING_S. Kept in memory: a restart forgets them, and the person starts again."""

    def __init__(self) -> None:
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, state: str, pending: Pending) -> None:
        with self._lock:
            self._pending[state] = pending
            while len(self._pending) > PENDING_MAX:
                self._pending.popitem(last=False)

    def take(self, state: str, browser: str) -> Pending:
        """The login of ``state``, removed; OidcLoginFailed when it is unknown, already used,
        too old, or was started by another browser."""
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None:
            raise OidcLoginFailed("bad_state")
        if not browser or not hmac.compare_digest(pending.browser.encode(), browser.encode()):
            raise OidcLoginFailed("state_of_another_browser")
        if time.monotonic() - pending.started > PENDING_S:
            raise OidcLoginFailed("state_expired")
        return pending


class Provider:
    """The identity provider as its discovery document describes it, and its signing keys
    (each fetched when first needed, and again when stale or when a token names a key id the
    station has not seen)."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._lock = asyncio.Lock()

    def client(self) -> httpx.AsyncClient:
        verify: Any = self.settings.cafile if self.settings.cafile else True
        return httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, verify=verify, follow_redirects=False)

    async def metadata(self) -> dict[str, Any]:
        async with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL_S:
                self._metadata = await self._discover()
                self._metadata_at = time.monotonic()
            return self._metadata

    async def _discover(self) -> dict[str, Any]:
        url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
        found = await self._get_json(url, "discovery")
        if found.get("issuer") != self.settings.issuer:
            raise OidcLoginFailed("provider_misconfigured", detail="the discovery document "
                                  "names another issuer")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = found.get(name)
            if not isinstance(value, str):
                raise OidcLoginFailed("provider_misconfigured", detail=f"no {name}")
            try:
                check_url(name, value)
            except OidcConfigError as exc:
                raise OidcLoginFailed("provider_misconfigured", detail=str(exc)) from None
        return found

    async def keys(self, refetch: bool = False) -> KeySet:
        async with self._lock:
            stale = time.monotonic() - self._keys_at > METADATA_TTL_S
            may_refetch = time.monotonic() - self._keys_at > JWKS_REFETCH_S
            if self._keys is None or stale or (refetch and may_refetch):
                assert self._metadata is not None
                document = await self._get_json(str(self._metadata["jwks_uri"]), "jwks")
                try:
                    self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
                except (JoseError, ValueError, KeyError, TypeError) as exc:
                    raise OidcLoginFailed("provider_misconfigured",
                                          detail=f"unreadable JWKS: {exc}") from None
                self._keys_at = time.monotonic()
            return self._keys

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self.client() as client:
                answer = await client.get(url)
        except httpx.HTTPError as exc:
            raise OidcLoginFailed("provider_unreachable", detail=f"{what}: {exc}") from None
        return _json_object(answer, what)


def _json_object(answer: httpx.Response, what: str) -> dict[str, Any]:
    if answer.status_code != 200 or len(answer.content) > MAX_TOKEN_BYTES:
        raise OidcLoginFailed("provider_misconfigured" if what != "token" else "token_refused",
                              detail=f"{what}: HTTP {answer.status_code}")
    try:
        found = answer.json()
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise OidcLoginFailed("provider_misconfigured", detail=f"{what}: not a JSON object")
    return found


def check_claims(claims: dict[str, Any], settings: OidcSettings, nonce: str,
                 now_s: int) -> str:
    """The account name an ID token's ``claims`` give, once ``iss``, ``aud``, ``azp``,
    ``exp``, ``iat``, ``nonce`` and the asked-for ``acr``/``amr`` hold; OidcLoginFailed
    naming the first that does not."""
    if claims.get("iss") != settings.issuer:
        raise OidcLoginFailed("wrong_issuer")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or settings.client_id not in audiences:
        raise OidcLoginFailed("wrong_audience")
    if len(audiences) > 1 and claims.get("azp") != settings.client_id:
        raise OidcLoginFailed("wrong_audience")
    expires, issued = claims.get("exp"), claims.get("iat")
    if not isinstance(expires, int) or isinstance(expires, bool) or expires + LEEWAY_S <= now_s:
        raise OidcLoginFailed("expired_token")
    if not isinstance(issued, int) or isinstance(issued, bool) or issued > now_s + LEEWAY_S:
        raise OidcLoginFailed("token_from_the_future")
    given = claims.get("nonce")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), nonce.encode()):
        raise OidcLoginFailed("wrong_nonce")
    name = claims.get(settings.user_claim)
    subject = str(claims.get("sub", ""))[:128]
    if not isinstance(name, str) or not name:
        raise OidcLoginFailed("no_user_claim", subject=subject)
    if settings.acr_values and claims.get("acr") not in settings.acr_values:
        raise OidcLoginFailed("mfa_not_shown", subject=subject, claimed=name[:64])
    methods = claims.get("amr")
    if settings.amr_values and not (isinstance(methods, list)
                                    and set(settings.amr_values) & set(map(str, methods))):
        raise OidcLoginFailed("mfa_not_shown", subject=subject, claimed=name[:64])
    return name.strip().lower()


def oidc_routes(store: EvidenceStore, settings: WebSettings,
                next_path: Callable[[str | None], str]) -> list[Route]:
    """GET /oidc/start and GET /oidc/callback; none when OpenID Connect is off.
    ``next_path`` makes a ``next`` parameter safe (recorder.station.web.auth.safe_next)."""
    oidc = settings.oidc
    if oidc is None:
        return []
    provider = Provider(oidc)
    pending = PendingLogins()

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    async def failed(request: Request, failure: OidcLoginFailed) -> Response:
        detail = {"client": client_of(request), "via": "oidc", "reason": failure.reason,
                  **failure.detail}
        log.warning("OpenID Connect login failed from %s: %s %s", detail["client"],
                    failure.reason, failure.detail.get("detail", ""))
        await run_in_threadpool(store.record_access, failure.actor, Action.LOGIN_FAILED, None,
                                detail)
        body = (f"<h1>Not logged in</h1><p class=failed role=alert>{e(FAILED_MESSAGE)}</p>"
                "<p><a href='/login'>log in again</a></p>")
        response = page("log in", body, status=401)
        response.headers.append("set-cookie", cookie_header(BROWSER_COOKIE, "", max_age=0,
                                                            path="/oidc", same_site="Lax"))
        return response

    async def start(request: Request) -> Response:
        try:
            metadata = await provider.metadata()
        except OidcLoginFailed as failure:
            return await failed(request, failure)
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)  # 64 characters: RFC 7636 asks 43 to 128
        browser = request.cookies.get(BROWSER_COOKIE, "")
        if not 32 <= len(browser) <= 64:
            browser = secrets.token_urlsafe(32)
        pending.add(state, Pending(browser, nonce, verifier,
                                   next_path(request.query_params.get("next")),
                                   time.monotonic()))
        query = urlencode({"response_type": "code", "client_id": oidc.client_id,
                           "redirect_uri": oidc.redirect_url, "scope": oidc.scope,
                           "state": state, "nonce": nonce,
                           "code_challenge": create_s256_code_challenge(verifier),
                           "code_challenge_method": "S256"})
        endpoint = str(metadata["authorization_endpoint"])
        response = RedirectResponse(f"{endpoint}{'&' if '?' in endpoint else '?'}{query}",
                                    status_code=303)
        response.headers.append("set-cookie", cookie_header(
            BROWSER_COOKIE, browser, path="/oidc", max_age=PENDING_S, same_site="Lax"))
        return response

    async def callback(request: Request) -> Response:
        try:
            user, subject, target = await finish(request)
            token, _ = await run_in_threadpool(accounts.start_session, store.engine, user,
                                               now_us=store.clock(), client=client_of(request))
        except OidcLoginFailed as failure:
            return await failed(request, failure)
        except accounts.LoginRefused:  # disabled a moment ago
            return await failed(request, OidcLoginFailed("disabled", user.name))
        await run_in_threadpool(store.record_access, user.name, Action.LOGIN, None,
                                {"client": client_of(request), "via": "oidc",
                                 "subject": subject})
        response = RedirectResponse(target, status_code=303)
        response.headers.append("set-cookie", cookie_header(SESSION_COOKIE, token))
        response.headers.append("set-cookie", cookie_header(BROWSER_COOKIE, "", max_age=0,
                                                            path="/oidc", same_site="Lax"))
        return response

    async def finish(request: Request) -> tuple[accounts.User, str, str]:
        """The account the provider's answer logs in, its subject, and where to go next."""
        params = request.query_params
        if "error" in params:
            raise OidcLoginFailed("provider_refused", detail=params.get("error", "")[:100])
        state, code = params.get("state", "")[:200], params.get("code", "")[:2000]
        if not state or not code:
            raise OidcLoginFailed("bad_state" if not state else "no_code")
        login = pending.take(state, request.cookies.get(BROWSER_COOKIE, ""))
        metadata = await provider.metadata()
        id_token = await redeem(str(metadata["token_endpoint"]), code, login.verifier)
        claims = await verified_claims(id_token)
        name = check_claims(claims, oidc, login.nonce, store.clock() // 1_000_000)
        subject = str(claims.get("sub", ""))[:128]
        user = await run_in_threadpool(accounts.get_user, store.engine, name)
        if user is None:
            raise OidcLoginFailed("unknown_user", subject=subject, claimed=name[:64])
        if user.disabled:
            raise OidcLoginFailed("disabled", user.name, subject=subject)
        return user, subject, login.next_path

    async def redeem(endpoint: str, code: str, verifier: str) -> str:
        """The ID token the token endpoint gives for ``code`` (client_secret_basic)."""
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": oidc.redirect_url, "code_verifier": verifier}
        try:
            async with provider.client() as client:
                answer = await client.post(endpoint, data=form,
                                           auth=(oidc.client_id, oidc.client_secret))
        except httpx.HTTPError as exc:
            raise OidcLoginFailed("provider_unreachable", detail=f"token: {exc}") from None
        if answer.status_code != 200:
            raise OidcLoginFailed("token_refused", detail=f"HTTP {answer.status_code}: "
                                  f"{answer.text[:100]}")
        found = _json_object(answer, "token")
        id_token = found.get("id_token")
        if not isinstance(id_token, str) or len(id_token) > MAX_TOKEN_BYTES:
            raise OidcLoginFailed("no_id_token")
        return id_token

    async def verified_claims(id_token: str) -> dict[str, Any]:
        """The claims of ``id_token`` once its signature checks against the issuer's keys."""
        for refetch in (False, True):
            keys = await provider.keys(refetch=refetch)
            try:
                decoded = jwt.decode(id_token, keys, algorithms=list(SIGNING_ALGORITHMS))
            except MissingKeyError:
                continue  # a key id not seen yet: the provider may have rotated its keys
            except (JoseError, ValueError, TypeError) as exc:
                raise OidcLoginFailed("bad_signature", detail=type(exc).__name__) from None
            return dict(decoded.claims)
        raise OidcLoginFailed("bad_signature", detail="no key of the issuer has that key id")

    return [Route("/oidc/start", start, methods=["GET"]),
            Route(CALLBACK_PATH, callback, methods=["GET"])]
