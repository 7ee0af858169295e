"""Hashing whole files: the project's file routine as `bwv verify` and the station call it,
against `openssl dgst -sha256` on the same files. Target: at least 0.95x openssl's throughput,
with the CPU's SHA instructions and without them.

Two sets of files, written once and read back so that they are in the page cache: 8 files of
64 MiB, and 4 segments as the camera writes them at 10 Mbit/s (30 s, 37.5 MB each). Each round
times,
in an order that rotates from round to round:

- ``verify``: recorder.integrity.verify's own hashing of each file (opened as verify opens a
  segment, hashed by recorder.integrity.sha256.hash_file);
- ``station``: recorder.station.export.sha256_of, which the station uses for export packages,
  redaction and request files (the same routine, reached by path);
- ``before``: the routine both used before (``read`` of 1 MiB pieces into hashlib), for reference;
- ``openssl``: one ``openssl dgst -sha256`` process over all the files of the set, less the time
  of the same command on an empty file (its process start, measured in the same round).

Every digest is checked against openssl's. The time is CPU time (user + system, the child's for
openssl), which a machine shared with other jobs disturbs far less than elapsed time; elapsed
time is shown beside it. Each round gives each routine's throughput ratio to openssl's; the table
shows the median ratio and its spread (lowest to highest) over the rounds.
Each case runs in a fresh process for each implementation (native, and pure Python with
RECORDER_NATIVE=off): "cpu" as the machine is; "no SHA instructions" with
OPENSSL_ia32cap=:~0x20000000 for openssl and for the Python side (hashlib) and
RECORDER_SHA256_NO_ACCEL=1 for the native piece, standing in for a Raspberry Pi 4.

usage: python benches/bench_file_hash.py [--rounds N] [--min-ratio R] [--dir D]
                                         [--buffers 16,64,...] [--busy]
``--buffers`` (KiB) adds rows for the native hash_file with other read sizes. ``--busy`` keeps a
Python thread spinning beside the hashing, as the station's event loop would be: a routine that
takes the GIL back between pieces then waits for it each time (its CPU column then counts the
spinning thread too: read the wall column). Exit status 1 if a median CPU ratio (wall ratio with
--busy) of verify or station is below R (default 0: report only), 2 if a digest disagrees.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MASK_SHA_EXTENSIONS = ":~0x20000000"  # OpenSSL's capability bit for the x86 SHA extensions
ROUTINES = ("verify", "station")  # the routines the target is about

CASES = {"cpu": {}, "no SHA instructions": {"RECORDER_SHA256_NO_ACCEL": "1",
                                            "OPENSSL_ia32cap": MASK_SHA_EXTENSIONS}}
IMPLEMENTATIONS = {"native": {"RECORDER_NATIVE": "required"}, "pure": {"RECORDER_NATIVE": "off"}}

# Runs in the child process: argv[1] is a JSON job {"sets": {name: [paths]}, "empty": path,
# "rounds": n, "buffers": [bytes]}; prints {"acceleration": ..., "sets": {name: {routine:
# [seconds per round]}}}.
MEASURE = r"""
import hashlib, json, os, re, resource, subprocess, sys, time
from recorder.integrity import sha256, verify
from recorder.station.export import sha256_of

job = json.loads(sys.argv[1])
if job["busy"]:  # a Python thread that wants the GIL all the time, as a busy event loop does
    import threading
    def spin():
        while True:
            pass
    threading.Thread(target=spin, daemon=True).start()

