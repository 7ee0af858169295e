"""On a CPU without SHA instructions the native SHA-256 hashes with OpenSSL's libcrypto, so it is
never slower than hashlib (issue 16: its portable C ran at 0.6x of OpenSSL there, as on a Pi 4).
RECORDER_SHA256_NO_ACCEL=1 makes any CPU such a CPU; `bwv doctor` names the block function."""

from __future__ import annotations

import array
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from support.twins import twin_module

AGREES_WITH_HASHLIB = r"""
import hashlib, importlib, os, sys
native = importlib.import_module(sys.argv[1])
data = os.urandom(1 << 20)
ok = all(native.Sha256(data[:n]).digest() == hashlib.sha256(data[:n]).digest()
         for n in (0, 1, 55, 56, 63, 64, 65, 1000, 4096, 1 << 20))
streamed = native.Sha256()
for start in range(0, len(data), 777):
    streamed.update(data[start:start + 777])
ok = ok and streamed.digest() == hashlib.sha256(data).digest()
print(native.ACCELERATION, ok)
"""


def _fresh(module: str, **environ: str) -> list[str]:
    env = {key: value for key, value in os.environ.items() if key != "RECORDER_SHA256_NO_ACCEL"}
    run = subprocess.run([sys.executable, "-c", AGREES_WITH_HASHLIB, module], cwd="/",
                         env={**env, **environ}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


def test_without_sha_instructions_the_native_hasher_runs_openssl_and_agrees() -> None:
    module = twin_module("sha256", "native").__name__
    assert _fresh(module, RECORDER_SHA256_NO_ACCEL="1") == ["openssl", "True"]


@pytest.mark.parametrize("value", ["0", "", "yes"])
def test_only_the_value_1_refuses_the_sha_instructions(value: str) -> None:
    module = twin_module("sha256", "native").__name__
    expected = _fresh(module)
    assert _fresh(module, RECORDER_SHA256_NO_ACCEL=value) == expected
    assert expected[1] == "True"


def test_on_this_cpu_the_fastest_block_function_is_chosen() -> None:
    module = twin_module("sha256", "native").__name__
    if platform.machine() == "aarch64":
        # the kernel's HWCAP (AT_HWCAP = 16, HWCAP_SHA2 = 1 << 6), as the native piece reads it:
        # /proc/cpuinfo is the host's under qemu-user, /proc/self/auxv is the emulated CPU's
        words = array.array("Q", Path("/proc/self/auxv").read_bytes())
        hwcap = dict(zip(words[::2], words[1::2])).get(16, 0)
        expected = "armv8-ce" if hwcap & (1 << 6) else "openssl"
    else:
        expected = "sha-ni" if " sha_ni" in Path("/proc/cpuinfo").read_text() else "openssl"
    assert _fresh(module)[0] == expected


@pytest.mark.parametrize("no_accel", ["1", None], ids=["no-accel", "cpu"])
def test_bwv_doctor_names_the_block_function_in_use(no_accel: str | None) -> None:
    native = twin_module("sha256", "native")
    env = {key: value for key, value in os.environ.items() if key != "RECORDER_SHA256_NO_ACCEL"}
    if no_accel is not None:
        env["RECORDER_SHA256_NO_ACCEL"] = no_accel
    doctor = subprocess.run([sys.executable, "-m", "recorder", "doctor"], cwd="/", env=env,
                            capture_output=True, text=True, timeout=60)
    [line] = [line for line in doctor.stdout.splitlines() if line.startswith("sha256 ")]
    expected = "openssl" if no_accel else native.ACCELERATION
    assert " native: " in line and line.rstrip().endswith(f"; hashing with {expected}"), line
