"""What every answer of the staff pages carries, and what every request must pass before a page
runs: the Host it names is one of the station's, the answer has the security headers, a form
body is small and read with a bound, and session cookies are Secure, HttpOnly, SameSite=Strict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import BadRequestError, PayloadTooLargeError
from .sso_settings import OidcSettings, ProxySettings

SESSION_COOKIE = "bwv_session"
LOGIN_COOKIE = "bwv_login"  # the login form's CSRF token, before there is a session
FORM_MAX_BYTES = 16 * 1024
IDLE_TIMEOUT_S = 15 * 60
KEY_WINDOW_S = 5 * 60  # an encrypted recording's player may have its key this long after the page

# no inline script or style anywhere; footage may come from blob: URLs (Media Source Extensions)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "media-src 'self' blob:; connect-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    # footage and who saw it: nothing of a page is kept by the browser or a proxy
    (b"cache-control", b"no-store"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")


@dataclass(frozen=True)
class WebSettings:
    """How the staff pages are served. ``hosts``: the names the station answers to in the Host
    header (a request naming another is refused: DNS rebinding, a misrouted proxy); ``tls``: the
    listener is HTTPS (HSTS is sent); ``idle_timeout_s``: a session left that long ends;
    ``proxy``: the trusted reverse-proxy mode (recorder.station.web.proxy_auth), None: off;
    ``oidc``: OpenID Connect login (recorder.station.web.oidc), None: off; ``key_window_s``:
    how long after a recording page is shown its player may have the content key of an
    encrypted recording (recorder.station.web.pages)."""

    hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]")
    tls: bool = False
    idle_timeout_s: int = IDLE_TIMEOUT_S
    max_session_s: int = 12 * 3600
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    proxy: ProxySettings | None = None
    oidc: OidcSettings | None = None
    key_window_s: float = KEY_WINDOW_S


def default_hosts(listen_host: str, names: Iterable[str] = ()) -> tuple[str, ...]:
    """The Host names to accept: those given, else the listening address (and the loopback
    names when it is loopback)."""
    given = tuple(names)
    if given:
        return given
    host = listen_host.strip("[]")
    if host in ("127.0.0.1", "::1", "localhost"):
        return ("localhost", "127.0.0.1", "[::1]")
    return (f"[{host}]" if ":" in host else host,)


class SecurityHeaders:
    """ASGI middleware: the Host check, then the security headers on every answer (errors and
    static files included)."""

    def __init__(self, app: ASGIApp, settings: WebSettings) -> None:
        self.app = app
        self.hosts = {host.lower() for host in settings.hosts}
        self.headers = HEADERS + ([HSTS] if settings.tls else []) + settings.extra_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in self.headers}
                kept = [(n, v) for n, v in message.get("headers", []) if n.lower() not in names]
                message["headers"] = kept + self.headers
            await send(message)

        if not self._host_allowed(scope):
            await _plain(with_headers, 400, b"this station does not answer to that host name")
            return
        await self.app(scope, receive, with_headers)

    def _host_allowed(self, scope: Scope) -> bool:
        values = [v for n, v in scope.get("headers", []) if n == b"host"]
        if len(values) != 1:
            return False
        host = values[0].decode("latin-1").lower()
        if host.startswith("["):  # [v6 address] or [v6 address]:port
            address, _, rest = host.partition("]")
            name, port = address + "]", rest.removeprefix(":")
            if rest and not rest.startswith(":"):
                return False
        else:
            name, _, port = host.partition(":")
        if port and not port.isdigit():
            return False
        return name in self.hosts


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form body, at most FORM_MAX_BYTES (refused before more is read), each name
    once. Forms here are a few short fields: nothing needs multipart."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequestError("send the form as application/x-www-form-urlencoded")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > FORM_MAX_BYTES):
        raise PayloadTooLargeError("the form is too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX_BYTES:
            raise PayloadTooLargeError("the form is too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=32)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequestError("the form is not readable") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise BadRequestError(f"the form gives {name!r} twice")
        fields[name] = value
    return fields


def cookie_header(name: str, value: str, *, max_age: int | None = None, path: str = "/",
                  same_site: str = "Strict") -> str:
    """A Set-Cookie value: Secure (browsers keep it on loopback http too), HttpOnly, Strict
    (Lax only for the OpenID Connect login's own cookie, which must come back with the
    identity provider's redirect)."""
    parts = [f"{name}={value}", f"Path={path}", "Secure", "HttpOnly", f"SameSite={same_site}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)
