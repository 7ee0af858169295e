"""The staff pages of the station, served on a listener of their own (``bwv station serve
--web-listen HOST:PORT``), never on the device API's port.

Nothing but the login page and the stylesheet and script is shown without a session: a staff
account logs in (recorder.station.accounts: argon2id password and a TOTP code; or through the
force's identity provider, recorder.station.web.oidc; or is named by a trusted sign-on proxy,
recorder.station.web.proxy_auth), and every page then checks that person's role and the recording (recorder.station.web.access) and writes the
audit entry of what it showed (recorder.station.web.pages). Every answer carries the security
headers and the Host check of recorder.station.web.security; errors are HTML pages.
"""

from __future__ import annotations

import logging
from importlib import resources
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ..audit import Action
from ..errors import StationError
from ..evidence_store import EvidenceStore
from .auth import ForbiddenForm, NotLoggedIn, client_of, login_routes, safe_next
from .html import error_page
from .oidc import oidc_routes
from .pages import Refused, web_routes
from .proxy_auth import ProxyAuthentication
from ..redact.review import Reviews
from .redaction import redaction_routes
from .requests import request_routes
from .security import SecurityHeaders, WebSettings

log = logging.getLogger("recorder.station.web")


def create_web_app(store: EvidenceStore, settings: WebSettings | None = None) -> SecurityHeaders:
    """The staff pages over ``store``, as an ASGI app (wrapped in the security middleware)."""
    settings = settings if settings is not None else WebSettings()

    async def not_logged_in(request: Request, exc: Exception) -> Response:
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return error_page(401, "Log in first.")

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        await run_in_threadpool(store.record_access, exc.who.name, Action.ACCESS_REFUSED,
                                exc.recording_id, {**exc.detail, "wanted": exc.permission,
                                                   "path": request.url.path[:200],
                                                   "client": exc.who.client})
        return error_page(403, "Your account may not do that, or there is no such recording.")

    async def forbidden_form(request: Request, exc: Exception) -> Response:
        log.warning("a form without its CSRF token from %s: %s", client_of(request),
                    request.url.path)
        return error_page(403, "The form was not sent from this station's page: reload the "
                          "page and try again.")

    async def station_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StationError)
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return error_page(exc.status, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_page(exc.status_code, str(exc.detail))

    reviews = Reviews(store)  # the redactions under review and their background work
    static = StaticFiles(directory=str(resources.files("recorder.station") / "static"))
    routes = [*login_routes(store, settings), *oidc_routes(store, settings, safe_next),
              *web_routes(store, settings),
              *request_routes(store, settings, reviews),
              *redaction_routes(store, settings, reviews),
              Mount("/static", static, name="static")]
    handlers = {NotLoggedIn: not_logged_in, Refused: refused, ForbiddenForm: forbidden_form,
                StationError: station_error, HTTPException: http_error}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.router.redirect_slashes = False
    if settings.proxy is not None:
        return SecurityHeaders(ProxyAuthentication(app, store, settings, settings.proxy),
                               settings)
    return SecurityHeaders(app, settings)
