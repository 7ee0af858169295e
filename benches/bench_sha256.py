"""SHA-256 throughput: the native hasher against hashlib (OpenSSL), buffers from 4 KiB to 4 MiB.

Each round hashes 8 MiB as a stream of equal buffers into one hasher, as the segment writer does
with fragments, and takes the digest.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from support.twins import twin_module

TOTAL = 8 << 20
SIZES = {"4KiB": 4 << 10, "16KiB": 16 << 10, "64KiB": 64 << 10, "256KiB": 256 << 10,
         "1MiB": 1 << 20, "4MiB": 4 << 20}
KINDS = ["native", "hashlib"]


@pytest.mark.parametrize("kind", KINDS)  # innermost: both kinds of a size run back to back
@pytest.mark.parametrize("size", list(SIZES))
def test_sha256(benchmark: Any, kind: str, size: str) -> None:
    nbytes = SIZES[size]
    buffer = bytes(range(256)) * (nbytes // 256)
    count = TOTAL // nbytes
    make = twin_module("sha256", "native").Sha256 if kind == "native" else hashlib.sha256
    benchmark.extra_info.update(piece="sha256", op="hash", size=size, kind=kind, units=count,
                                bytes=TOTAL)

    def run() -> bytes:
        hasher = make()
        update = hasher.update
        for _ in range(count):
            update(buffer)
        return hasher.digest()

    assert benchmark(run) == hashlib.sha256(buffer * count).digest()
