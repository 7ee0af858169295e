"""Workloads for benches/bench_recorder.py, run in a subprocess per implementation
(RECORDER_NATIVE picks native or pure at import). Prints one JSON object.

    python benches/recorder_workload.py overhead --seconds 20 --dir /tmp/x [--encrypted]
    python benches/recorder_workload.py latency --dir /tmp/x
    python benches/recorder_workload.py paced --state buffering|recording|pacing --seconds 20 --dir /tmp/x

``--encrypted`` records for a station as a paired camera does (encryption at rest, 'cenc'): a
station identity is made in the directory and its pin line set as ``station.public_key``, which
the recorder turns into the key it wraps each recording's new content key to
(`recorder.device.assembly.recording_encryption_key`, as `bwv record --station-key` does).

The access units are pre-encoded 1080p30 at 10 Mbit/s (a real libx264 SPS/PPS for 1920x1080 and
slices of realistic sizes: I-frames about 8x a P-frame, one per second) plus AAC-LC at 48 kHz,
64 kbit/s: the recorder's own work (ring, interleave, mux, hash, write, fsync) is measured, not
the video encoder's.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

import recorder
from recorder import AUDIO, VIDEO, AccessUnit
from recorder._native import load
from recorder.capture.clock import monotonic_us
from recorder.device.assembly import recording_encryption_key
from recorder.device.writer import RecordingWriter
from recorder.integrity.keys import DeviceKey
from recorder.settings import Settings
from recorder.storage.recording import RecordingFactory

FPS = 30
VIDEO_BPS = 10_000_000
AUDIO_RATE = 48_000
AAC_FRAME_US = 1024 * 1_000_000 / AUDIO_RATE


def parameter_sets() -> tuple[bytes, bytes]:
    """SPS and PPS of a real 1080p libx264 stream (Annex B, with start codes)."""
    context = av.CodecContext.create("libx264", "w")
    context.width, context.height, context.pix_fmt = 1920, 1080, "yuv420p"
    context.time_base = Fraction(1, FPS)
    context.options = {"preset": "ultrafast", "tune": "zerolatency"}
    frame = av.VideoFrame(1920, 1080, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.pts = 0
    payload = b"".join(bytes(p) for p in context.encode(frame) + context.encode(None))
    nals = [b"\x00\x00\x00\x01" + n for n in payload.split(b"\x00\x00\x00\x01") if n]
    sps = next(n for n in nals if n[4] & 0x1F == 7)
    pps = next(n for n in nals if n[4] & 0x1F == 8)
    return sps, pps


def stream(seconds: float, start_us: int, audio_config: bytes) -> list[AccessUnit]:
    """``seconds`` of interleaved video and audio access units, in capture order."""
    rng = random.Random(7)
    sps, pps = parameter_sets()
    per_second = VIDEO_BPS // 8
    p_size = per_second // (FPS - 1 + 8)
    units: list[AccessUnit] = []
    audio_n = 0
    for n in range(int(seconds * FPS)):
        pts = start_us + round(n * 1_000_000 / FPS)
        key = n % FPS == 0
        size = p_size * (8 if key else 1) + rng.randint(-p_size // 10, p_size // 10)
        nal_type = 0x65 if key else 0x41
        body = bytes([nal_type]) + rng.randbytes(size)
        payload = (sps + pps if key else b"") + b"\x00\x00\x00\x01" + body.replace(b"\x00\x00", b"\x00\x01")
        units.append(AccessUnit(VIDEO, pts, key, payload))
        while start_us + audio_n * AAC_FRAME_US < pts + 1_000_000 / FPS:
            units.append(AccessUnit(AUDIO, start_us + round(audio_n * AAC_FRAME_US), True,
                                    rng.randbytes(170)))
            audio_n += 1
    return units


def aac_config() -> bytes:
    return bytes.fromhex("1188")  # AAC-LC, 48 kHz, mono


def make_recording(directory: Path, encrypted: bool = False) -> Any:
    settings = Settings.load(None).with_values(storage_data_dir=str(directory / "data"))
    if encrypted:
        from recorder.station.identity import StationIdentity

        pin = StationIdentity.load_or_create(directory / "station").pin_line()
        settings = settings.with_values(station_public_key=pin)
    key = DeviceKey.load_or_create(directory / "data")
    factory = RecordingFactory(directory / "recordings", key, settings, aac_config(),
                               encrypt_for=recording_encryption_key(settings))
    assert (factory.encrypt_for is not None) == encrypted
    (directory / "recordings").mkdir(parents=True, exist_ok=True)
    return factory.open()


def overhead(seconds: float, directory: Path, encrypted: bool = False) -> dict[str, Any]:
    """CPU seconds of ring push + pop + interleave + mux (+ encrypt) + hash + write + fsync per
    recorded s."""
    units = stream(seconds, monotonic_us(), aac_config())
    ring = recorder.PreEventRing(30, 160 << 20)
    recording = make_recording(directory, encrypted)
    ring.begin_consume()
    writer = RecordingWriter(ring, recording, 0, lambda: 1 << 62, monotonic_us)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    writer.start()
    for unit in units:
        ring.push(*unit)
    ring.close()  # the writer takes everything held, then ends and seals
    writer.join()
    cpu = time.process_time() - cpu_before
    wall = time.perf_counter() - wall_before
    assert writer.error is None, writer.error
    assert writer.units == len(units)
    segments = [path for path in recording.path.iterdir() if path.suffix == ".mp4"]
    assert segments, f"no segment in {recording.path}"
    # an encrypted segment's init names its protected video as encv ('cenc'), a clear one avc1
    assert all((b"encv" in path.read_bytes()[:4096]) == encrypted for path in segments)
    return {"implementation": recorder.implementation("ring"),
            "mux": load("mux").implementation, "sha256": load("sha256").implementation,
            "encrypted": encrypted, "recorded_s": seconds, "cpu_s": cpu, "wall_s": wall,
            "cpu_percent_of_one_core": 100 * cpu / seconds,
            "bytes": sum(len(u.payload) for u in units)}


class _QuietBoard:
    """The controller's board, doing nothing: the bench measures the recorder, not the LEDs."""

    docked = False

    def show(self, status: Any) -> None:
        pass

    def cue(self, cue: Any) -> None:
        pass

    def get_event(self, timeout: float | None = None) -> None:
        return None




