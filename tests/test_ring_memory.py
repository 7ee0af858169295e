"""The ring allocates its memory once: a million pushes do not grow the process."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from recorder import VIDEO

PAGE = 4096


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_a_million_pushes_leave_memory_flat(ring_impl: ModuleType) -> None:
    pushes = 1_000_000 if ring_impl.__name__.endswith("_c") else 200_000
    ring = ring_impl.PreEventRing(seconds=2, capacity_bytes=4 << 20, max_units=4096)
    payload = bytes(300)
    push = ring.push
    for n in range(20_000):  # fill the arena and the index once: first touch of their pages
        push(VIDEO, n * 33_333, n % 30 == 0, payload)
    before = resident_bytes()
    for n in range(20_000, 20_000 + pushes):
        push(VIDEO, n * 33_333, n % 30 == 0, payload)
    growth = resident_bytes() - before
    assert ring.stats().pushed_units == 20_000 + pushes
    assert growth < 256 * 1024, f"resident memory grew by {growth} bytes over {pushes} pushes"
