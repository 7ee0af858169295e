"""The ring's memory is flat: a million pushes of fresh payloads do not grow the process, and the
bytes it holds never exceed its capacity.

The ring holds the ``bytes`` objects it is given (and one copy of any other payload), so what it
holds is freed as it is evicted: every push here makes a new payload, as an encoder does, of the
sizes of a 1080p30 stream (AAC frames, P-frames, an I-frame above glibc's mmap threshold), so a
payload kept by mistake (a reference never let go) would grow the process by its size.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from types import ModuleType

import pytest

from recorder import AUDIO, VIDEO

PAGE = 4096
CAPACITY = 4 << 20
# (stream, keyframe, size): one GOP of 30 frames with an AAC frame between each
GOP = [(VIDEO, n == 0, 330_000 if n == 0 else 40_000 + 97 * n) for n in range(30)]
UNITS = [unit for frame in GOP for unit in (frame, (AUDIO, True, 170))]


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("kind", ["bytes", "bytearray"])
def test_a_million_pushes_leave_memory_flat(ring_impl: ModuleType, kind: str) -> None:
    native = ring_impl.__name__.endswith("_c")
    pushes = 1_000_000 if native and kind == "bytes" else 100_000
    ring = ring_impl.PreEventRing(seconds=2, capacity_bytes=CAPACITY, max_units=4096)
    push, stats = ring.push, ring.stats
    make = bytes if kind == "bytes" else bytearray
    units = itertools.cycle(UNITS)
    pts = [0, 0]
    most_held = 0

    def push_fresh(count: int) -> None:
        nonlocal most_held
        for _ in range(count):
            stream, key, size = next(units)
            pts[stream] += 33_333 if stream == VIDEO else 21_333
            push(stream, pts[stream], key, make(size))  # a new payload each time
            held = stats().bytes
            if held > most_held:
                most_held = held

    push_fresh(20_000)  # warm up: the ring full, the allocator's pools and arenas at their size
    before = resident_bytes()
    push_fresh(pushes)
    growth = resident_bytes() - before
    final = stats()
    assert final.pushed_units == 20_000 + pushes
    assert final.evicted_units > pushes // 2  # the ring turned over, many times
    assert 0 < most_held <= CAPACITY, f"held {most_held} bytes, capacity {CAPACITY}"
    # payloads of 25 KB on average went through: keeping one in 1,000 would grow it by 2.5 MB
    assert growth < 2 << 20, f"resident memory grew by {growth} bytes over {pushes} pushes"
