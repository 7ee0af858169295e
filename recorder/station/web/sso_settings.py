"""How staff may sign in other than with a station password and TOTP code: the settings of
the trusted reverse-proxy mode (recorder.station.web.proxy_auth) and of OpenID Connect login
(recorder.station.web.oidc), checked when they are made. A module of its own so that the staff
pages' settings (recorder.station.web.security) can hold them without importing either mode."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

USER_HEADER = "X-Remote-User"
SECRET_HEADER = "X-BWV-Proxy-Secret"
CALLBACK_PATH = "/oidc/callback"


@dataclass(frozen=True)
class ProxySettings:
    """The shared secret and the two header names (case does not matter in HTTP)."""

    secret: bytes
    user_header: str = USER_HEADER
    secret_header: str = SECRET_HEADER


class OidcConfigError(ValueError):
    """OpenID Connect settings the station refuses (a URL that is not https, say)."""


@dataclass(frozen=True)
class OidcSettings:
    """How the station talks to the identity provider. ``user_claim``: the ID token claim that
    is the station account's name (``sub`` or e.g. ``preferred_username``); ``acr_values``:
    when given, the token's ``acr`` must be one of them; ``amr_values``: when given, the
    token's ``amr`` must hold at least one of them (e.g. ``mfa``, ``otp``, ``hwk``);
    ``cafile``: the CA bundle that signs the provider's certificate (None: the system's)."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_url: str
    user_claim: str = "preferred_username"
    acr_values: tuple[str, ...] = ()
    amr_values: tuple[str, ...] = ()
    scope: str = "openid profile"
    cafile: str | None = None

    def __post_init__(self) -> None:
        for what, url in (("issuer", self.issuer), ("redirect URL", self.redirect_url)):
            check_url(what, url)
        if urlsplit(self.redirect_url).path != CALLBACK_PATH:
            raise OidcConfigError(f"the redirect URL {self.redirect_url} must end in "
                                  f"{CALLBACK_PATH}: the station's callback")
        if not self.client_id or not self.client_secret:
            raise OidcConfigError("OpenID Connect needs the client id and the client secret")


def check_url(what: str, url: str) -> None:
    """OidcConfigError unless ``url`` is https, or http on a loopback address (a provider on
    the same machine)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return
    raise OidcConfigError(f"the {what} {url!r} must be an https:// URL (http:// only on "
                          "loopback): tokens and codes must not cross a network in the clear")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
