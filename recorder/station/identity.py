"""The station's identity: its Ed25519 key (``station_key.pem`` in the data directory, created
once with mode 0600) and its station id, derived from that key. Cameras pin both (see
recorder.integrity.station_pin); receipts, audit checkpoints and export packages are signed with
the key. A station that cannot sign with it is an impostor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..integrity.keys import DeviceKey
from ..integrity.station_pin import StationPin, format_pin
from ..private_files import make_private_dir

STATION_KEY_FILE = "station_key.pem"
STATION_ID_PREFIX = "station-"


@dataclass(frozen=True)
class StationIdentity:
    """The station's signing key and the id derived from it."""

    key: DeviceKey

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
        return StationPin(self.station_id, self.public_key)

    def pin_line(self) -> str:
        """The one line a camera needs to pin this station."""
        return format_pin(self.station_id, self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> StationIdentity:
        """The identity of the station in ``data_dir``, its key made on first use. Every
        station opens through here, so it is also where the data directory (key, catalogue,
        blobs) is made, or tightened, to 0700."""
        make_private_dir(data_dir)
        return cls(DeviceKey.load_or_create(data_dir, STATION_KEY_FILE))

    @classmethod
    def find(cls, data_dir: Path) -> StationIdentity | None:
        key = DeviceKey.find(data_dir, STATION_KEY_FILE)
        return None if key is None else cls(key)
