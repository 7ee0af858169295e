"""A recording's content key (AES-128, for ISO Common Encryption 'cenc') and its wrapping to the
station's encryption public key with HPKE (RFC 9180), bound to the key id and the recording id.

The camera makes the key from the OS's CSPRNG, keeps it in memory only, and stores it only
wrapped: ``Suite(kem, HKDF-SHA256, AES-256-GCM).encrypt(key, station_public_key, info)`` where
``info`` names this format, the recording id and the key id. The station unwraps with its private
key (recorder.station.encryption_key) and the same ``info``, so a wrapped key copied into another
recording's manifest, or paired with another key id, does not open.
"""

from __future__ import annotations

import base64
import binascii
import enum
import secrets
from dataclasses import dataclass
from typing import Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives import hpke

from ..errors import RecorderError

CONTENT_KEY_BYTES = 16  # AES-128, the cipher of scheme 'cenc'
KEY_ID_BYTES = 16  # the KID of ISO/IEC 23001-7 ('tenc' default_KID)
WRAP_INFO_PREFIX = b"bwv-content-key/1\x00"
KDF_NAME = "HKDF-SHA256"
AEAD_NAME = "AES-256-GCM"
SCHEME = "cenc"
_X25519_BYTES = 32
_MLKEM768_PUBLIC_BYTES = 1184
_MLKEM768_SEED_BYTES = 64


class ContentKeyError(RecorderError):
    """Base class of the content key's errors."""


class UnwrapError(ContentKeyError, ValueError):
    """A wrapped key that does not open with this private key for this recording and key id."""


class EncryptionKeyFormatError(ContentKeyError, ValueError):
    """An encryption key given as text that is not one we read."""


class Kem(str, enum.Enum):
    """The HPKE KEMs a station may choose; the value is the name in settings and manifests."""

    X25519 = "x25519"  # DHKEM(X25519, HKDF-SHA256), RFC 9180
    MLKEM768_X25519 = "mlkem768-x25519"  # the post-quantum hybrid: ML-KEM-768 with X25519

    @property
    def hpke_kem(self) -> hpke.KEM:
        return hpke.KEM.X25519 if self is Kem.X25519 else hpke.KEM.MLKEM768_X25519

    @classmethod
    def from_name(cls, name: str) -> Kem:
        try:
            return cls(name)
        except ValueError:
            allowed = ", ".join(kem.value for kem in cls)
            raise EncryptionKeyFormatError(
                f"KEM {name[:40]!r} is not one of {allowed}") from None


