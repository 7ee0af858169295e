"""The station's identity: its Ed25519 key (``station_key.pem`` in the data directory, created
once with mode 0600), its station id, derived from that key, and its encryption key pair
(recorder.station.encryption_key), whose public half the signing key signs in the pin. Cameras
pin all three (see recorder.integrity.station_pin); receipts, audit checkpoints and export
packages are signed with the key. A station that cannot sign with it is an impostor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..integrity.content_key import EncryptionPrivateKey, Kem
from ..integrity.keys import DeviceKey
from ..integrity.station_pin import StationPin, sign_encryption_key
from ..private_files import make_private_dir
from . import encryption_key

STATION_KEY_FILE = "station_key.pem"
STATION_ID_PREFIX = "station-"


@dataclass(frozen=True)
class StationIdentity:
    """The station's signing key, the id derived from it, and its encryption key pair (None
    only for an identity found before `with_encryption_key` gave it one)."""

    key: DeviceKey
    encryption: EncryptionPrivateKey | None = None

    @property
    def station_id(self) -> str:
        """``station-`` and the first 16 hex digits of the key's fingerprint: a new key is a
        new station, which every camera must pin again."""
        return STATION_ID_PREFIX + self.key.fingerprint[:16]

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.key.public_key

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint

    @property
    def pin(self) -> StationPin:
        if self.encryption is None:
            return StationPin(self.station_id, self.public_key)
        public = self.encryption.public_key()
        return StationPin(self.station_id, self.public_key, public,
                          sign_encryption_key(self.key, self.station_id, public))

    def pin_line(self) -> str:
        """The one line a camera needs to pin this station (and encrypt for it)."""
        return str(self.pin)

    def with_encryption_key(self, kem: Kem = Kem.X25519) -> StationIdentity:
        """This identity with its encryption key, made with ``kem`` if the station has none."""
        data_dir = self.key.path.parent
        return replace(self, encryption=encryption_key.load_or_create(data_dir, kem))

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)

    @classmethod
    def load_or_create(cls, data_dir: Path, kem: Kem = Kem.X25519) -> StationIdentity:
        """The identity of the station in ``data_dir``, its key made on first use. Every
        station opens through here, so it is also where the data directory (key, catalogue,
        blobs) is made, or tightened, to 0700. ``kem``: of a new encryption key."""
        make_private_dir(data_dir)
        return cls(DeviceKey.load_or_create(data_dir, STATION_KEY_FILE),
                   encryption_key.load_or_create(data_dir, kem))

    @classmethod
    def find(cls, data_dir: Path) -> StationIdentity | None:
        """The station in ``data_dir``, with its encryption key if it has one yet."""
        key = DeviceKey.find(data_dir, STATION_KEY_FILE)
        return None if key is None else cls(key, encryption_key.find(data_dir))
