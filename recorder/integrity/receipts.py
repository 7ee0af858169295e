"""Signed receipts: the station's word, under its own key, on what it holds of a recording.

A camera deletes its copy only on a receipt that verifies against the station key it pinned
(recorder.integrity.station_pin) and answers the request it just made. A receipt is one line of
canonical JSON (as the manifest's lines: keys sorted, no spaces, UTF-8, no floats)::

    {"device_id":"cam7","manifest_sha256":"…","nonce":"…","recording_id":"…",
     "scheme":"bwv-receipt/1","segments":[{"file":"000001.mp4","sha256":"…"},…],
     "sig":"…","station_id":"station-…","station_time_us":1795000000000000,
     "status":"verified","verified":true,"verify_summary":"ok"}

``sig`` is the standard base64 of the Ed25519 signature, by the station key, over the line's
canonical form without ``sig``. Keys are sorted and ``sig`` is neither first nor last, so
removing the text ``,"sig":"…"`` from the line gives exactly the signed bytes, and ``openssl
pkeyutl -verify`` checks it (docs/formats.md). ``nonce`` is the ``X-BWV-Nonce`` of the request
the receipt answers, so an old receipt cannot answer a new question.

The parser is bounded and strict: at most ``MAX_RECEIPT_BYTES``, every member of the right type,
and whatever is wrong it raises ReceiptError (one line) and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import RecorderError
from . import keys
from .manifest import ManifestFormatError, canonical_bytes
from .request_signing import NONCE, is_safe_name, is_sha256_hex
from .station_pin import StationPin

SCHEME = "bwv-receipt/1"
MAX_RECEIPT_BYTES = 4 << 20  # 4 MiB: about 40,000 segments, far more than any recording
MAX_SUMMARY_CHARS = 2000
_MEMBERS = frozenset({"device_id", "manifest_sha256", "nonce", "recording_id", "scheme",
                      "segments", "sig", "station_id", "station_time_us", "status", "verified",
                      "verify_summary"})


class ReceiptError(RecorderError, ValueError):
    """A receipt that is malformed, not signed by the pinned station, or not an answer to the
    request just made: the camera must not delete on it."""


@dataclass(frozen=True)
class Receipt:
    """What a station signs about one recording, in answer to one request."""

    station_id: str
    recording_id: str
    device_id: str
    manifest_sha256: str | None
    segments: Mapping[str, str]  # file -> sha256, every segment the station holds
    verified: bool
    status: str
    verify_summary: str | None
    station_time_us: int
    nonce: str

    def body(self) -> dict[str, Any]:
        """The receipt's members without ``sig``: what the signature covers."""
        return {"scheme": SCHEME, "station_id": self.station_id,
                "recording_id": self.recording_id, "device_id": self.device_id,
                "manifest_sha256": self.manifest_sha256,
                "segments": [{"file": file, "sha256": sha256}
                             for file, sha256 in sorted(self.segments.items())],
                "verified": self.verified, "status": self.status,
                "verify_summary": self.verify_summary,
                "station_time_us": self.station_time_us, "nonce": self.nonce}


def sign_receipt(receipt: Receipt, sign: Callable[[bytes], bytes]) -> str:
    """The receipt as one signed line (no newline); ``sign`` is the station key's Ed25519
    signing (StationIdentity.sign)."""
    body = receipt.body()
    if receipt.verify_summary is not None and len(receipt.verify_summary) > MAX_SUMMARY_CHARS:
        body["verify_summary"] = receipt.verify_summary[:MAX_SUMMARY_CHARS]
    signature = base64.b64encode(sign(canonical_bytes(body))).decode("ascii")
    return canonical_bytes(dict(body, sig=signature)).decode("utf-8")