def paced(state: str, seconds: float, directory: Path) -> dict[str, Any]:
    """What a camera lives through: the stream fed at real time, unit by unit at its pts, from
    one capture thread into `Controller.push` (as the sources do), for ``seconds``.

    ``buffering``: the camera's all-day state (video into the pre-event ring, audio held for a
    trigger). ``recording``: the same after a start, the writer thread draining the ring into a
    recording (mux, hash, write, fdatasync). ``pacing``: the same loop with nothing pushed, the
    cost of feeding at real time, which the bench subtracts. CPU is the whole process's (every
    thread, user + system) over the fed interval.

    Measured in the steady state, as a camera spends its day: first enough of the stream to go
    once round the ring's arena is pushed at once (the ring full, every page of its arena touched,
    as after the camera's first minute or two; the first touches are page faults that a camera
    pays once, not every second),
    and for ``recording`` the start's pre-event drain is over before the clock starts. The
    writer's seal after the interval is not counted."""
    from recorder.device.controller import Controller, ring_size

    size = ring_size(30, VIDEO_BPS, 64_000, FPS, AUDIO_RATE / 1024, 1.0)
    warm_s = size.capacity_bytes / (VIDEO_BPS / 8) + 5  # once round the arena, and more
    now = monotonic_us()
    warm = stream(warm_s, now - int(warm_s * 1e6), aac_config())
    units = stream(seconds, 0, aac_config())  # stamped when the warm-up is over
    ring = recorder.PreEventRing(30, size.capacity_bytes, size.max_units)
    controller = Controller(ring, _QuietBoard(), lambda: make_recording(directory),  # type: ignore[arg-type]
                            min_free_bytes=0, storage=lambda: 1 << 62, clock_us=monotonic_us)
    if state != "pacing":
        for unit in warm:
            controller.push(unit)
    if state == "recording":
        assert controller.start_recording("bench") is not None
        while len(ring):  # the pre-event buffer is written
            time.sleep(0.01)
    push = controller.push if state != "pacing" else (lambda unit: None)
    writer_tid = controller.writer._thread.native_id if controller.writer else None
    written_before = controller.writer.units if controller.writer else 0
    late = 0
    start_us = monotonic_us() + 200_000
    units = [AccessUnit(u.stream, u.pts_us + start_us, u.is_keyframe, u.payload) for u in units]
    time.sleep(max(0.0, (start_us - monotonic_us()) / 1e6))
    writer_before = _thread_cpu_s(writer_tid)
    capture_before = time.thread_time()
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    for unit in units:
        delay = (unit.pts_us - monotonic_us()) / 1e6
        if delay > 0:
            time.sleep(delay)
        else:
            late += 1
        push(unit)
    cpu = time.process_time() - cpu_before
    wall = time.perf_counter() - wall_before
    capture = time.thread_time() - capture_before
    writer_cpu = _thread_cpu_s(writer_tid) - writer_before
    written = 0
    if state == "recording":
        writer = controller.writer
        assert writer is not None
        controller.stop_recording("bench over", timeout=30)
        assert writer.error is None, writer.error
        written = writer.units - written_before  # every unit fed in the interval
    return {"implementation": recorder.implementation("ring"), "state": state,
            "fed_s": seconds, "cpu_s": cpu, "wall_s": wall, "units": len(units),
            "late_units": late, "written_units": written,
            "cpu_percent_of_one_core": 100 * cpu / wall,
            "capture_thread_percent": 100 * capture / wall,
            "writer_thread_percent": 100 * writer_cpu / wall}


