"""What one call costs right after its thread wakes: a thread sleeps 15 ms (a capture thread
between two access units), then makes one call, many times; CPU time of that thread per wake and
call, for nothing, the ring's push of a 42 KB video unit, and the controller's push of a video
unit and of an audio unit held while buffering. Shows why the recorder fed at real time costs
more than the same work in a burst (docs/performance.md, the recorder fed at real time).

    RECORDER_NATIVE=required python benches/wake_cost.py [--wakes 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import recorder
from recorder import AUDIO, VIDEO, AccessUnit
from recorder.capture.clock import monotonic_us
from recorder.device.controller import Controller, ring_size

sys.path.insert(0, str(Path(__file__).parent))
from recorder_workload import AUDIO_RATE, FPS, VIDEO_BPS, _QuietBoard  # noqa: E402

SLEEP_S = 0.015


def per_wake_us(call: Callable[[AccessUnit], object], units: list[AccessUnit]) -> float:
    """Thread CPU per sleep, wake and call, in microseconds."""
    before = time.thread_time()
    for unit in units:
        time.sleep(SLEEP_S)
        call(unit)
    return (time.thread_time() - before) / len(units) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wakes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = ring_size(30, VIDEO_BPS, 64_000, FPS, AUDIO_RATE / 1024, 1.0)
    ring = recorder.PreEventRing(30, size.capacity_bytes, size.max_units)
    controller = Controller(ring, _QuietBoard(), None,  # type: ignore[arg-type]
                            min_free_bytes=0, storage=lambda: 1 << 62, clock_us=monotonic_us)
    pts = iter(range(1, 1 << 62))

    def units(stream: int, size: int) -> list[AccessUnit]:
        return [AccessUnit(stream, next(pts) * 20_000, n % 30 == 0, bytes(size))
                for n in range(args.wakes)]

    cases: dict[str, tuple[Callable[[AccessUnit], object], int, int]] = {
        "nothing": (lambda unit: None, VIDEO, 42_000),
        "ring.push, 42 KB video unit": (lambda unit: ring.push(*unit), VIDEO, 42_000),
        "Controller.push, 42 KB video unit": (controller.push, VIDEO, 42_000),
        "Controller.push, AAC unit held while buffering": (controller.push, AUDIO, 170),
    }
    figures: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, (call, stream, nbytes) in cases.items():
            figures[name].append(per_wake_us(call, units(stream, nbytes)))
    base = statistics.median(figures["nothing"])
    print(f"ring: {recorder.implementation('ring')}; {args.rounds} rounds of {args.wakes} wakes "
          f"after {SLEEP_S * 1000:g} ms sleeps; thread CPU per wake and call, median (spread)")
    for name, values in figures.items():
        more = "" if name == "nothing" else f"; {statistics.median(values) - base:.1f} us more"
        print(f"{name}: {statistics.median(values):.1f} us ({min(values):.1f}-{max(values):.1f})"
              f"{more}")


if __name__ == "__main__":
    main()
