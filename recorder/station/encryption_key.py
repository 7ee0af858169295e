"""The station's encryption key pair: the private key that unwraps recordings' content keys, kept
in its own file (``station_encryption_key``, mode 0600, refused if others may read it), apart
from the signing key so that each can move to a hardware token on its own.

The file is one line, ``bwv-station-encryption-key/1:KEM:BASE64``, the raw private key (for the
hybrid KEM the 64-byte ML-KEM-768 seed, then the X25519 key).
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import stat
from pathlib import Path

from ..durability import fsync_directory, write_all
from ..errors import RecorderError
from ..integrity.content_key import (
    EncryptionKeyFormatError, EncryptionPrivateKey, Kem,
)
from ..private_files import create_private_file_once, make_private_dir

ENCRYPTION_KEY_FILE = "station_encryption_key"
# Its public half, written beside it when it is made: a station that has it and not the private
# file has lost its key (restore it from backup), unlike a station made before encryption.
ENCRYPTION_PUBLIC_FILE = "station_encryption_key.pub"
FILE_SCHEME = "bwv-station-encryption-key/1"
MAX_FILE_BYTES = 1024


class EncryptionKeyFileError(RecorderError):
    """The station's encryption key file cannot be used."""


class EncryptionKeyPermissionError(EncryptionKeyFileError, PermissionError):
    """The encryption key file can be read or written by users other than its owner."""


def _encode(key: EncryptionPrivateKey) -> bytes:
    return f"{FILE_SCHEME}:{key.kem.value}:{base64.b64encode(key.raw).decode()}\n".encode()


def load(path: Path) -> EncryptionPrivateKey:
    """Read the key file, refusing a link, a file others may read, or one that is not ours."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise EncryptionKeyPermissionError(
                f"station encryption key {path} is a symbolic link; keep the real file there"
            ) from None
        raise EncryptionKeyFileError(f"cannot open station encryption key {path}: "
                                     f"{exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
        if mode & 0o077:
            raise EncryptionKeyPermissionError(
                f"station encryption key {path} has mode {mode:04o}: other users could read "
                f"every recording's content key. Fix with: chmod 600 {path}")
        data = file.read(MAX_FILE_BYTES + 1)
    scheme, _, rest = data.decode("ascii", "replace").strip().partition(":")
    kem_name, _, body = rest.partition(":")
    try:
        if scheme != FILE_SCHEME or len(data) > MAX_FILE_BYTES:
            raise EncryptionKeyFormatError(f"it does not start {FILE_SCHEME}:")
        key = EncryptionPrivateKey(Kem.from_name(kem_name), base64.b64decode(body, validate=True))
        key.key_object()
    except (EncryptionKeyFormatError, binascii.Error, ValueError) as exc:
        raise EncryptionKeyFileError(
            f"station encryption key {path} is unreadable ({exc}): restore it from backup; "
            "without it the content keys of recordings made for this station cannot be "
            "unwrapped") from None
    return key


def lost(data_dir: Path) -> bool:
    """True when ``data_dir`` once had an encryption key (its public half is there) and the
    private key file is gone: a new one would leave every recording encrypted for the old key
    unreadable, and cameras pinned to it encrypting for a key nobody holds."""
    return (os.path.lexists(data_dir / ENCRYPTION_PUBLIC_FILE)
            and not os.path.lexists(data_dir / ENCRYPTION_KEY_FILE))


def find(data_dir: Path) -> EncryptionPrivateKey | None:
    """The station's encryption key in ``data_dir``, or None when it has none yet."""
    path = data_dir / ENCRYPTION_KEY_FILE
    if not os.path.lexists(path):
        return None
    return load(path)


def load_or_create(data_dir: Path, kem: Kem = Kem.X25519) -> EncryptionPrivateKey:
    """The encryption key in ``data_dir``, made with ``kem`` (mode 0600, fsynced, linked into
    place whole so a power cut or a racing process never leaves half a key) on first use."""
    existing = find(data_dir)
    if existing is not None:
        return existing
    make_private_dir(data_dir)
    path = data_dir / ENCRYPTION_KEY_FILE
    create_private_file_once(path, _encode(EncryptionPrivateKey.generate(kem)))
    key = load(path)
    public = key.public_key()
    marker = os.open(data_dir / ENCRYPTION_PUBLIC_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
    try:
        os.fchmod(marker, 0o600)  # as every file of the station's, whatever the umask
        write_all(marker, f"{public.kem.value}:{public.b64()}\n".encode("ascii"))
        os.fsync(marker)
    finally:
        os.close(marker)
    fsync_directory(data_dir)
    return key