def before(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

def native_with(size):
    def run(path):
        with open(path, "rb", buffering=0) as file:
            return sha256.hash_file(file.fileno(), size)[0]
    return run

def openssl(paths):
    out = subprocess.run(["openssl", "dgst", "-sha256", *paths], check=True,
                         capture_output=True, text=True).stdout
    return re.findall(r"= ([0-9a-f]{64})$", out, re.M)

def cpu():
    return sum(getattr(resource.getrusage(who), field) for who in
               (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for field in ("ru_utime", "ru_stime"))

def timed(call):
    # (CPU seconds, wall seconds, result): the user + system time of this process and of its
    # finished children, so that openssl's process is counted as our own routine is
    used, start = cpu(), time.perf_counter()
    result = call()
    wall = time.perf_counter() - start
    return (cpu() - used, wall), result

routines = {"verify": lambda path: verify._hash_file(path)[0], "station": sha256_of,
            "before": before}
routines.update({f"hash_file {size >> 10} KiB": native_with(size) for size in job["buffers"]})
found = {name: {routine: [] for routine in [*routines, "openssl"]} for name in job["sets"]}
mismatch = []
for round_ in range(job["rounds"]):
    for name, paths in job["sets"].items():
        order = [*routines, "openssl"]
        shift = round_ % len(order)
        for routine in order[shift:] + order[:shift]:
            if routine == "openssl":
                starts = [timed(lambda: openssl([job["empty"]]))[0] for _ in range(3)]
                seconds, digests = timed(lambda: openssl(paths))
                seconds = tuple(taken - sorted(start[i] for start in starts)[1]
                                for i, taken in enumerate(seconds))
            else:
                hashed = routines[routine]
                seconds, digests = timed(lambda: [hashed(path) for path in paths])
            found[name][routine].append(seconds)
            if round_ == 0:
                found[name].setdefault("_digests", {})[routine] = digests
    if round_ == 0:
        for name in job["sets"]:
            digests = found[name].pop("_digests")
            mismatch += [f"{name}: {routine}" for routine, got in digests.items()
                         if got != digests["openssl"]]
print(json.dumps({"acceleration": sha256.ACCELERATION, "mismatch": mismatch, "sets": found}))
"""


def write_files(directory: Path, sizes: dict[str, list[int]]) -> dict[str, list[str]]:
    """Random files of the given sizes, read back once so the page cache holds them."""
    sets: dict[str, list[str]] = {}
    for name, lengths in sizes.items():
        paths = []
        for number, length in enumerate(lengths):
            path = directory / f"{name.replace(' ', '_')}.{number}"
            with open(path, "wb") as file:
                left = length
                while left:
                    left -= file.write(os.urandom(min(left, 1 << 22)))
            paths.append(str(path))
        sets[name] = paths
    for paths in sets.values():
        for path in paths:
            with open(path, "rb", buffering=0) as file:
                while file.read(1 << 22):
                    pass
    return sets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-ratio", type=float, default=0.0)
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (a temp dir)")
    parser.add_argument("--buffers", default="", help="KiB, comma-separated: native read sizes")
    parser.add_argument("--busy", action="store_true",
                        help="a Python thread spins beside the hashing (only wall time counts)")
    args = parser.parse_args()
    buffers = [int(kib) << 10 for kib in args.buffers.split(",") if kib]
    sizes = {"8 x 64 MiB": [64 << 20] * 8, "4 segments of 37.5 MB": [37_500_000] * 4}
    print(f"{args.rounds} rounds per case, routines alternating, one process per case and "
          "implementation. CPU: user + system time per byte (openssl's process included, its "
          "start on an empty file subtracted); wall: elapsed time. MiB/s and ratios are medians "
          "over the rounds, spread lowest-highest")
    print("| case | implementation (block function) | files | routine | MiB per CPU s "
          "| ratio to openssl dgst, CPU | ratio to openssl dgst, wall |")
    print("|---|---|---|---|---|---|---|")
    worst = float("inf")
    with tempfile.TemporaryDirectory(prefix="bwv-file-hash-", dir=args.dir) as scratch:
        directory = Path(scratch)
        sets = write_files(directory, sizes)
        empty = directory / "empty"
        empty.touch()
        job = json.dumps({"sets": sets, "empty": str(empty), "rounds": args.rounds,
                          "buffers": buffers, "busy": args.busy})
        for case, extra in CASES.items():
            for implementation, chosen in IMPLEMENTATIONS.items():
                env = {key: value for key, value in os.environ.items()
                       if key not in ("RECORDER_SHA256_NO_ACCEL", "OPENSSL_ia32cap",
                                      "RECORDER_NATIVE")}
                run = subprocess.run([sys.executable, "-c", MEASURE, job],
                                     env={**env, **extra, **chosen}, capture_output=True,
                                     text=True, check=False, cwd=directory)
                if run.returncode != 0:
                    print(f"bench_file_hash: the {case}/{implementation} run failed:\n"
                          f"{run.stderr}", file=sys.stderr)
                    return 2
                measured = json.loads(run.stdout)
                if measured["mismatch"]:
                    print(f"bench_file_hash: digests differ from openssl's: "
                          f"{measured['mismatch']}", file=sys.stderr)
                    return 2
                for name, routines in measured["sets"].items():
                    total = sum(os.path.getsize(path) for path in sets[name]) / (1 << 20)
                    reference = routines["openssl"]
                    for routine, seconds in routines.items():
                        if implementation == "pure" and routine.startswith("hash_file"):
                            continue
                        shown = []
                        for clock in (0, 1):  # CPU, wall
                            ratios = sorted(theirs[clock] / ours[clock]
                                            for ours, theirs in zip(seconds, reference))
                            shown.append(f"{statistics.median(ratios):.2f}x "
                                         f"({ratios[0]:.2f}-{ratios[-1]:.2f})")
                            if routine in ROUTINES and clock == int(args.busy):
                                worst = min(worst, statistics.median(ratios))
                        rate = total / statistics.median(cpu for cpu, _ in seconds)
                        print(f"| {case} | {implementation} ({measured['acceleration']}) "
                              f"| {name} | {routine} | {rate:.0f} | {shown[0]} | {shown[1]} |",
                              flush=True)
    return 1 if worst < args.min_ratio else 0


if __name__ == "__main__":
    sys.exit(main())
