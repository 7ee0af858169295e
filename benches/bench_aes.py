"""AES-128-CTR throughput, the cipher of encryption at rest ('cenc'): the routine the native
muxer encrypts with (``recorder.storage._mux_c.Aes128Ctr``, mux.c's bwv_aes128_ctr over OpenSSL's
libcrypto) against its pure twin (``cryptography``) and against what OpenSSL itself reaches,
``openssl speed -evp aes-128-ctr``, on 16 KiB and 256 KiB buffers.

Each call encrypts one buffer in place from a counter block of its own, as the muxer does for
each sample (the key is expanded once). ``test_aes128_ctr`` times 8 MiB of such calls per round
for each twin. ``test_aes128_ctr_against_openssl_speed`` alternates, for ROUNDS rounds in this
one process, ``openssl speed -evp aes-128-ctr -bytes N -seconds 1`` with one second of each
twin's calls, and reports the median of the rounds' ratios with their spread (min-max).
openssl speed divides by the user CPU time it used (its default), so each twin's throughput here
is bytes over the process's CPU time too.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import time
from typing import Any, Callable

import pytest

from recorder.storage import _mux_cenc

from support.twins import twin_module

TOTAL = 8 << 20
SIZES = {"16KiB": 16 << 10, "256KiB": 256 << 10}
KINDS = ["native", "pure"]
KEY = bytes(range(16))
IV = bytes(range(16, 32))
ROUNDS = 7
SECONDS = 1.0
OPENSSL = shutil.which("openssl")
# the result line of `openssl speed`: the cipher's name, then 1000s of bytes per second
SPEED_LINE = re.compile(r"^aes-128-ctr\s+([0-9.]+)k\s*$", re.IGNORECASE | re.MULTILINE)


def aes(kind: str) -> Any:
    """An AES-128-CTR context of one twin under KEY."""
    module = twin_module("mux", "native") if kind == "native" else _mux_cenc
    return module.Aes128Ctr(KEY)


@pytest.mark.parametrize("kind", KINDS)  # innermost: both kinds of a size run back to back
@pytest.mark.parametrize("size", list(SIZES))
def test_aes128_ctr(benchmark: Any, kind: str, size: str) -> None:
    nbytes = SIZES[size]
    buffer = bytearray(bytes(range(256)) * (nbytes // 256))
    count = TOTAL // nbytes
    context = aes(kind)
    benchmark.extra_info.update(piece="aes", op="ctr", size=size, kind=kind, units=count,
                                bytes=TOTAL)

    def run() -> None:
        apply = context.apply
        for _ in range(count):
            apply(IV, buffer)

    original = bytes(buffer)
    benchmark(run)
    # after all those calls, one on a fresh copy still starts at its own counter block
    fresh = bytearray(original)
    context.apply(IV, fresh)
    assert bytes(fresh) == _mux_cenc.aes128_ctr(KEY, IV, original) != original


def openssl_speed(nbytes: int) -> float:
    """Bytes per second of ``openssl speed -evp aes-128-ctr`` on ``nbytes`` buffers."""
    assert OPENSSL is not None
    result = subprocess.run([OPENSSL, "speed", "-evp", "aes-128-ctr", "-bytes", str(nbytes),
                             "-seconds", str(int(SECONDS))], capture_output=True, text=True,
                            check=True, timeout=60)
    match = SPEED_LINE.search(result.stdout)
    if match is None:
        raise AssertionError(f"no aes-128-ctr figure in openssl speed's output:\n{result.stdout}")
    return float(match.group(1)) * 1000


def twin_speed(apply: Callable[[bytes, bytearray], None], buffer: bytearray,
               seconds: float) -> float:
    """Bytes per CPU second of ``apply`` on ``buffer`` over about ``seconds`` of CPU time."""
    calls = 0
    batch = max(1, (8 << 20) // len(buffer))
    start = time.process_time()
    while True:
        for _ in range(batch):
            apply(IV, buffer)
        calls += batch
        used = time.process_time() - start
        if used >= seconds:
            return calls * len(buffer) / used


@pytest.mark.skipif(OPENSSL is None, reason="no openssl command on this machine: the figure "
                    "to compare with is `openssl speed -evp aes-128-ctr`")
@pytest.mark.parametrize("size", list(SIZES))
def test_aes128_ctr_against_openssl_speed(benchmark: Any, size: str) -> None:
    nbytes = SIZES[size]
    buffer = bytearray(bytes(range(256)) * (nbytes // 256))
    native, pure = aes("native").apply, aes("pure").apply
    speeds: dict[str, list[float]] = {"openssl": [], "native": [], "pure": []}

    def rounds() -> None:
        # each twin is timed right before and right after openssl (half the time each) and the
        # two are averaged, so that a drift in the machine's speed during a round (frequency,
        # neighbours) counts the same for both; one CPU for all, openssl's process inheriting it
        for _ in range(ROUNDS):
            before = {kind: twin_speed(apply, buffer, SECONDS / 2)
                      for kind, apply in (("native", native), ("pure", pure))}
            speeds["openssl"].append(openssl_speed(nbytes))
            for kind, apply in (("pure", pure), ("native", native)):
                after = twin_speed(apply, buffer, SECONDS / 2)
                speeds[kind].append((before[kind] + after) / 2)

    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        benchmark.pedantic(rounds, rounds=1, iterations=1)
    finally:
        os.sched_setaffinity(0, cpus)
    figures: dict[str, Any] = {"rounds": ROUNDS}
    for kind, values in speeds.items():
        figures[f"{kind}_mb_s"] = statistics.median(values) / 1e6
    for kind in ("native", "pure"):
        ratios = [ours / theirs for ours, theirs in zip(speeds[kind], speeds["openssl"])]
        figures[f"{kind}_vs_openssl"] = statistics.median(ratios)
        figures[f"{kind}_vs_openssl_spread"] = [min(ratios), max(ratios)]
    benchmark.extra_info.update(piece="aes-vs-openssl", op="ctr", size=size, kind="native",
                                units=1, **figures)
    assert all(value > 0 for values in speeds.values() for value in values)
