"""The native SHA-256 against hashlib with and without the CPU's SHA instructions.

Each case runs in a fresh process: "cpu" as the machine is; "no SHA instructions" with
RECORDER_SHA256_NO_ACCEL=1 (the native piece) and OPENSSL_ia32cap=:~0x20000000 (OpenSSL, so
hashlib too), standing in for a Raspberry Pi 4, which has none. Throughput is the best of many
alternating rounds of 8 MiB (256 KiB buffers into one hasher, as the segment writer hashes
fragments), so that a shared machine's noise costs both sides alike. Each round gives one
native/hashlib ratio; the table shows their median and spread (lowest to highest) beside the
best throughput of each side.

usage: python benches/sha256_no_accel.py [--rounds N] [--min-ratio R]
Exit status 1 if the median ratio is below R in any case (default 0: report only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

MASK_SHA_EXTENSIONS = ":~0x20000000"  # OpenSSL's capability bit for the x86 SHA extensions

MEASURE = r"""
import hashlib, importlib, json, sys, time
native = importlib.import_module("recorder.integrity._sha256_c")
buffer = bytes(range(256)) * 1024
def rate(make):
    hasher, start = make(), time.perf_counter()
    for _ in range(32):
        hasher.update(buffer)
    hasher.digest()
    return 8 / (time.perf_counter() - start)
rounds = []
for _ in range(int(sys.argv[1])):
    rounds.append((rate(native.Sha256), rate(hashlib.sha256)))
print(json.dumps({"acceleration": native.ACCELERATION, "rounds": rounds}))
"""

CASES = {"cpu": {}, "no SHA instructions": {"RECORDER_SHA256_NO_ACCEL": "1",
                                            "OPENSSL_ia32cap": MASK_SHA_EXTENSIONS}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--min-ratio", type=float, default=0.0)
    args = parser.parse_args()
    print(f"{args.rounds} alternating rounds per case, one process per case")
    print("| case | native block function | native MiB/s (best) | hashlib MiB/s (best) "
          "| native/hashlib, median (spread) |")
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
        measured = json.loads(run.stdout)
        rounds = measured["rounds"]
        ratios = sorted(native / hashed for native, hashed in rounds)
        ratio = statistics.median(ratios)
        worst = min(worst, ratio)
        print(f"| {case} | {measured['acceleration']} | {max(n for n, _ in rounds):.0f} "
              f"| {max(h for _, h in rounds):.0f} | {ratio:.2f}x "
              f"({ratios[0]:.2f}-{ratios[-1]:.2f}) |")
    return 1 if worst < args.min_ratio else 0


if __name__ == "__main__":
    sys.exit(main())
