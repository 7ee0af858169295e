"""The station's reading of a signed request's X-BWV-* headers (the scheme is in
`recorder.integrity.request_signing`): a missing or malformed header is a RequestAuthError, which
the station answers with its HTTP status."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from ..integrity.request_signing import (HEADER_CONTENT_SHA256, HEADER_DEVICE, HEADER_NONCE,
                                         HEADER_SIGNATURE, HEADER_TIMESTAMP, NONCE, SCHEME,
                                         SignedRequest, is_safe_name, is_sha256_hex)
from .errors import RequestAuthError


def parse_headers(headers: Mapping[str, str]) -> SignedRequest:
    """Read the X-BWV-* headers; raises RequestAuthError naming the one missing or malformed."""
    lowered = {name.lower(): value for name, value in headers.items()}

    def get(name: str) -> str:
        value = lowered.get(name.lower())
        if value is None:
            raise RequestAuthError("unsigned", f"header {name} is missing: device requests must "
                                   f"be signed ({SCHEME})")
        return value

    device_id = get(HEADER_DEVICE)
    timestamp_text = get(HEADER_TIMESTAMP)
    nonce = get(HEADER_NONCE)
    body_sha256 = get(HEADER_CONTENT_SHA256)
    signature_text = get(HEADER_SIGNATURE)
    if not is_safe_name(device_id):
        raise RequestAuthError("bad_header", f"{HEADER_DEVICE} {device_id!r} is not a device id")
    if not timestamp_text.isdigit():
        raise RequestAuthError("bad_header", f"{HEADER_TIMESTAMP} {timestamp_text!r} is not "
                               "integer Unix seconds")
    if not NONCE.match(nonce):
        raise RequestAuthError("bad_header", f"{HEADER_NONCE} must be 32 lower-case hex digits")
    if not is_sha256_hex(body_sha256):
        raise RequestAuthError("bad_header", f"{HEADER_CONTENT_SHA256} must be 64 lower-case "
                               "hex digits")
    try:
        signature = base64.b64decode(signature_text, validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != 64:
        raise RequestAuthError("bad_signature", f"{HEADER_SIGNATURE} is not the base64 of a "
                               "64-byte Ed25519 signature")
    return SignedRequest(device_id, int(timestamp_text), nonce, body_sha256, signature)
