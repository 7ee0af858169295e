"""The W3C ClearKey key system's licence messages (Encrypted Media Extensions, section 9.1): the
request a browser's session sends (``{"kids": [...], "type": "temporary"}``, key ids in
unpadded base64url) and the JSON Web Key Set the station answers with.
"""

from __future__ import annotations

import base64
import binascii
import json

from ...integrity.content_key import KEY_ID_BYTES, ContentKey
from ..errors import BadRequestError

MAX_REQUEST_CHARS = 2048
MAX_KEY_IDS = 8


class LicenceRequestError(BadRequestError):
    """A licence request that is not a ClearKey request this station reads."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _key_id(text: object) -> bytes:
    if not isinstance(text, str) or len(text) > 64:
        raise LicenceRequestError("a key id in the licence request is not a short string")
    try:
        key_id = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise LicenceRequestError("a key id in the licence request is not base64url") from None
    if len(key_id) != KEY_ID_BYTES:
        raise LicenceRequestError(f"a key id in the licence request is {len(key_id)} bytes, "
                                  f"not {KEY_ID_BYTES}")
    return key_id


def requested_key_ids(text: str) -> list[bytes]:
    """The key ids a ClearKey licence request asks for, in order, each once; every field
    checked (LicenceRequestError says which is wrong)."""
    if len(text) > MAX_REQUEST_CHARS:
        raise LicenceRequestError("the licence request is too long")
    try:
        request = json.loads(text)
    except ValueError:
        raise LicenceRequestError("the licence request is not JSON") from None
    if not isinstance(request, dict) or not isinstance(request.get("kids"), list):
        raise LicenceRequestError("the licence request has no list of key ids (kids)")
    if request.get("type", "temporary") != "temporary":
        raise LicenceRequestError("the station releases keys for temporary sessions only")
    kids = request["kids"]
    if not 1 <= len(kids) <= MAX_KEY_IDS:
        raise LicenceRequestError(f"the licence request names {len(kids)} key ids; "
                                  f"1 to {MAX_KEY_IDS} are read")
    return list(dict.fromkeys(_key_id(kid) for kid in kids))


def licence(keys: list[ContentKey]) -> bytes:
    """The JSON Web Key Set a ClearKey session is updated with: one symmetric key per content
    key, its key id as ``kid``."""
    return json.dumps({"keys": [{"kty": "oct", "kid": _b64url(key.key_id), "k": _b64url(key.key)}
                                for key in keys], "type": "temporary"}).encode("ascii")
