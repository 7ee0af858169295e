"""The device's Ed25519 signing key: created once with mode 0600 in the data directory, then loaded.

The key signs every manifest line. Its fingerprint is the lower-case hex SHA-256 of the raw 32-byte
public key, so anyone holding the public key can recompute it with ``sha256sum``.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import RecorderError
from ..private_files import create_private_file_once, make_private_dir
# the data directory is a setting; re-exported so that keys.default_data_dir works as before
from ..settings import DATA_DIR_ENV_VAR as DATA_DIR_ENV_VAR, default_data_dir as default_data_dir

KEY_FILE_NAME = "device_key.pem"

# DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
# 1.3.101.112 }, BIT STRING (32 bytes) }. The raw key follows it: the PEM body is prefix + key.
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


class DeviceKeyError(RecorderError):
    """Base class of the device key's errors."""


class KeyPermissionError(DeviceKeyError, PermissionError):
    """The private key file can be read or written by users other than its owner."""


class KeyCorruptError(DeviceKeyError, ValueError):
    """The key file does not hold an unencrypted Ed25519 private key in PEM."""


class PublicKeyFormatError(DeviceKeyError, ValueError):
    """A public key given by the user is not an Ed25519 key in a form we read."""


def public_key_raw(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """Lower-case hex SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(public_key_raw(key)).hexdigest()


def public_key_spki_b64(key: Ed25519PublicKey) -> str:
    """Base64 of the DER SubjectPublicKeyInfo: the PEM body, as stored in manifest headers."""
    return base64.b64encode(_SPKI_PREFIX + public_key_raw(key)).decode("ascii")


def public_key_pem(key: Ed25519PublicKey) -> str:
    """The public key as PEM text, the form ``openssl pkeyutl -pubin -inkey`` reads."""
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def public_key_from_spki_b64(text: str) -> Ed25519PublicKey:
    """Parse the base64 DER SubjectPublicKeyInfo of a manifest header."""
    try:
        der = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PublicKeyFormatError(f"public key {text!r} is not valid base64: {exc}") from None
    if len(der) != len(_SPKI_PREFIX) + 32 or not der.startswith(_SPKI_PREFIX):
        raise PublicKeyFormatError(
            f"public key {text!r} is not the base64 DER of an Ed25519 SubjectPublicKeyInfo "
            f"({len(_SPKI_PREFIX) + 32} bytes starting {_SPKI_PREFIX.hex()})")
    return Ed25519PublicKey.from_public_bytes(der[len(_SPKI_PREFIX):])


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read a trusted public key from a file: PEM, the one-line base64 form `bwv doctor` prints
    (the PEM body, as in manifest headers), DER, or the raw key as 64 hex digits."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PublicKeyFormatError(f"cannot read public key file {path}: {exc.strerror}") from None
    text = data.strip()
    if len(text) == 64:
        try:
            return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            pass
    if text.startswith(base64.b64encode(_SPKI_PREFIX)[:16]):
        try:
            return public_key_from_spki_b64(text.decode("ascii"))
        except (PublicKeyFormatError, UnicodeDecodeError):
            pass
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_der_public_key(data)
        except ValueError:
            raise PublicKeyFormatError(
                f"{path} holds no public key: give a PEM file (-----BEGIN PUBLIC KEY-----), the "
                "one-line key `bwv doctor` prints, or the raw key as 64 hex digits") from None
    if not isinstance(key, Ed25519PublicKey):
        raise PublicKeyFormatError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def verify_signature(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is ``key``'s Ed25519 signature of ``message``."""
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class DeviceKey:
    """The camera's private signing key and where it lives."""

    path: Path
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_key_raw(self) -> bytes:
        return public_key_raw(self.public_key)

    @property
    def public_key_pem(self) -> str:
        return public_key_pem(self.public_key)

    @property
    def fingerprint(self) -> str:
        """Lower-case hex SHA-256 of the raw 32-byte public key."""
        return fingerprint(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self.private_key.sign(message)

    @classmethod
    def load(cls, path: Path) -> DeviceKey:
        """Load an existing key, refusing one that others may read or that is not Ed25519."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise KeyPermissionError(
                    f"device key {path} is a symbolic link; keep the real file there") from None
            raise
        with os.fdopen(fd, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if stat.S_IMODE(mode) & 0o077:
                raise KeyPermissionError(
                    f"device key {path} has mode {stat.S_IMODE(mode):04o}: other users could read "
                    f"or replace it. Fix with: chmod 600 {path}")
            data = file.read()
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyCorruptError(
                f"device key {path} is unreadable ({exc}). If it was damaged, restore it from "
                "backup; creating a new key means re-enrolling the camera at the station") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyCorruptError(
                f"device key {path} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(path, key)

    @classmethod
    def find(cls, data_dir: Path, name: str = KEY_FILE_NAME) -> DeviceKey | None:
        """The key ``name`` in ``data_dir``, or None when none has been created yet."""
        path = data_dir / name
        if not os.path.lexists(path):
            return None
        return cls.load(path)

    @classmethod
    def load_or_create(cls, data_dir: Path, name: str = KEY_FILE_NAME) -> DeviceKey:
        """Load the key ``name`` in ``data_dir`` (the camera's key unless another name is
        given: the station keeps its own key the same way), creating it (mode 0600, fsynced,
        in a 0700 directory, made or tightened so whatever the umask) on first use."""
        existing = cls.find(data_dir, name)
        if existing is not None:
            return existing
        make_private_dir(data_dir)
        path = data_dir / name
        private_key = Ed25519PrivateKey.generate()
        pem = private_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        create_private_file_once(path, pem)
        return cls.load(path)