def suite(kem: Kem) -> hpke.Suite:
    """The HPKE suite of ``kem``: always HKDF-SHA256 and AES-256-GCM."""
    return hpke.Suite(kem.hpke_kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


PublicKeyObject = Union[x25519.X25519PublicKey, hpke.MLKEM768X25519PublicKey]
PrivateKeyObject = Union[x25519.X25519PrivateKey, hpke.MLKEM768X25519PrivateKey]


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionKeyFormatError(f"{what} is not valid base64") from None


@dataclass(frozen=True)
class EncryptionPublicKey:
    """The station's encryption public key: its KEM and raw bytes (for the hybrid, the ML-KEM-768
    encapsulation key followed by the X25519 key)."""

    kem: Kem
    raw: bytes

    def __post_init__(self) -> None:
        self.key_object()  # a wrong length or a bad point fails here, not when wrapping

    def key_object(self) -> PublicKeyObject:
        want = _X25519_BYTES if self.kem is Kem.X25519 else _MLKEM768_PUBLIC_BYTES + _X25519_BYTES
        if len(self.raw) != want:
            raise EncryptionKeyFormatError(
                f"a {self.kem.value} public key is {want} bytes, not {len(self.raw)}")
        try:
            if self.kem is Kem.X25519:
                return x25519.X25519PublicKey.from_public_bytes(self.raw)
            return hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(self.raw[:_MLKEM768_PUBLIC_BYTES]),
                x25519.X25519PublicKey.from_public_bytes(self.raw[_MLKEM768_PUBLIC_BYTES:]))
        except ValueError as exc:
            raise EncryptionKeyFormatError(f"not a {self.kem.value} public key: {exc}") from None

    def b64(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    @classmethod
    def from_text(cls, kem_name: str, key_b64: str) -> EncryptionPublicKey:
        return cls(Kem.from_name(kem_name), _b64decode(key_b64, "the encryption public key"))


@dataclass(frozen=True)
class EncryptionPrivateKey:
    """The station's encryption private key: its KEM and raw bytes (for the hybrid, the 64-byte
    ML-KEM-768 seed followed by the X25519 private key)."""

    kem: Kem
    raw: bytes

    def key_object(self) -> PrivateKeyObject:
        want = _X25519_BYTES if self.kem is Kem.X25519 else _MLKEM768_SEED_BYTES + _X25519_BYTES
        if len(self.raw) != want:
            raise EncryptionKeyFormatError(
                f"a {self.kem.value} private key is {want} bytes, not {len(self.raw)}")
        if self.kem is Kem.X25519:
            return x25519.X25519PrivateKey.from_private_bytes(self.raw)
        return hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(self.raw[:_MLKEM768_SEED_BYTES]),
            x25519.X25519PrivateKey.from_private_bytes(self.raw[_MLKEM768_SEED_BYTES:]))

    def public_key(self) -> EncryptionPublicKey:
        if self.kem is Kem.X25519:
            public = x25519.X25519PrivateKey.from_private_bytes(self.raw).public_key()
            return EncryptionPublicKey(self.kem, public.public_bytes_raw())
        ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(self.raw[:_MLKEM768_SEED_BYTES])
        x = x25519.X25519PrivateKey.from_private_bytes(self.raw[_MLKEM768_SEED_BYTES:])
        return EncryptionPublicKey(self.kem, ml.public_key().public_bytes_raw()
                                   + x.public_key().public_bytes_raw())

    @classmethod
    def generate(cls, kem: Kem) -> EncryptionPrivateKey:
        x = x25519.X25519PrivateKey.generate().private_bytes_raw()
        if kem is Kem.X25519:
            return cls(kem, x)
        return cls(kem, mlkem.MLKEM768PrivateKey.generate().private_bytes_raw() + x)


@dataclass(frozen=True)
class ContentKey:
    """A recording's AES-128 content key and its key id. Lives in memory only: never log it."""

    key_id: bytes
    key: bytes

    def __post_init__(self) -> None:
        if len(self.key_id) != KEY_ID_BYTES or len(self.key) != CONTENT_KEY_BYTES:
            raise ContentKeyError(f"a content key is {CONTENT_KEY_BYTES} bytes with a "
                                  f"{KEY_ID_BYTES}-byte key id")

    def __repr__(self) -> str:  # keeps the key out of tracebacks and logs
        return f"ContentKey(key_id={self.key_id.hex()}, key=<hidden>)"

    @classmethod
    def new(cls) -> ContentKey:
        """A fresh key and key id from the OS's CSPRNG."""
        return cls(secrets.token_bytes(KEY_ID_BYTES), secrets.token_bytes(CONTENT_KEY_BYTES))


@dataclass(frozen=True)
class WrappedContentKey:
    """A content key sealed to the station: what the manifest header stores."""

    kem: Kem
    key_id: bytes
    wrapped: bytes  # HPKE enc || ciphertext || tag

    def header_fields(self) -> dict[str, str]:
        """The manifest header's ``encryption`` object (docs/formats.md)."""
        return {"scheme": SCHEME, "key_id": self.key_id.hex(), "kem": self.kem.value,
                "kdf": KDF_NAME, "aead": AEAD_NAME,
                "wrapped_key": base64.b64encode(self.wrapped).decode("ascii")}


def wrap_info(recording_id: str, key_id: bytes) -> bytes:
    """The HPKE ``info`` that binds a wrapped key to its recording and key id."""
    return WRAP_INFO_PREFIX + recording_id.encode("utf-8") + b"\x00" + key_id