def _thread_cpu_s(tid: int | None) -> float:
    """CPU seconds thread ``tid`` of this process has run (the kernel's schedstat, in ns)."""
    if tid is None:
        return 0.0
    with open(f"/proc/self/task/{tid}/schedstat") as stat:
        return int(stat.read().split()[0]) / 1e9


def latency(directory: Path, buffered_s: float = 30.0) -> dict[str, Any]:
    """Start request -> first pre-event fragment fsynced, with ``buffered_s`` in the ring; then
    the time to drain the whole buffer to disk while live units keep arriving in real time."""
    import recorder.storage.segment_writer as segment_writer

    synced: list[float] = []
    real_sync = segment_writer.os.fdatasync

    def timed_sync(fd: int) -> None:
        real_sync(fd)
        synced.append(time.perf_counter())

    segment_writer.os.fdatasync = timed_sync  # type: ignore[attr-defined]
    start_us = monotonic_us() - int(buffered_s * 1_000_000)
    units = stream(buffered_s + 10, start_us, aac_config())
    prefill = [u for u in units if u.pts_us < start_us + buffered_s * 1_000_000]
    live = units[len(prefill):]
    ring = recorder.PreEventRing(buffered_s, 160 << 20)
    for unit in prefill:
        if unit.stream == VIDEO:  # audio stays out of the pre-event buffer (the default)
            ring.push(*unit)
    held = ring.stats()
    recording = make_recording(directory)

    def produce() -> None:  # live capture at real rate
        t0 = time.perf_counter()
        for unit in live:
            due = (unit.pts_us - live[0].pts_us) / 1e6
            delay = t0 + due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            ring.push(*unit)

    producer = threading.Thread(target=produce)
    requested = time.perf_counter()
    ring.begin_consume()
    writer = RecordingWriter(ring, recording, 0, lambda: 1 << 62, monotonic_us)
    writer.start()
    producer.start()
    while writer.units < held.units:
        time.sleep(0.001)
    drained = time.perf_counter()
    producer.join()
    writer.request_stop()
    writer.join()
    stats = ring.stats()
    segment_writer.os.fdatasync = real_sync  # type: ignore[attr-defined]
    return {"implementation": recorder.implementation("ring"),
            "buffered_s": buffered_s, "buffered_units": held.units, "buffered_bytes": held.bytes,
            "first_fragment_synced_ms": (synced[0] - requested) * 1000,
            "buffer_drained_ms": (drained - requested) * 1000,
            "overrun_units": stats.overrun_units}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=["overhead", "latency", "paced"])
    parser.add_argument("--state", choices=["buffering", "recording", "pacing"],
                        default="buffering", help="paced: what the camera is doing")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--encrypted", action="store_true",
                        help="overhead: record encrypted for a station (made in --dir)")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.workload == "overhead":
        result = overhead(args.seconds, args.dir, args.encrypted)
    elif args.workload == "paced":
        result = paced(args.state, args.seconds, args.dir)
    else:
        result = latency(args.dir)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
