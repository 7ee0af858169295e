"""The native SHA-256 against hashlib with and without the CPU's SHA instructions.

Each case runs in a fresh process: "cpu" as the machine is; "no SHA instructions" with
RECORDER_SHA256_NO_ACCEL=1 (the native piece) and OPENSSL_ia32cap=:~0x20000000 (OpenSSL, so
hashlib too), standing in for a Raspberry Pi 4, which has none. Throughput is the best of many
alternating rounds of 8 MiB (256 KiB buffers into one hasher, as the segment writer hashes
fragments), so that a shared machine's noise costs both sides alike.

usage: python benches/sha256_no_accel.py [--rounds N] [--min-ratio R]
Exit status 1 if native is below R times hashlib in any case (default 0: report only).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

MASK_SHA_EXTENSIONS = ":~0x20000000"  # OpenSSL's capability bit for the x86 SHA extensions

MEASURE = r"""
import hashlib, importlib, sys, time
native = importlib.import_module("recorder.integrity._sha256_c")
buffer = bytes(range(256)) * 1024
def rate(make):
    hasher, start = make(), time.perf_counter()
    for _ in range(32):
        hasher.update(buffer)
    hasher.digest()
    return 8 / (time.perf_counter() - start)
best = {"native": 0.0, "hashlib": 0.0}
for _ in range(int(sys.argv[1])):
    best["native"] = max(best["native"], rate(native.Sha256))
    best["hashlib"] = max(best["hashlib"], rate(hashlib.sha256))
print(native.ACCELERATION, best["native"], best["hashlib"])
"""

CASES = {"cpu": {}, "no SHA instructions": {"RECORDER_SHA256_NO_ACCEL": "1",
                                            "OPENSSL_ia32cap": MASK_SHA_EXTENSIONS}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--min-ratio", type=float, default=0.0)
    args = parser.parse_args()
    print("| case | native block function | native MiB/s | hashlib MiB/s | native/hashlib |")
    print("|---|---|---|---|---|")
    worst = float("inf")
    for case, extra in CASES.items():
        env = {key: value for key, value in os.environ.items()
               if key not in ("RECORDER_SHA256_NO_ACCEL", "OPENSSL_ia32cap")}
        run = subprocess.run([sys.executable, "-P", "-c", MEASURE, str(args.rounds)],
                             env={**env, **extra}, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            print(f"sha256_no_accel: the {case} case failed (is the native piece built?):\n"
                  f"{run.stderr}", file=sys.stderr)
            return 2
        acceleration, native_rate, hashlib_rate = run.stdout.split()
        ratio = float(native_rate) / float(hashlib_rate)
        worst = min(worst, ratio)
        print(f"| {case} | {acceleration} | {float(native_rate):.0f} | {float(hashlib_rate):.0f} "
              f"| {ratio:.2f}x |")
    return 1 if worst < args.min_ratio else 0


if __name__ == "__main__":
    sys.exit(main())
