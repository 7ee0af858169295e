"""What a camera pins of its evidence station: the station's id and its Ed25519 public key, in
one line that `bwv station key` (and `bwv station enroll`) prints and the camera takes as the
``station.public_key`` setting or ``--station-key``::

    bwv-station/1:STATION-ID:SPKI-BASE64[:KEM:ENCRYPTION-KEY-BASE64:SIGNATURE-BASE64]

``STATION-ID`` is a safe name (``[A-Za-z0-9._-]``, as device ids); ``SPKI-BASE64`` is the base64
DER SubjectPublicKeyInfo of the key, as in manifest headers (``openssl pkey -pubin`` reads it
after a PEM armour). The camera believes a station's answers only when they are signed by the key
it pinned, and names that station id in every request it signs, so that a request made for one
station is refused by any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import keys
from .content_key import EncryptionKeyFormatError, EncryptionPublicKey
from .keys import DeviceKey, PublicKeyFormatError
from .request_signing import is_safe_name

PIN_SCHEME = "bwv-station/1"
ENCRYPTION_KEY_CONTEXT = b"bwv-station-encryption-key/1\n"
# a pin is about 90 characters, 230 with an X25519 encryption key and 1750 with the hybrid
MAX_PIN_CHARS = 4096


@dataclass(frozen=True)
class StationPin:
    """A station's id and public key, as a camera pins them."""

    station_id: str
    public_key: Ed25519PublicKey
    encryption_key: EncryptionPublicKey | None = None  # None: the camera records in the clear
    encryption_signature: bytes = b""  # the station key's signature of encryption_key

    @property
    def fingerprint(self) -> str:
        """Lower-case hex SHA-256 of the raw public key: compare it out of band."""
        return keys.fingerprint(self.public_key)

    def __str__(self) -> str:
        line = format_pin(self.station_id, self.public_key)
        if self.encryption_key is None:
            return line
        signature = base64.b64encode(self.encryption_signature).decode("ascii")
        return (f"{line}:{self.encryption_key.kem.value}:{self.encryption_key.b64()}:"
                f"{signature}")


def format_pin(station_id: str, public_key: Ed25519PublicKey) -> str:
    """The one-line pin of a station, without an encryption key."""
    return f"{PIN_SCHEME}:{station_id}:{keys.public_key_spki_b64(public_key)}"


def encryption_key_message(station_id: str, key: EncryptionPublicKey) -> bytes:
    """What the station key signs to vouch for its encryption key."""
    return (ENCRYPTION_KEY_CONTEXT + station_id.encode("ascii") + b"\n"
            + key.kem.value.encode("ascii") + b"\n" + key.raw)


def sign_encryption_key(station_key: DeviceKey, station_id: str,
                        key: EncryptionPublicKey) -> bytes:
    return station_key.sign(encryption_key_message(station_id, key))


def _encryption_key(station_id: str, public_key: Ed25519PublicKey,
                    fields: list[str]) -> tuple[EncryptionPublicKey, bytes]:
    """The encryption key of a pin's optional fields, its signature checked."""
    if len(fields) != 3:
        raise PublicKeyFormatError(
            f"a station key has 3 or 6 fields after {PIN_SCHEME}, not {len(fields) + 3}: give "
            "the whole line `bwv station key` prints")
    kem_name, key_b64, signature_b64 = fields
    try:
        key = EncryptionPublicKey.from_text(kem_name, key_b64)
        signature = base64.b64decode(signature_b64, validate=True)
    except (EncryptionKeyFormatError, binascii.Error, ValueError) as exc:
        raise PublicKeyFormatError(f"the station's encryption key in the station key: {exc}") \
            from None
    if not keys.verify_signature(public_key, signature, encryption_key_message(station_id, key)):
        raise PublicKeyFormatError(
            "the station's encryption key in the station key is not signed by the station's "
            "key: the line was changed; take it again from `bwv station key`")
    return key, signature


def parse_pin(text: str) -> StationPin:
    """Read a pin; PublicKeyFormatError (one line, what is wrong) for anything else."""
    text = text.strip()
    if len(text) > MAX_PIN_CHARS:
        raise PublicKeyFormatError(f"a station key is one line of at most {MAX_PIN_CHARS} "
                                   f"characters, not {len(text)}: give what `bwv station key` "
                                   "prints")
    scheme, _, rest = text.partition(":")
    station_id, _, fields_text = rest.partition(":")
    spki, *encryption_fields = fields_text.split(":")
    if scheme != PIN_SCHEME or not spki:
        raise PublicKeyFormatError(f"{text[:40]!r} is not a station key: give the line "
                                   f"`bwv station key` prints ({PIN_SCHEME}:STATION-ID:KEY)")
    if not is_safe_name(station_id):
        raise PublicKeyFormatError(f"station id {station_id[:40]!r} in the station key is not "
                                   "a station id")
    public_key = keys.public_key_from_spki_b64(spki)
    if not encryption_fields:
        return StationPin(station_id, public_key)
    return StationPin(station_id, public_key,
                      *_encryption_key(station_id, public_key, encryption_fields))
