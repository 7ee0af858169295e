"""The pre-event ring against the real anchor: picamera2's own ``CircularOutput2.outputframe``.

On a 120 s stream of 1080p30 at 10 Mbit/s plus AAC (`recorder_workload.stream`: 3,600 video
access units of ~40 KB, I-frames ~330 KB, and 5,625 AAC frames of 170 B), each round pushes the
whole stream, in capture order, into a fresh ``CircularOutput2`` (started, no output open: the
buffering state, 30 s kept) and a fresh ``recorder.PreEventRing``, native and pure (30 s, a
64 MiB capacity). The three take turns every CHUNK access units, in an order that rotates from
chunk to chunk, so that a change of the machine's speed (neighbours, frequency) reaches them
alike; each chunk is timed in this thread's CPU time (``time.thread_time_ns``: what the call
costs the encoder's thread, not the time other processes took the core), and the ratios are
taken within each round. Every target is called the same way (``fn(*args)`` over a list of
prepared argument tuples), so the loop costs the same for all. The payloads are the ``bytes`` objects an encoder hands over, as picamera2's
encoder thread passes them to its output and as the recorder's sources pass them to the ring.

picamera2 0.3.38 imports only over libcamera: run under the virtual camera,

    bash scripts/with-virtual-camera .venv/bin/pytest benches/bench_ring_anchor.py \\
        --benchmark-json=anchor.json
    .venv/bin/python benches/table.py anchor.json

Where picamera2 cannot be imported the bench is skipped with the reason.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from recorder import AUDIO

from recorder_workload import aac_config, stream
from support.twins import twin_module

SECONDS = 120
PRE_EVENT_S = 30
CAPACITY = 64 << 20
ROUNDS = 9
CHUNK = 256


def circular_output2() -> Any:
    """picamera2's CircularOutput2, or a skip saying why it cannot be imported."""
    try:
        from picamera2.outputs import CircularOutput2
    except Exception as exc:  # ImportError, or libcamera's bindings failing to load
        pytest.skip(f"picamera2 is not importable ({type(exc).__name__}: {exc}); run under "
                    "bash scripts/with-virtual-camera (docs/testing.md, Virtual camera)")
    return CircularOutput2


def timed(fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> int:
    """CPU nanoseconds of this thread to make every call."""
    start = time.thread_time_ns()
    for args in calls:
        fn(*args)
    return time.thread_time_ns() - start


def test_push_against_circular_output2(benchmark: Any) -> None:
    anchor_class = circular_output2()
    rings = {kind: twin_module("ring", kind) for kind in ("native", "pure")}
    units = stream(SECONDS, 1_000_000, aac_config())
    ring_calls = [tuple(unit) for unit in units]
    # outputframe(frame, keyframe, timestamp, packet, audio): as picamera2's encoders call it
    anchor_calls = [(u.payload, u.is_keyframe, u.pts_us, None, u.stream == AUDIO) for u in units]
    times: dict[str, list[int]] = {"circular_output2": [], "native": [], "pure": []}
    held: dict[str, int] = {}

    def one_round() -> None:
        anchor = anchor_class(buffer_duration_ms=PRE_EVENT_S * 1000)
        anchor.start()
        ring = {kind: module.PreEventRing(PRE_EVENT_S, CAPACITY) for kind, module in rings.items()}
        targets = [("circular_output2", anchor.outputframe, anchor_calls),
                   ("native", ring["native"].push, ring_calls),
                   ("pure", ring["pure"].push, ring_calls)]
        spent = dict.fromkeys(times, 0)
        gc.disable()  # as in a steady encoder thread; the payloads are not tracked anyway
        try:
            for n, start in enumerate(range(0, len(units), CHUNK)):
                for kind, fn, calls in targets[n % 3:] + targets[:n % 3]:
                    spent[kind] += timed(fn, calls[start:start + CHUNK])
        finally:
            gc.enable()
        for kind, value in spent.items():
            times[kind].append(value)
        buffered = list(anchor._circular)  # what it holds: the last 30 s, as the rings do
        assert buffered and buffered[-1][2] - buffered[0][2] >= (PRE_EVENT_S - 1) * 1_000_000
        anchor.stop()
        for kind in rings:
            stats = ring[kind].stats()
            assert stats.pushed_units == len(units) and 0 < stats.bytes <= CAPACITY
            assert stats.span_us >= PRE_EVENT_S * 1_000_000
            held[kind] = stats.bytes

    def rounds() -> None:
        for _ in range(ROUNDS):
            one_round()

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    per_unit = {kind: [t / len(units) for t in values] for kind, values in times.items()}
    figures: dict[str, Any] = {"rounds": ROUNDS, "units": len(units), "stream_s": SECONDS,
                               "bytes": sum(len(u.payload) for u in units)}
    for kind, values in per_unit.items():
        figures[f"{kind}_ns"] = statistics.median(values)
        figures[f"{kind}_ns_spread"] = [min(values), max(values)]
    for kind in ("native", "pure"):
        ratios = [ours / theirs for ours, theirs in zip(per_unit[kind], per_unit["circular_output2"])]
        figures[f"{kind}_vs_anchor"] = statistics.median(ratios)
        figures[f"{kind}_vs_anchor_spread"] = [min(ratios), max(ratios)]
        figures[f"{kind}_held_bytes"] = held[kind]
    benchmark.extra_info.update(piece="ring-vs-circular-output2", op="push",
                                size="1080p30-10Mbit+aac-120s", kind="native", **figures)
    assert all(value > 0 for values in times.values() for value in values)