def wrap(content_key: ContentKey, recording_id: str,
         station_key: EncryptionPublicKey) -> WrappedContentKey:
    """Seal ``content_key`` to the station's encryption public key for ``recording_id``."""
    info = wrap_info(recording_id, content_key.key_id)
    sealed = suite(station_key.kem).encrypt(content_key.key, station_key.key_object(), info)
    return WrappedContentKey(station_key.kem, content_key.key_id, sealed)


def unwrap(wrapped: WrappedContentKey, recording_id: str,
           private_key: EncryptionPrivateKey) -> ContentKey:
    """Open a wrapped key with the station's private key; UnwrapError if it is not for this
    key, this recording and this key id, or was changed."""
    if wrapped.kem is not private_key.kem:
        raise UnwrapError(f"the key was wrapped with {wrapped.kem.value}; this station's "
                          f"encryption key is {private_key.kem.value}")
    try:
        key = suite(wrapped.kem).decrypt(wrapped.wrapped, private_key.key_object(),
                                         wrap_info(recording_id, wrapped.key_id))
    except (InvalidTag, ValueError):
        raise UnwrapError(
            f"the wrapped content key (key id {wrapped.key_id.hex()}) does not open for "
            f"recording {recording_id[:80]!r} with this station's key: it was wrapped for "
            "another station or recording, or changed") from None
    return ContentKey(wrapped.key_id, key)


class EncryptionHeaderError(ContentKeyError, ValueError):
    """A manifest header's ``encryption`` object that is not one this recorder writes."""


_HEADER_FIELDS = ("aead", "kdf", "kem", "key_id", "scheme", "wrapped_key")
# HPKE enc (32 bytes for X25519, 1120 for the hybrid) + the 16-byte key + the 16-byte GCM tag
_WRAPPED_BYTES = {Kem.X25519: 32 + 32, Kem.MLKEM768_X25519: 1120 + 32}


def parse_header_fields(value: object) -> WrappedContentKey:
    """The wrapped key of a manifest header's ``encryption`` object, every field checked before
    it is decoded (types, names, lengths): EncryptionHeaderError says which is wrong."""
    if not isinstance(value, dict):
        raise EncryptionHeaderError("encryption is not an object")
    names = sorted(value)
    if names != list(_HEADER_FIELDS):
        raise EncryptionHeaderError(
            f"encryption has the fields {', '.join(name[:20] for name in names[:8])}; it must "
            f"have exactly {', '.join(_HEADER_FIELDS)}")
    for name in _HEADER_FIELDS:
        if not isinstance(value[name], str):
            raise EncryptionHeaderError(f"encryption.{name} is not a string")
    wanted = {"scheme": SCHEME, "kdf": KDF_NAME, "aead": AEAD_NAME}
    for name, expected in wanted.items():
        if value[name] != expected:
            raise EncryptionHeaderError(f"encryption.{name} is {value[name][:40]!r}; this "
                                        f"recorder reads {expected!r} only")
    try:
        kem = Kem(value["kem"])
    except ValueError:
        raise EncryptionHeaderError(
            f"encryption.kem {value['kem'][:40]!r} is not one of "
            f"{', '.join(kem.value for kem in Kem)}") from None
    key_id = value["key_id"]
    if len(key_id) != 2 * KEY_ID_BYTES or any(char not in "0123456789abcdef" for char in key_id):
        raise EncryptionHeaderError(f"encryption.key_id is not {2 * KEY_ID_BYTES} lower-case hex "
                                    "digits")
    text = value["wrapped_key"]
    size = _WRAPPED_BYTES[kem]
    if len(text) != 4 * ((size + 2) // 3):
        raise EncryptionHeaderError(f"encryption.wrapped_key is {len(text)} characters; a "
                                    f"{kem.value} wrapped key is {size} bytes in base64")
    try:
        wrapped = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionHeaderError("encryption.wrapped_key is not valid base64") from None
    if len(wrapped) != size:
        raise EncryptionHeaderError(f"encryption.wrapped_key is {len(wrapped)} bytes, not {size}")
    return WrappedContentKey(kem, bytes.fromhex(key_id), wrapped)
