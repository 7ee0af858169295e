"""A small, real OpenID Connect provider for the tests: a Starlette app under uvicorn on
loopback serving discovery, /authorize, /token (authorization code with PKCE S256, each code
redeemed once, client_secret_basic) and /jwks, signing ID tokens (ES256) with a key the test
makes. Whoever is "signed in" at the provider is ``user``; the knobs in ``Tamper`` make it
misbehave as an attacker or a misconfigured provider would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "bwv-station"
CLIENT_SECRET = "provider-issued-client-secret-0123456789"


@dataclass
class Tamper:
    """How the next ID tokens are made wrong (None/empty: right)."""

    sign_with: ECKey | None = None  # a key the JWKS does not publish (same kid)
    audience: Any = None
    issuer: str | None = None
    expires_in_s: int = 300
    nonce: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)  # added or replaced


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str
    user: str
    used: bool = False


class OidcProvider:
    """The provider at ``url`` (its issuer); ``clock`` gives seconds since the epoch (the
    station's clock in these tests, so that ``exp`` is judged on the same time line)."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self.clock = clock
        self.key = ECKey.generate_key("P-256", parameters={"kid": "provider-key-1"})
        self.user = "pc-jones"
        self.tamper = Tamper()
        self.grants: dict[str, Grant] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        app = Starlette(routes=[
            Route("/.well-known/openid-configuration", self.discovery),
            Route("/authorize", self.authorize), Route("/token", self.token, methods=["POST"]),
            Route("/jwks", self.jwks)])
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the OpenID Connect provider did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    async def discovery(self, request: Request) -> Response:
        return JSONResponse({
            "issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"]})

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        """The person is signed in already (``self.user``): straight back with a code."""
        params = dict(request.query_params)
        self.authorize_requests.append(params)
        if (params.get("response_type") != "code" or params.get("client_id") != CLIENT_ID
                or params.get("code_challenge_method") != "S256"
                or not params.get("code_challenge")):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(params["client_id"], params["redirect_uri"],
                                  params.get("nonce", ""), params["code_challenge"], self.user)
        back = urlencode({"code": code, "state": params.get("state", "")})
        return RedirectResponse(f"{params['redirect_uri']}?{back}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self.token_requests.append(form)
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if not hmac.compare_digest(request.headers.get("authorization", ""), expected):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.grants.get(form.get("code", ""))
        if grant is None or grant.used or form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        grant.used = True  # a code is redeemed once
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant.challenge or form.get("redirect_uri") != grant.redirect_uri:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                             "expires_in": 300, "id_token": self.id_token(grant)})

    def id_token(self, grant: Grant) -> str:
        now = self.clock()
        tamper = self.tamper
        claims: dict[str, Any] = {
            "iss": tamper.issuer or self.url,
            "aud": tamper.audience if tamper.audience is not None else grant.client_id,
            "sub": f"subject-{grant.user}", "preferred_username": grant.user,
            "iat": now, "exp": now + tamper.expires_in_s,
            "nonce": tamper.nonce if tamper.nonce is not None else grant.nonce,
            "amr": ["pwd", "otp"], "acr": "urn:force:mfa"}
        claims.update(tamper.claims)
        key = tamper.sign_with or self.key
        return jwt.encode({"alg": "ES256", "kid": "provider-key-1"}, claims, key)
