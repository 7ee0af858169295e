"""The SHA-256 hasher in use for segment files: native (recorder.integrity._sha256_c) if built,
else hashlib.

Both give hashlib's interface (update, digest, hexdigest, copy) and the same digests. The native
one uses the CPU's SHA instructions when it has them (x86 SHA-NI, ARMv8 crypto extensions),
OpenSSL's libcrypto otherwise (never slower than hashlib, which uses it too) and portable C only
without libcrypto, releasing the GIL while it hashes; ``ACCELERATION`` says which.

``hash_file`` and ``file_sha256`` are the one routine that hashes whole files (``bwv verify``, the
station's export, redaction and request files): one reusable read buffer, and in the native piece
the whole file read and hashed in C without the GIL, the buffer small enough (128 KiB) to stay in
the CPU's cache between the kernel's copy and the hash.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._native import load

if TYPE_CHECKING:  # the typed pure twin is the type source for both implementations
    from ._sha256_py import Sha256, hash_file
else:
    Sha256 = load("sha256").module.Sha256
    hash_file = load("sha256").module.hash_file

#: "sha-ni", "armv8-ce", "openssl" or "portable" (native), or "hashlib" (pure).
ACCELERATION: str = load("sha256").module.ACCELERATION
#: hash_file's read size, in bytes.
FILE_BUFFER_BYTES: int = load("sha256").module.FILE_BUFFER_BYTES


def file_sha256(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(SHA-256 as 64 lower-case hex digits, size) of the file at ``path``, read once."""
    with open(path, "rb", buffering=0) as file:
        return hash_file(file.fileno())


__all__ = ["ACCELERATION", "FILE_BUFFER_BYTES", "Sha256", "file_sha256", "hash_file"]
