"""The station's reading of a signed request's X-BWV-* headers (the scheme is in
`recorder.integrity.request_signing`): a missing or malformed header is a RequestAuthError.

Every header value is bounded in length and matched by an ASCII-only pattern before it is
converted, so no value (``²`` passes ``str.isdigit()`` and fails ``int()``; a megabyte of
digits; non-ASCII bytes) can get past here as anything but a 401: an outsider's request never
reaches the catalogue or a 500."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from ..integrity.request_signing import (HEADER_CONTENT_SHA256, HEADER_DEVICE, HEADER_NONCE,
                                         HEADER_SIGNATURE, HEADER_STATION, HEADER_TIMESTAMP,
                                         NONCE, SCHEME, SignedRequest, is_safe_name,
                                         is_sha256_hex)
from .errors import RequestAuthError

MAX_HEADER_CHARS = 200  # the longest valid value (a 128-character id) fits with room
_TIMESTAMP = re.compile(r"[0-9]{1,12}\Z")  # ASCII digits only, unlike str.isdigit()
_BASE64_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{86}==\Z")


def parse_headers(headers: Mapping[str, str]) -> SignedRequest:
    """Read the X-BWV-* headers; raises RequestAuthError naming (for the station's log) the one
    missing or malformed."""
    lowered = {name.lower(): value for name, value in headers.items()}

    def get(name: str) -> str:
        value = lowered.get(name.lower())
        if value is None:
            raise RequestAuthError("unsigned", f"header {name} is missing: device requests must "
                                   f"be signed ({SCHEME})")
        if len(value) > MAX_HEADER_CHARS:
            raise RequestAuthError("bad_header", f"header {name} is {len(value)} characters "
                                   f"long (at most {MAX_HEADER_CHARS})")
        return value

    device_id = get(HEADER_DEVICE)
    station_id = get(HEADER_STATION)
    timestamp_text = get(HEADER_TIMESTAMP)
    nonce = get(HEADER_NONCE)
    body_sha256 = get(HEADER_CONTENT_SHA256)
    signature_text = get(HEADER_SIGNATURE)
    if not is_safe_name(device_id):
        raise RequestAuthError("bad_header", f"{HEADER_DEVICE} {device_id[:40]!r} is not a "
                               "device id")
    if not is_safe_name(station_id):
        raise RequestAuthError("bad_header", f"{HEADER_STATION} {station_id[:40]!r} is not a "
                               "station id")
    if not _TIMESTAMP.match(timestamp_text):
        raise RequestAuthError("bad_header", f"{HEADER_TIMESTAMP} {timestamp_text[:40]!r} is not "
                               "integer Unix seconds")
    if not NONCE.match(nonce):
        raise RequestAuthError("bad_header", f"{HEADER_NONCE} must be 32 lower-case hex digits")
    if not is_sha256_hex(body_sha256):
        raise RequestAuthError("bad_header", f"{HEADER_CONTENT_SHA256} must be 64 lower-case "
                               "hex digits")
    signature = b""
    if _BASE64_SIGNATURE.match(signature_text):
        try:
            signature = base64.b64decode(signature_text, validate=True)
        except (binascii.Error, ValueError):
            pass
    if len(signature) != 64:
        raise RequestAuthError("bad_signature", f"{HEADER_SIGNATURE} is not the base64 of a "
                               "64-byte Ed25519 signature")
    return SignedRequest(device_id, int(timestamp_text), nonce, body_sha256, signature,
                         station_id)
