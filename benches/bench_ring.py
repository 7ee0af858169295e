"""Pre-event ring: push and drain for audio-sized, P-frame-sized and I-frame-sized access units.

Each case runs for native, pure, the picamera2-style deque baseline and, for push, a numpy copy of
the same bytes into a preallocated arena (the memcpy-bound floor no ring can beat).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from recorder import AUDIO, VIDEO

from support.twins import twin_module
from deque_ring import DequeRing

BATCH = 200  # access units per timed call
# name: (payload bytes, stream, keyframe every N, arena bytes)
SIZES = {
    "300B-audio": (300, AUDIO, 1, 4 << 20),
    "20KB-P": (20_000, VIDEO, 30, 64 << 20),
    "200KB-I": (200_000, VIDEO, 1, 64 << 20),
}
KINDS = ["native", "pure", "deque", "memcpy"]


def make_target(kind: str, arena: int) -> Any:
    if kind in ("native", "pure"):
        return twin_module("ring", kind).PreEventRing(seconds=30, capacity_bytes=arena)
    if kind == "deque":
        return DequeRing(seconds=30)
    return None


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("kind", KINDS)
def test_push(benchmark: Any, kind: str, size: str) -> None:
    nbytes, stream, key_every, arena = SIZES[size]
    payload = bytes(range(256)) * (nbytes // 256) + bytes(nbytes % 256)
    benchmark.extra_info.update(piece="ring", op="push", size=size, kind=kind, units=BATCH)
    if kind == "memcpy":
        dst = np.ones(arena, dtype=np.uint8)  # written once: no first-touch page faults timed
        src = np.frombuffer(payload, dtype=np.uint8)
        slots = arena // nbytes
        clock = itertools.count()

        def copy_batch() -> None:  # walks the whole arena, as the ring does
            for _ in range(BATCH):
                offset = (next(clock) % slots) * nbytes
                dst[offset:offset + nbytes] = src

        benchmark(copy_batch)
        return
    ring = make_target(kind, arena)
    push = ring.push
    clock = itertools.count()
    for _ in range(arena // nbytes + 2 * key_every):  # fill the arena once before timing
        n = next(clock)
        push(stream, n * 33_333, n % key_every == 0, payload)

    def push_batch() -> None:
        for _ in range(BATCH):
            n = next(clock)
            push(stream, n * 33_333, n % key_every == 0, payload)

    benchmark(push_batch)


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("kind", ["native", "pure", "deque"])
def test_drain(benchmark: Any, kind: str, size: str) -> None:
    nbytes, stream, key_every, arena = SIZES[size]
    payload = bytes(nbytes)
    benchmark.extra_info.update(piece="ring", op="drain", size=size, kind=kind, units=BATCH)
    clock = itertools.count()

    def fill() -> tuple[tuple[Any, ...], dict[str, Any]]:
        ring = make_target(kind, arena)
        for i in range(BATCH):
            n = next(clock)
            ring.push(stream, n * 33_333, i % key_every == 0, payload)
        return (ring,), {}

    def drain(ring: Any) -> None:
        if kind == "deque":
            units = ring.drain()
        else:
            ring.begin_consume()
            units = list(ring.drain())
        assert len(units) == BATCH

    benchmark.pedantic(drain, setup=fill, rounds=30, iterations=1)
