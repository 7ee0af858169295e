"""Differential and property tests: random operation sequences on both rings.

The native and pure rings must give the same result for every operation (return value, or
exception type and message), the same stats after every operation, and the same drained bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from recorder import AUDIO, VIDEO


@dataclass(frozen=True)
class Push:
    stream: int
    pts_step: int  # added to the stream's last pts; <= 0 gives a NonMonotonicPtsError
    key: bool
    size: int
    kind: str  # bytes, bytearray, memoryview, str


@dataclass(frozen=True)
class Call:
    name: str  # begin_consume, end_consume, pop, close, stats, len


pushes = st.builds(
    Push,
    stream=st.sampled_from([VIDEO, VIDEO, VIDEO, AUDIO, AUDIO, 2]),
    pts_step=st.one_of(st.integers(1, 80_000), st.integers(-3, 0)),
    key=st.booleans(),
    size=st.one_of(st.integers(1, 120), st.integers(0, 600)),
    kind=st.sampled_from(["bytes", "bytes", "bytearray", "memoryview", "str"]),
)
calls = st.builds(Call, st.sampled_from(
    ["begin_consume", "end_consume", "pop", "pop", "stats", "len", "close"]))
operations = st.lists(st.one_of(pushes, pushes, pushes, calls), max_size=120)
rings = st.fixed_dictionaries({
    "seconds": st.sampled_from([0, 0.05, 0.2, 1.0]),
    "capacity_bytes": st.integers(1, 700),
    "max_units": st.integers(2, 20),
})


def outcome(fn: Any, *args: Any) -> tuple[Any, ...]:
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # the exception is the result being compared
        return ("error", type(exc).__name__, str(exc))


def run(ring: Any, ops: list[Push | Call]) -> list[tuple[Any, ...]]:
    last_pts = {VIDEO: 0, AUDIO: 0, 2: 0}
    results: list[tuple[Any, ...]] = []
    for n, op in enumerate(ops):
        if isinstance(op, Push):
            pts = last_pts[op.stream] + op.pts_step
            if op.pts_step > 0:
                last_pts[op.stream] = pts
            data = bytes((n + i) % 256 for i in range(op.size))
            payload: Any = {"bytes": data, "bytearray": bytearray(data),
                            "memoryview": memoryview(data), "str": data.hex()}[op.kind]
            results.append(outcome(ring.push, op.stream, pts, op.key, payload))
        elif op.name == "len":
            results.append(("ok", len(ring)))
        elif op.name == "pop":
            results.append(outcome(ring.pop, 0))
        else:
            results.append(outcome(getattr(ring, op.name)))
        results.append(("stats", ring.stats()))
    if ring.consuming or not ring.closed:
        if not ring.consuming:
            ring.begin_consume()
        results.append(("drained", list(ring.drain())))
    return results


@settings(max_examples=300, deadline=None)
@given(config=rings, ops=operations)
def test_native_and_pure_agree_on_every_operation(
        both_ring_impls: tuple[ModuleType, ModuleType], config: dict[str, Any],
        ops: list[Push | Call]) -> None:
    native, pure = both_ring_impls
    expected = run(pure.PreEventRing(**config), ops)
    actual = run(native.PreEventRing(**config), ops)
    assert actual == expected


video_streams = st.lists(
    st.tuples(st.integers(1, 70_000), st.booleans(), st.integers(1, 300)), max_size=200)


@settings(max_examples=200, deadline=None)
@given(seconds=st.sampled_from([0, 0.1, 0.5, 2]), capacity=st.integers(300, 3000),
       frames=video_streams)
def test_a_drain_is_decodable_whole_gops_ending_with_the_newest_frame(
        ring_impl: ModuleType, seconds: float, capacity: int,
        frames: list[tuple[int, bool, int]]) -> None:
    """Whatever was pushed, a drain starts at a keyframe and is a contiguous run of what was
    accepted (nothing missing inside), ending with the newest frame if that one was kept."""
    ring = ring_impl.PreEventRing(seconds=seconds, capacity_bytes=capacity)
    pts = 0
    accepted = []
    gop_open = False
    for n, (step, key, size) in enumerate(frames):
        pts += step
        unit = (VIDEO, pts, key, bytes([n % 256]) * size)
        ring.push(*unit)
        gop_open = key or gop_open
        if gop_open:
            accepted.append(unit)
    ring.begin_consume()
    drained = [tuple(u) for u in ring.drain()]
    stats = ring.stats()
    if drained:
        assert drained[0][2] is True
        assert sum(len(u[3]) for u in drained) <= capacity
        start = accepted.index(drained[0])
        # a frame that lost its GOP to eviction is skipped, never stored out of place
        assert drained == [u for u in accepted[start:] if u in drained]
        assert drained[-1][1] <= pts
    assert stats.overrun_units == 0
    assert stats.pushed_units == len(frames)
