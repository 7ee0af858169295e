"""`bwv bench`: a short, real measurement on this device of the pieces a field team asks about,
the pre-event ring's push, the fragmented-MP4 muxer and SHA-256, native against pure (hashlib
for SHA-256), printed as one markdown table with the machine's description.

It needs only the base install (no pytest): each case runs a few rounds of a fixed batch with
``time.perf_counter`` and keeps the median and the spread (fastest and slowest round). Every case
checks its result too (the twins' bytes and digests must agree), so a broken twin is an error,
not a figure.
"""

from __future__ import annotations

import hashlib
import itertools
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

from .._native import NativePolicy, NativeRequiredError, load
from .machine import Machine

IMPLEMENTATIONS = ("native", "pure")


class BenchMismatchError(RuntimeError):
    """The native and pure twins gave different results for the same input."""


@dataclass(frozen=True)
class Profile:
    """How much each case does: the full run (under a minute on a Pi 4) or --quick (seconds)."""

    name: str
    rounds: int
    ring_batch: int          # pushes per timed round
    ring_arena: int          # bytes of the ring's arena (filled once before timing)
    video: tuple[int, int, int, int]  # width, height, fps, frames of the muxed stream
    sha_total: int           # bytes hashed per round


FULL = Profile("full", rounds=7, ring_batch=400, ring_arena=32 << 20,
               video=(1920, 1080, 30, 60), sha_total=16 << 20)
QUICK = Profile("quick", rounds=5, ring_batch=100, ring_arena=8 << 20,
                video=(640, 360, 30, 30), sha_total=2 << 20)


@dataclass(frozen=True)
class Result:
    piece: str
    case: str
    implementation: str      # "native", "pure", or "hashlib"
    units: int               # access units (or buffers) per round
    bytes: int               # payload bytes per round
    rounds: int
    median_s: float          # of one round
    min_s: float
    max_s: float

    @property
    def per_unit_ns(self) -> float:
        return self.median_s / self.units * 1e9

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.median_s / 1e6

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "per_unit_ns": self.per_unit_ns, "mb_per_s": self.mb_per_s}


def _twin(piece: str, implementation: str) -> ModuleType | None:
    """The module of one twin, or None if that twin is not built here."""
    policy = NativePolicy.REQUIRED if implementation == "native" else NativePolicy.OFF
    try:
        return load(piece, policy).module
    except NativeRequiredError:
        return None


