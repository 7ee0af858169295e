"""Pure-Python SHA-256 for segment files: the twin of the native hasher, backed by hashlib.

hashlib calls OpenSSL, which already uses the CPU's SHA instructions; this twin exists so that an
install without a C compiler hashes the same way through the same interface.
"""

from __future__ import annotations

import hashlib

#: What update() accepts: any contiguous bytes-like object.
Buffer = bytes | bytearray | memoryview

ACCELERATION = "hashlib"


class Sha256:
    """An incremental SHA-256 hasher with hashlib's interface: update, digest, hexdigest, copy."""

    __slots__ = ("_hash",)

    name = "sha256"
    digest_size = 32
    block_size = 64

    def __init__(self, data: Buffer = b"") -> None:
        self._hash = hashlib.sha256(data)

    def update(self, data: Buffer) -> None:
        """Hash more bytes (any contiguous bytes-like object)."""
        self._hash.update(data)

    def digest(self) -> bytes:
        """The 32-byte digest of everything hashed so far (hashing may go on)."""
        return self._hash.digest()

    def hexdigest(self) -> str:
        """The digest as 64 lower-case hex digits."""
        return self._hash.hexdigest()

    def copy(self) -> Sha256:
        """A hasher with the same state, independent from now on."""
        other = Sha256.__new__(Sha256)
        other._hash = self._hash.copy()
        return other
