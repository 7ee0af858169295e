"""Pure-Python SHA-256 for segment files: the twin of the native hasher, backed by hashlib.

hashlib calls OpenSSL, which already uses the CPU's SHA instructions; this twin exists so that an
install without a C compiler hashes the same way through the same interface.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

#: What update() accepts: any contiguous bytes-like object.
Buffer = bytes | bytearray | memoryview

ACCELERATION = "hashlib"

#: hash_file's read size. Larger than the native piece's 128 KiB: here the GIL is given up and
#: taken back for every read and every update, and with another Python thread busy each taking
#: back waits for it (docs/performance.md, "Hashing whole files"), so fewer, larger pieces.
FILE_BUFFER_BYTES = 1 << 20


def hash_file(fd: int, buffer_bytes: int = FILE_BUFFER_BYTES) -> tuple[str, int]:
    """(SHA-256 as 64 lower-case hex digits, size) of the whole file open on ``fd``, read from its
    first byte to its end into one buffer of ``buffer_bytes``; the descriptor's offset is left
    where it was. hashlib and the reads release the GIL. OSError if a read fails."""
    if buffer_bytes < 64:
        raise ValueError(f"buffer_bytes is {buffer_bytes}: at least one 64-byte block")
    with contextlib.suppress(OSError):  # advice only: more read-ahead for a file not cached
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    digest = hashlib.sha256()
    buffer = bytearray(buffer_bytes)
    view = memoryview(buffer)
    offset = 0
    while got := os.preadv(fd, [buffer], offset):
        digest.update(view[:got])
        offset += got
    return digest.hexdigest(), offset


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