def parse_receipt(text: object) -> tuple[Receipt, bytes, bytes]:
    """(receipt, signature, signed bytes) of a receipt line; ReceiptError for anything that is
    not exactly one."""
    if not isinstance(text, str):
        raise ReceiptError("the station's answer carries no receipt")
    if len(text) > MAX_RECEIPT_BYTES:
        raise ReceiptError(f"the receipt is {len(text)} characters, more than a receipt can be")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise ReceiptError("the receipt is not JSON") from None
    if not isinstance(obj, dict) or set(obj) != _MEMBERS:
        raise ReceiptError("the receipt does not have exactly the members of " + SCHEME)
    if obj["scheme"] != SCHEME:
        raise ReceiptError(f"the receipt's scheme is {str(obj['scheme'])[:40]!r}, not {SCHEME}")
    receipt = Receipt(
        station_id=_name(obj, "station_id"), recording_id=_name(obj, "recording_id"),
        device_id=_name(obj, "device_id"), manifest_sha256=_optional_sha256(obj),
        segments=_segments(obj["segments"]), verified=_typed(obj, "verified", bool),
        status=_typed(obj, "status", str), verify_summary=_optional_text(obj),
        station_time_us=_typed(obj, "station_time_us", int), nonce=_typed(obj, "nonce", str))
    if not NONCE.match(receipt.nonce):
        raise ReceiptError("the receipt's nonce is not 32 lower-case hex digits")
    try:
        signature = base64.b64decode(_typed(obj, "sig", str), validate=True)
        signed = canonical_bytes({key: value for key, value in obj.items() if key != "sig"})
    except (binascii.Error, ValueError, ManifestFormatError):
        raise ReceiptError("the receipt's signature or values cannot be read") from None
    if len(signature) != 64:
        raise ReceiptError("the receipt's sig is not a 64-byte Ed25519 signature")
    if canonical_bytes(obj) != text.encode("utf-8", "surrogatepass"):
        # one form only: what the camera keeps is then exactly what was signed plus its sig, and
        # openssl checks it as formats.md says (duplicate keys, spaces or escapes would not)
        raise ReceiptError("the receipt is not in canonical form (keys sorted, no spaces, no "
                           "repeated keys, no needless escapes)")
    return receipt, signature, signed


def verify_receipt(pin: StationPin, text: object, nonce: str) -> Receipt:
    """The receipt in ``text`` when it is signed by the pinned station's key, names the pinned
    station and answers the request sent with ``nonce``; ReceiptError otherwise."""
    receipt, signature, signed = parse_receipt(text)
    if not keys.verify_signature(pin.public_key, signature, signed):
        raise ReceiptError(f"the receipt is not signed by the pinned station {pin.station_id} "
                           f"(key sha256 {pin.fingerprint[:16]}…)")
    if receipt.station_id != pin.station_id:
        raise ReceiptError(f"the receipt names station {receipt.station_id}, not the pinned "
                           f"{pin.station_id}")
    if receipt.nonce != nonce:
        raise ReceiptError("the receipt answers another request (its nonce is not this "
                           "request's): a replayed receipt")
    return receipt


def _typed(obj: Mapping[str, Any], name: str, kind: type) -> Any:
    value = obj[name]
    if type(value) is not kind:
        raise ReceiptError(f"the receipt's {name} is not a {kind.__name__}")
    return value


def _name(obj: Mapping[str, Any], name: str) -> str:
    value: str = _typed(obj, name, str)
    if not is_safe_name(value):
        raise ReceiptError(f"the receipt's {name} is not an id")
    return value


def _optional_sha256(obj: Mapping[str, Any]) -> str | None:
    value = obj["manifest_sha256"]
    if value is None:
        return None
    if not isinstance(value, str) or not is_sha256_hex(value):
        raise ReceiptError("the receipt's manifest_sha256 is not a SHA-256")
    return value


def _optional_text(obj: Mapping[str, Any]) -> str | None:
    value = obj["verify_summary"]
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_SUMMARY_CHARS:
        raise ReceiptError("the receipt's verify_summary is not a short text")
    return value


def _segments(value: Any) -> dict[str, str]:
    if not isinstance(value, list):
        raise ReceiptError("the receipt's segments are not a list")
    segments: dict[str, str] = {}
    for item in value:
        if not isinstance(item, dict) or set(item) != {"file", "sha256"}:
            raise ReceiptError("a segment in the receipt is not {file, sha256}")
        file, sha256 = item["file"], item["sha256"]
        if not (isinstance(file, str) and is_safe_name(file) and isinstance(sha256, str)
                and is_sha256_hex(sha256)) or file in segments:
            raise ReceiptError("a segment in the receipt has a bad or repeated file or hash")
        segments[file] = sha256
    return segments
