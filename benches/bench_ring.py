"""Pre-event ring: push and drain for audio-sized, P-frame-sized and I-frame-sized access units.

Each case runs for native, pure and the picamera2-style deque baseline. The payload is one
``bytes`` object, which both the ring and the deque hold by reference (no copy, as
CircularOutput2 keeps the encoder's bytes); ``push-copied`` pushes a ``bytearray``, which the ring
copies once into ``bytes``, against a numpy copy of the same bytes into a preallocated arena (the
memcpy-bound floor of that copy). bench_ring_anchor.py measures the ring against picamera2's real
CircularOutput2 on a whole 1080p30 stream.
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
KINDS = ["native", "pure", "deque"]


def make_target(kind: str, arena: int) -> Any:
    if kind in ("native", "pure"):
        return twin_module("ring", kind).PreEventRing(seconds=30, capacity_bytes=arena)
    if kind == "deque":
        return DequeRing(seconds=30)
    return None


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("kind", KINDS)
def test_push(benchmark: Any, kind: str, size: str) -> None:
    push_case(benchmark, kind, size, "push")


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("kind", ["native", "pure", "memcpy"])
def test_push_copied(benchmark: Any, kind: str, size: str) -> None:
    push_case(benchmark, kind, size, "push-copied")


def push_case(benchmark: Any, kind: str, size: str, op: str) -> None:
    nbytes, stream, key_every, arena = SIZES[size]
    payload: bytes | bytearray = bytes(range(256)) * (nbytes // 256) + bytes(nbytes % 256)
    if op == "push-copied":
        payload = bytearray(payload)
    benchmark.extra_info.update(piece="ring", op=op, size=size, kind=kind, units=BATCH)
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