def _time(runs: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds per round of each run. The runs take turns round by round, so that whatever else
    the machine does meanwhile (a shared CI runner, a thermal throttle) weighs on each alike."""
    for run in runs.values():
        run()  # once untimed: first-touch page faults, lazy imports, caches
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def _result(piece: str, case: str, implementation: str, units: int, nbytes: int,
            times: list[float]) -> Result:
    return Result(piece, case, implementation, units, nbytes, len(times),
                  statistics.median(times), min(times), max(times))


def bench_ring(profile: Profile) -> list[Result]:
    """Push rounds of ``ring_batch`` access units into a full ring (every push evicts), for an
    audio frame, a P-frame and an I-frame sized payload. The ring keeps the pushed ``bytes``
    without copying them, so the per-unit time is the figure; its MB/s is how much stream the
    ring could take, not a copy's speed."""
    from ..capture.access_unit import AUDIO, VIDEO

    sizes = {"300B audio": (300, AUDIO, 1), "20KB P-frame": (20_000, VIDEO, 30),
             "200KB I-frame": (200_000, VIDEO, 1)}
    results = []
    for case, (nbytes, stream, key_every) in sizes.items():
        payload = bytes(range(256)) * (nbytes // 256) + bytes(nbytes % 256)
        rings: dict[str, Any] = {}
        runs: dict[str, Callable[[], object]] = {}
        for implementation in IMPLEMENTATIONS:
            module = _twin("ring", implementation)
            if module is None:
                continue
            rings[implementation] = module.PreEventRing(seconds=30,
                                                        capacity_bytes=profile.ring_arena)
            runs[implementation] = _push_batch(rings[implementation], profile, nbytes, stream,
                                               key_every, payload)
        times = _time(runs, profile.rounds)
        held = set()
        for implementation in rings:
            stats = rings[implementation].stats()
            held.add((stats.units, stats.bytes, stats.pushed_units, stats.evicted_units,
                      stats.skipped_units))
            rings[implementation].close()
            results.append(_result("ring", f"push {case}", implementation, profile.ring_batch,
                                   profile.ring_batch * nbytes, times[implementation]))
        if len(held) > 1:
            raise BenchMismatchError(f"ring {case}: the twins hold different units: {held}")
        del rings, runs  # the arenas go before the next case's are allocated
    return results


def _push_batch(ring: Any, profile: Profile, nbytes: int, stream: int, key_every: int,
                payload: bytes) -> Callable[[], None]:
    """A round of pushes into ``ring``, filled once first so that every push evicts."""
    push = ring.push
    clock = itertools.count()
    for _ in range(profile.ring_arena // nbytes + 2 * key_every):
        n = next(clock)
        push(stream, n * 33_333, n % key_every == 0, payload)

    def push_batch() -> None:
        for _ in range(profile.ring_batch):
            n = next(clock)
            push(stream, n * 33_333, n % key_every == 0, payload)

    return push_batch


def _stream(profile: Profile) -> tuple[bytes, list[Any]]:
    """(AudioSpecificConfig, access units in push order): the synthetic camera's test pattern
    encoded by the recorder's own H.264 encoder, and a tone by its AAC encoder."""
    import numpy as np

    from ..capture.audio.aac_encoder import AacEncoder
    from ..capture.camera.h264_encoder import H264Encoder
    from ..capture.camera.test_pattern import TestPattern

    width, height, fps, frames = profile.video
    pattern = TestPattern(width, height)
    video = H264Encoder(width, height, fps, bitrate_bps=10_000_000)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    units = []
    for number in range(frames):
        pts = 1_000_000 + number * 1_000_000 // fps
        units += video.encode(pattern.render(number, start), pts)
    units += video.flush()
    audio = AacEncoder()
    samples = frames * 48_000 // fps
    tone = (np.sin(np.arange(samples) * (2 * np.pi * 440 / 48_000)) * 8000).astype("<i2")
    units += audio.encode(tone.tobytes(), 1_000_000)
    units += audio.flush()
    units.sort(key=lambda u: (u.pts_us, u.stream))
    return audio.audio_specific_config, units


def bench_mux(profile: Profile) -> list[Result]:
    """Mux the whole stream into fragmented MP4 in memory per round."""
    config, units = _stream(profile)
    width, height, fps, frames = profile.video
    case = f"{height}p{fps} {frames / fps:g} s + AAC"
    payload = sum(len(u.payload) for u in units)
    outputs: dict[str, bytes] = {}
    runs: dict[str, Callable[[], object]] = {}
    for implementation in IMPLEMENTATIONS:
        module = _twin("mux", implementation)
        if module is not None:
            runs[implementation] = _muxing(module.FragmentedMp4Muxer, config, units)
            outputs[implementation] = _muxing(module.FragmentedMp4Muxer, config, units,
                                              keep=True)()
    if len(set(outputs.values())) > 1:
        raise BenchMismatchError(f"mux {case}: the twins wrote different bytes")
    times = _time(runs, profile.rounds)
    return [_result("mux", case, implementation, len(units), payload, times[implementation])
            for implementation in runs]


def _muxing(muxer_class: Any, config: bytes, units: list[Any],
            keep: bool = False) -> Callable[[], bytes]:
    """A round of muxing every unit; returns the MP4's bytes if ``keep``."""

    def mux() -> bytes:
        muxer = muxer_class(config)
        push = muxer.push
        parts = []
        for unit in units:
            fragment = push(unit.stream, unit.pts_us, unit.is_keyframe, unit.payload)
            if fragment is not None and keep:
                parts.append(bytes(fragment.data))
        last = muxer.close()
        if last is not None and keep:
            parts.append(bytes(last.data))
        return b"".join(parts)

    return mux


def bench_sha256(profile: Profile) -> list[Result]:
    """Hash ``sha_total`` bytes per round as a stream of equal buffers into one hasher, as the
    segment writer does with fragments: the native hasher against hashlib (OpenSSL)."""
    results = []
    native = _twin("sha256", "native")
    makers: dict[str, Callable[[], Any]] = {"hashlib": hashlib.sha256}
    if native is not None:
        makers = {"native": native.Sha256, **makers}
    for label, size in (("64KiB buffers", 64 << 10), ("1MiB buffers", 1 << 20)):
        buffer = bytes(range(256)) * (size // 256)
        count = max(1, profile.sha_total // size)
        runs = {implementation: _hashing(make, buffer, count)
                for implementation, make in makers.items()}
        if len({run() for run in runs.values()}) > 1:
            raise BenchMismatchError(f"sha256 {label}: the native digest is not hashlib's")
        times = _time(runs, profile.rounds)
        results += [_result("sha256", label, implementation, count, count * size,
                            times[implementation]) for implementation in runs]
    return results


def _hashing(make: Callable[[], Any], buffer: bytes, count: int) -> Callable[[], bytes]:
    def run() -> bytes:
        hasher = make()
        update = hasher.update
        for _ in range(count):
            update(buffer)
        digest: bytes = hasher.digest()
        return digest

    return run


def run(profile: Profile) -> list[Result]:
    return [*bench_ring(profile), *bench_mux(profile), *bench_sha256(profile)]


def _speedups(results: list[Result]) -> dict[tuple[str, str], float]:
    """(piece, case) -> how many times faster native runs than the other implementation."""
    by_case: dict[tuple[str, str], dict[str, float]] = {}
    for r in results:
        by_case.setdefault((r.piece, r.case), {})[r.implementation] = r.median_s
    speedups = {}
    for key, medians in by_case.items():
        other = medians.get("pure", medians.get("hashlib"))
        if "native" in medians and other is not None:
            speedups[key] = other / medians["native"]
    return speedups


def _duration(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:,.3g} {unit}"
    return f"{seconds * 1e9:,.0f} ns"


def render_markdown(machine: Machine, results: list[Result], profile: Profile,
                    elapsed_s: float, version: str) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"**bwv bench** (bwv-recorder {version}, {profile.name} run of {elapsed_s:.1f} s, "
             f"{when}; medians of {profile.rounds} rounds, spread fastest-slowest)", "",
             "| machine | |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in machine.rows()]
    lines += ["", "| piece | case | implementation | per unit | spread per unit | MB/s "
                  "| native speed-up |", "|---|---|---|---|---|---|---|"]
    speedups = _speedups(results)
    for r in results:
        spread = f"{_duration(r.min_s / r.units)} - {_duration(r.max_s / r.units)}"
        speedup = (f"{speedups[(r.piece, r.case)]:.2f}x"
                   if r.implementation == "native" and (r.piece, r.case) in speedups else "")
        lines.append(f"| {r.piece} | {r.case} | {r.implementation} "
                     f"| {_duration(r.median_s / r.units)} | {spread} | {r.mb_per_s:,.0f} "
                     f"| {speedup} |")
    return "\n".join(lines)


def render_json(machine: Machine, results: list[Result], profile: Profile,
                elapsed_s: float, version: str) -> dict[str, Any]:
    return {"bwv_recorder": version, "profile": profile.name, "rounds": profile.rounds,
            "elapsed_s": elapsed_s, "machine": machine.as_dict(),
            "results": [r.as_dict() for r in results],
            "native_speedup": {f"{piece} {case}": value
                               for (piece, case), value in _speedups(results).items()}}
