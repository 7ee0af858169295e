"""Signing of the camera's HTTP requests to the station with its Ed25519 device key.

The signed message ("bwv-request/2") is nine lines joined by ``\\n`` (no trailing newline)::

    bwv-request/2
    METHOD            upper case, e.g. PUT
    PATH              the URL path as sent, e.g. /api/v1/recordings/R/segments/000001.mp4
    QUERY             the URL query as sent, without "?" (empty when there is none)
    BODY-SHA256       lower-case hex SHA-256 of the body (of b"" for a GET)
    TIMESTAMP         integer Unix seconds
    NONCE             32 lower-case hex digits, never reused by a device
    DEVICE-ID
    STATION-ID        the id of the station the request is for, as the camera pinned it

The request carries them in the headers ``X-BWV-Device``, ``X-BWV-Station``,
``X-BWV-Timestamp``, ``X-BWV-Nonce``, ``X-BWV-Content-SHA256`` and ``X-BWV-Signature`` (standard
base64 of the 64-byte signature). The station refuses a request for another station id, whose
timestamp is more than ``MAX_SKEW_S`` from its clock, whose nonce it has seen, or whose body does
not hash to the declared value. Binding the station id means a request captured on its way to
one station cannot be replayed to another that enrolled the same camera.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import keys
from .keys import DeviceKey

SCHEME = "bwv-request/2"
HEADER_DEVICE = "X-BWV-Device"
HEADER_STATION = "X-BWV-Station"
HEADER_TIMESTAMP = "X-BWV-Timestamp"
HEADER_NONCE = "X-BWV-Nonce"
HEADER_CONTENT_SHA256 = "X-BWV-Content-SHA256"
HEADER_SIGNATURE = "X-BWV-Signature"
MAX_SKEW_S = 300
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
NONCE = re.compile(r"[0-9a-f]{32}\Z")  # a nonce as sent


def is_safe_name(name: str) -> bool:
    """True for ids and file names that travel in URL paths unencoded (``[A-Za-z0-9._-]``)."""
    return bool(_SAFE_NAME.match(name)) and ".." not in name


def is_sha256_hex(text: str) -> bool:
    return bool(_HEX64.match(text))


def request_message(method: str, path: str, body_sha256: str, timestamp: int, nonce: str,
                    device_id: str, *, station_id: str, query: str = "") -> bytes:
    """The bytes a request's signature covers."""
    return "\n".join((SCHEME, method.upper(), path, query, body_sha256, str(timestamp), nonce,
                      device_id, station_id)).encode("utf-8")


def sign_request(key: DeviceKey, device_id: str, method: str, path: str, body_sha256: str,
                 timestamp: int | None = None, nonce: str | None = None, *, station_id: str,
                 query: str = "") -> dict[str, str]:
    """The headers that authenticate one request for station ``station_id`` (a fresh nonce,
    the time now unless given)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_hex(16) if nonce is None else nonce
    signature = key.sign(request_message(method, path, body_sha256, timestamp, nonce, device_id,
                                         station_id=station_id, query=query))
    return {HEADER_DEVICE: device_id, HEADER_STATION: station_id,
            HEADER_TIMESTAMP: str(timestamp), HEADER_NONCE: nonce,
            HEADER_CONTENT_SHA256: body_sha256,
            HEADER_SIGNATURE: base64.b64encode(signature).decode("ascii")}


@dataclass(frozen=True)
class SignedRequest:
    """The authentication headers of one request, parsed but not yet checked."""

    device_id: str
    timestamp: int
    nonce: str
    body_sha256: str
    signature: bytes
    station_id: str = ""

    def verifies(self, public_key: Ed25519PublicKey, method: str, path: str, *,
                 station_id: str, query: str = "") -> bool:
        """True when the signature covers this request made for ``station_id`` (the verifying
        station's own id, not the header's)."""
        message = request_message(method, path, self.body_sha256, self.timestamp, self.nonce,
                                  self.device_id, station_id=station_id, query=query)
        return keys.verify_signature(public_key, self.signature, message)
