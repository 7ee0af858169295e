"""The ARMv8 crypto-extension and portable SHA-256 block functions, cross-compiled for aarch64 and
run under qemu-user, agree with hashlib (the Raspberry Pi 5 takes the first, the Pi 4 the second).

Skipped (and listed as skipped) without ``gcc-aarch64-linux-gnu`` and ``qemu-user``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parents[1] / "native"
CC = "aarch64-linux-gnu-gcc"
QEMU = "qemu-aarch64"

DRIVER = r"""
#include "sha256.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* usage: driver [portable] < data: prints the digest (hashed in uneven pieces) and the path */
int main(int argc, char **argv)
{
    static uint8_t data[1 << 21];
    size_t n = fread(data, 1, sizeof data, stdin), at = 0, piece = 1;
    bwv_sha256 h;
    uint8_t digest[32];
    int i;

    bwv_sha256_force_portable(argc > 1 && strcmp(argv[1], "portable") == 0);
    bwv_sha256_init(&h);
    while (at < n) {
        piece = piece * 7 % 1000 + 1;
        if (piece > n - at)
            piece = n - at;
        bwv_sha256_update(&h, data + at, piece);
        at += piece;
    }
    bwv_sha256_digest(&h, digest);
    for (i = 0; i < 32; i++)
        printf("%02x", digest[i]);
    printf(" %s\n", bwv_sha256_acceleration());
    return 0;
}
"""


@pytest.fixture(scope="module")
def aarch64_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which(CC) is None or shutil.which(QEMU) is None:
        pytest.skip(f"needs {CC} and {QEMU} (apt-get install gcc-aarch64-linux-gnu qemu-user)")
    directory = tmp_path_factory.mktemp("aarch64")
    (directory / "driver.c").write_text(DRIVER)
    binary = directory / "driver"
    # the same flags as setup.py: no -march, so the crypto path rests on its target attribute
    subprocess.run([CC, "-O2", "-std=c99", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Werror",
                    "-static", f"-I{NATIVE}", str(directory / "driver.c"),
                    str(NATIVE / "sha256.c"), "-o", str(binary)], check=True)
    return binary


@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 1000, 123_457, 2_000_000])
@pytest.mark.parametrize("path, expected_name", [("accelerated", "armv8-ce"),
                                                 ("portable", "portable")])
def test_aarch64_block_functions_agree_with_hashlib(aarch64_driver: Path, size: int, path: str,
                                                    expected_name: str) -> None:
    data = bytes((i * 131 + i // 251) & 0xFF for i in range(size))
    out = subprocess.run([QEMU, "-cpu", "max", str(aarch64_driver), path], input=data,
                         capture_output=True, check=True).stdout.decode().split()
    assert out == [hashlib.sha256(data).hexdigest(), expected_name]
