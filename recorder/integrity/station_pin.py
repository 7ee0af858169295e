"""What a camera pins of its evidence station: the station's id and its Ed25519 public key, in
one line that `bwv station key` (and `bwv station enroll`) prints and the camera takes as the
``station.public_key`` setting or ``--station-key``::

    bwv-station/1:STATION-ID:SPKI-BASE64

``STATION-ID`` is a safe name (``[A-Za-z0-9._-]``, as device ids); ``SPKI-BASE64`` is the base64
DER SubjectPublicKeyInfo of the key, as in manifest headers (``openssl pkey -pubin`` reads it
after a PEM armour). The camera believes a station's answers only when they are signed by the key
it pinned, and names that station id in every request it signs, so that a request made for one
station is refused by any other.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import keys
from .keys import PublicKeyFormatError
from .request_signing import is_safe_name

PIN_SCHEME = "bwv-station/1"
MAX_PIN_CHARS = 512  # a pin is about 90 characters: anything longer is not one


@dataclass(frozen=True)
class StationPin:
    """A station's id and public key, as a camera pins them."""

    station_id: str
    public_key: Ed25519PublicKey

    @property
    def fingerprint(self) -> str:
        """Lower-case hex SHA-256 of the raw public key: compare it out of band."""
        return keys.fingerprint(self.public_key)

    def __str__(self) -> str:
        return format_pin(self.station_id, self.public_key)


def format_pin(station_id: str, public_key: Ed25519PublicKey) -> str:
    """The one-line pin of a station."""
    return f"{PIN_SCHEME}:{station_id}:{keys.public_key_spki_b64(public_key)}"


def parse_pin(text: str) -> StationPin:
    """Read a pin; PublicKeyFormatError (one line, what is wrong) for anything else."""
    text = text.strip()
    if len(text) > MAX_PIN_CHARS:
        raise PublicKeyFormatError(f"a station key is one line of about 90 characters, not "
                                   f"{len(text)}: give what `bwv station key` prints")
    scheme, _, rest = text.partition(":")
    station_id, _, spki = rest.partition(":")
    if scheme != PIN_SCHEME or not spki:
        raise PublicKeyFormatError(f"{text[:40]!r} is not a station key: give the line "
                                   f"`bwv station key` prints ({PIN_SCHEME}:STATION-ID:KEY)")
    if not is_safe_name(station_id):
        raise PublicKeyFormatError(f"station id {station_id[:40]!r} in the station key is not "
                                   "a station id")
    return StationPin(station_id, keys.public_key_from_spki_b64(spki))
