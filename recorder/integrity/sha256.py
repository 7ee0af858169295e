"""The SHA-256 hasher in use for segment files: native (recorder.integrity._sha256_c) if built,
else hashlib.

Both give hashlib's interface (update, digest, hexdigest, copy) and the same digests. The native
one uses the CPU's SHA instructions when it has them (x86 SHA-NI, ARMv8 crypto extensions),
OpenSSL's libcrypto otherwise (never slower than hashlib, which uses it too) and portable C only
without libcrypto, releasing the GIL while it hashes; ``ACCELERATION`` says which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._native import load

if TYPE_CHECKING:  # the typed pure twin is the type source for both implementations
    from ._sha256_py import Sha256
else:
    Sha256 = load("sha256").module.Sha256

#: "sha-ni", "armv8-ce", "openssl" or "portable" (native), or "hashlib" (pure).
ACCELERATION: str = load("sha256").module.ACCELERATION

__all__ = ["ACCELERATION", "Sha256"]
