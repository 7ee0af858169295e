"""Upload throughput on loopback: `Uploader` to a real `bwv station serve` against a plain HTTP
copy of the same bytes (the same uvicorn server as the station's, its protocol, event loop and
limits, and the same httpx; the body streamed to a file and fsynced, with no signing, hashing,
catalogue or verification). Target: the upload reaches at least 95% of it.

The recording is 30 minutes at 10 Mbit/s (60 segments of 30 s, 37.5 MB each, 2.25 GB): real
fragmented MP4 from PyAV at a tiny frame size, each padded with a ``free`` box to the size a
10 Mbit/s camera writes, so the station's `bwv verify` checks pass. Set BWV_BENCH_UPLOAD_MINUTES
for a shorter one. Both servers run in their own process, as on a real station.

``test_station_fleet``: N cameras at once (N = 1, 8, 32), each with its own enrolled device key
and its own recording, uploading to one `bwv station serve` against N plain copies to the plain
server, in interleaved rounds; a client process polls /health all the while. It reports MB/s,
upload/plain at each N (median and spread of the rounds), and /health p50/p99 under the load.

Run: pytest benches/bench_upload.py --benchmark-min-rounds=3 -s
     pytest benches/bench_upload.py -k fleet -s  (the fleet bench alone, a few minutes)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import ManifestWriter, RecordingHeader
from recorder.integrity.sealed_segment import SealedSegment
from recorder.station.identity import StationIdentity
from recorder.uploader import Uploader
from support.segments import write_segments  # the test suite's PyAV segment maker

MINUTES = float(os.environ.get("BWV_BENCH_UPLOAD_MINUTES", "30"))
SEGMENT_S = 30
BITRATE_BPS = 10_000_000
SEGMENT_BYTES = BITRATE_BPS // 8 * SEGMENT_S  # 37.5 MB
CHUNK = 1 << 20
RECORDING_ID = "20261123T070000Z-cam7"

# the station's own server stack (protocol, event loop, limits: server_config), so that the two
# differ only in what the app does with the bytes
PLAIN_SERVER = textwrap.dedent("""
    import os, sys
    import uvicorn
    from recorder.station.limits import Limits
    from recorder.station.server import server_config
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    root = sys.argv[1]

    async def put(request):
        path = os.path.join(root, request.path_params["name"])
        size = 0
        with open(path, "wb") as sink:
            async for chunk in request.stream():
                sink.write(chunk)
                size += len(chunk)
            sink.flush()
            os.fsync(sink.fileno())
        return JSONResponse({"bytes": size}, status_code=201)

    async def health(request):
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/plain/{name}", put, methods=["PUT"]),
                            Route("/api/v1/health", health)])
    uvicorn.Server(server_config(app, Limits.default(), port=int(sys.argv[2]),
                                 log_level="warning")).run()
""")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited at start")
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


@pytest.fixture(scope="module")
def recording() -> Iterator[tuple[Path, DeviceKey, int]]:
    """(recording directory, device key, total bytes) of a sealed, verifiable recording."""
    root = Path(tempfile.mkdtemp(prefix="bwv-bench-upload-"))
    key = DeviceKey.load_or_create(root / "camera")
    directory = root / "source" / RECORDING_ID
    written = write_segments(directory, seconds=int(MINUTES * 60), segment_seconds=SEGMENT_S,
                             audio=True)
    filler = os.urandom(1 << 20)
    header = RecordingHeader(RECORDING_ID, "cam7", "PC 1234", "2026-11-23T07:00:00.000000Z",
                             0, "ntp", {"segment_seconds": SEGMENT_S})
    with ManifestWriter.create(directory, key, header) as writer:
        for index, segment in enumerate(written, 1):
            with open(segment.path, "ab") as file:
                pad = SEGMENT_BYTES - segment.path.stat().st_size
                file.write(struct.pack(">I4s", pad, b"free"))
                pad -= 8
                while pad > 0:
                    pad -= file.write(filler[:min(pad, len(filler))])
            data = segment.path.read_bytes()
            writer.append_segment(SealedSegment(
                index=index, file=segment.path.name, bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(), first_pts_us=segment.first_pts_us,
                last_pts_us=segment.last_pts_us, utc_start=header.utc_start,
                utc_end=header.utc_start, fragments=segment.video_keyframes, recovered=False))
        writer.seal("2026-11-23T07:30:00.000000Z")
    total = sum(path.stat().st_size for path in directory.iterdir())
    yield directory, key, total
    shutil.rmtree(root, ignore_errors=True)


def _fresh_copy(source: Path, round_root: Path) -> Path:
    """Hard links of the recording (the uploader deletes its copy after each round)."""
    target = round_root / "recordings" / source.name
    target.mkdir(parents=True)
    for entry in source.iterdir():
        os.link(entry, target / entry.name)
    return target.parent


def test_upload_throughput(benchmark: Any, recording: tuple[Path, DeviceKey, int]) -> None:
    source, key, total = recording
    state: dict[str, Any] = {}

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        round_root = Path(tempfile.mkdtemp(prefix="bwv-bench-round-"))
        data = round_root / "station"
        subprocess.run([sys.executable, "-m", "recorder", "station", "enroll", "--data",
                        str(data), "--device-id", "cam7", "--public-key",
                        key.public_key_raw.hex()], check=True, capture_output=True,
                       cwd=round_root)
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "recorder", "station", "serve", "--data", str(data),
             "--listen", f"127.0.0.1:{port}", "--sweep-every", "0", "--log-level", "warning"],
            cwd=round_root)  # not the source tree: the installed package, as deployed
        _wait_ready(process, port)
        identity = StationIdentity.find(data)  # made by enroll
        assert identity is not None
        state.update(root=round_root, process=process, port=port,
                     recordings=_fresh_copy(source, round_root), pin=identity.pin)
        return (), {}

    def upload() -> None:
        with Uploader(f"http://127.0.0.1:{state['port']}", key, "cam7", state["recordings"],
                      pin=state["pin"], chunk_bytes=CHUNK, attempts=1) as up:
            summary = up.upload_all()
        state["process"].terminate()
        state["process"].wait()
        assert summary.ok, summary
        assert not any(state["recordings"].iterdir()), "the camera copy was not deleted"
        shutil.rmtree(state["root"])

    benchmark.extra_info.update(piece="upload", op="upload", size=f"{MINUTES:g}min",
                                kind="bwv", units=1, bytes=total)
    benchmark.pedantic(upload, setup=setup, rounds=3, iterations=1)
    print(f"\nbwv upload: {total / benchmark.stats.stats.median / 1e6:.0f} MB/s median")


def test_plain_http_copy(benchmark: Any, recording: tuple[Path, DeviceKey, int]) -> None:
    source, _, total = recording
    state: dict[str, Any] = {}
    files = sorted(source.iterdir())

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        round_root = Path(tempfile.mkdtemp(prefix="bwv-bench-plain-"))
        port = _free_port()
        process = subprocess.Popen([sys.executable, "-c", PLAIN_SERVER, str(round_root),
                                    str(port)], cwd=round_root)
        _wait_ready(process, port)
        state.update(root=round_root, process=process, port=port)
        return (), {}

    def chunks(path: Path) -> Iterator[bytes]:
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk

    def copy() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{state['port']}", timeout=60) as client:
            for path in files:
                response = client.put(f"/plain/{path.name}", content=chunks(path),
                                      headers={"Content-Length": str(path.stat().st_size)})
                assert response.status_code == 201
        state["process"].terminate()
        state["process"].wait()
        shutil.rmtree(state["root"])

    benchmark.extra_info.update(piece="upload", op="upload", size=f"{MINUTES:g}min",
                                kind="plain-http", units=1, bytes=total)
    benchmark.pedantic(copy, setup=setup, rounds=3, iterations=1)
    print(f"\nplain HTTP copy: {total / benchmark.stats.stats.median / 1e6:.0f} MB/s median")


# --- many cameras at once: `bwv station serve` against the plain server, /health polled


FLEET_SIZES = (1, 8, 32)
# segments sent in each round, shared out among the cameras (32 for one camera, 4 each for 8,
# 1 each for 32), each the size a 10 Mbit/s camera writes in 30 s: 1.2 GB a round
FLEET_SEGMENTS = int(os.environ.get("BWV_BENCH_FLEET_SEGMENTS", "32"))
FLEET_SEGMENT_BYTES = int(float(os.environ.get("BWV_BENCH_FLEET_SEGMENT_MB", "37.5")) * 1e6)
FLEET_ROUNDS = int(os.environ.get("BWV_BENCH_FLEET_ROUNDS", "3"))
HEALTH_EVERY_S = 0.02

# a monitoring client in a process of its own: a fresh connection per /health, as a probe makes
HEALTH_POLLER = textwrap.dedent("""
    import http.client, json, select, sys, time
    port, every = int(sys.argv[1]), float(sys.argv[2])
    latencies, errors = [], 0
    print("polling", flush=True)
    while not select.select([sys.stdin], [], [], 0)[0]:  # until the bench closes stdin
        start = time.perf_counter()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/v1/health")
            answer = connection.getresponse()
            answer.read()
            connection.close()
            ok = answer.status == 200
        except OSError:
            ok = False
        took = time.perf_counter() - start
        if ok:
            latencies.append(took)
        else:
            errors += 1
        time.sleep(max(0.0, every - took))
    print(json.dumps({"latencies": latencies, "errors": errors}), flush=True)
""")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@pytest.fixture(scope="module")
def fleets() -> Iterator[dict[int, list[tuple[str, DeviceKey, Path]]]]:
    root = Path(tempfile.mkdtemp(prefix="bwv-bench-fleet-"))
    yield make_fleets(root)
    shutil.rmtree(root, ignore_errors=True)


Fleet = list[tuple[str, DeviceKey, Path]]  # (device id, its key, its sealed recording)


def make_fleets(root: Path, sizes: tuple[int, ...] = FLEET_SIZES) -> dict[int, Fleet]:
    """For each N: N cameras, each (device id, its own key, its sealed recording), the
    FLEET_SEGMENTS segments shared out among them. Every segment is real fragmented MP4 padded
    with random bytes of its camera, so no two blobs are alike."""
    media = write_segments(root / "media", seconds=2 * FLEET_SEGMENTS, segment_seconds=2,
                           audio=True)
    made: dict[int, list[tuple[str, DeviceKey, Path]]] = {}
    for count in sizes:
        made[count] = []
        for number in range(1, count + 1):
            device = f"cam{number}"
            camera = root / f"fleet{count}" / device
            key = DeviceKey.load_or_create(camera / "key")
            recording_id = f"20261123T070000Z-{device}"
            directory = camera / "source" / recording_id
            directory.mkdir(parents=True)
            filler = os.urandom(1 << 20)
            header = RecordingHeader(recording_id, device, f"PC {number}",
                                     "2026-11-23T07:00:00.000000Z", 0, "ntp",
                                     {"segment_seconds": 2})
            with ManifestWriter.create(directory, key, header) as writer:
                for index, segment in enumerate(media[:FLEET_SEGMENTS // count], 1):
                    path = directory / segment.path.name
                    data = bytearray(segment.path.read_bytes())
                    pad = FLEET_SEGMENT_BYTES - len(data)
                    data += struct.pack(">I4s", pad, b"free")
                    while len(data) < FLEET_SEGMENT_BYTES:
                        data += filler[:FLEET_SEGMENT_BYTES - len(data)]
                    path.write_bytes(data)
                    writer.append_segment(SealedSegment(
                        index=index, file=path.name, bytes=len(data),
                        sha256=hashlib.sha256(data).hexdigest(),
                        first_pts_us=segment.first_pts_us, last_pts_us=segment.last_pts_us,
                        utc_start=header.utc_start, utc_end=header.utc_start,
                        fragments=segment.video_keyframes, recovered=False))
                writer.seal("2026-11-23T07:00:30.000000Z")
            made[count].append((device, key, directory))
    return made


def _together(jobs: list[Callable[[], None]]) -> float:
    """Run the jobs on threads of their own, started at once; seconds until the last ends.
    The first failure is raised."""
    start = threading.Barrier(len(jobs) + 1)
    failures: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        start.wait()
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - raised below, in the bench
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - began
    if failures:
        raise failures[0]
    return took


def _under_load(port: int, pid: int, jobs: list[Callable[[], None]]) -> dict[str, Any]:
    """Run ``jobs`` at once while a poller process asks for /health; the wall time, the
    server's CPU seconds and the /health latencies."""
    poller = subprocess.Popen([sys.executable, "-c", HEALTH_POLLER, str(port),
                               str(HEALTH_EVERY_S)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    assert poller.stdout is not None and poller.stdin is not None
    poller.stdout.readline()  # it is running
    cpu_before, clients_before = _cpu_s(pid), _cpu_s(os.getpid())
    took = _together(jobs)
    cpu, clients = _cpu_s(pid) - cpu_before, _cpu_s(os.getpid()) - clients_before
    poller.stdin.close()
    polled = json.loads(poller.stdout.read())
    poller.stdout.close()
    poller.wait()
    return {"s": took, "server_cpu_s": cpu, "client_cpu_s": clients,
            "health": polled["latencies"],
            "health_errors": polled["errors"]}


def _fleet_bwv_round(fleet: list[tuple[str, DeviceKey, Path]]) -> dict[str, Any]:
    """One round: a fresh station with every camera of the fleet enrolled, each uploading its
    recording at the same time (the uploader deletes its copy: each round has hard links)."""
    from support.station import make_store  # the tests' store maker: the CLI's layout

    root = Path(tempfile.mkdtemp(prefix="bwv-bench-fleet-round-"))
    try:
        data = root / "station"
        store = make_store(data)
        for device, key, _ in fleet:
            store.enroll(device, key.public_key, by="admin")
        store.engine.dispose()
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "recorder", "station", "serve", "--data", str(data),
             "--listen", f"127.0.0.1:{port}", "--sweep-every", "0", "--log-level", "warning"],
            cwd=root)  # not the source tree: the installed package, as deployed
        try:
            _wait_ready(process, port)
            identity = StationIdentity.find(data)
            assert identity is not None
            pin = identity.pin
            jobs = []
            for device, key, source in fleet:
                recordings = _fresh_copy(source, root / device)

                def job(device: str = device, key: DeviceKey = key,
                        recordings: Path = recordings) -> None:
                    with Uploader(f"http://127.0.0.1:{port}", key, device, recordings, pin=pin,
                                  chunk_bytes=CHUNK, attempts=1) as up:
                        summary = up.upload_all()
                    assert summary.ok, summary
                    assert not any(recordings.iterdir()), "the camera copy was not deleted"

                jobs.append(job)
            return _under_load(port, process.pid, jobs)
        finally:
            process.terminate()
            process.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _fleet_plain_round(fleet: list[tuple[str, DeviceKey, Path]]) -> dict[str, Any]:
    """One round of the same files, each camera on its own client, to the plain server."""
    root = Path(tempfile.mkdtemp(prefix="bwv-bench-fleet-plain-"))
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-c", PLAIN_SERVER, str(root), str(port)],
                               cwd=root)
    try:
        _wait_ready(process, port)

        def chunks(path: Path) -> Iterator[bytes]:
            with open(path, "rb") as file:
                while chunk := file.read(CHUNK):
                    yield chunk

        jobs = []
        for device, _, source in fleet:
            def job(device: str = device, files: list[Path] = sorted(source.iterdir())) -> None:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                    for path in files:
                        response = client.put(f"/plain/{device}-{path.name}",
                                              content=chunks(path),
                                              headers={"Content-Length":
                                                       str(path.stat().st_size)})
                        assert response.status_code == 201

            jobs.append(job)
        return _under_load(port, process.pid, jobs)
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(root, ignore_errors=True)


def test_station_fleet(benchmark: Any,
                       fleets: dict[int, list[tuple[str, DeviceKey, Path]]]) -> None:
    results: dict[int, dict[str, list[dict[str, Any]]]] = {}

    def measure() -> None:
        for count in FLEET_SIZES:
            results[count] = {"bwv": [], "plain": []}
        for round_number in range(FLEET_ROUNDS):
            for count in FLEET_SIZES:
                order = ["plain", "bwv"] if round_number % 2 == 0 else ["bwv", "plain"]
                for kind in order:  # interleaved, each first in every other round
                    run = _fleet_bwv_round if kind == "bwv" else _fleet_plain_round
                    results[count][kind].append(run(fleets[count]))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    rows = []
    print(f"\nstation fleet: {FLEET_ROUNDS} rounds, median (min-max); /health every "
          f"{HEALTH_EVERY_S * 1000:.0f} ms from a client process, all rounds pooled")
    for count in FLEET_SIZES:
        total = sum(path.stat().st_size for _, _, source in fleets[count]
                    for path in source.iterdir())
        bwv, plain = results[count]["bwv"], results[count]["plain"]
        bwv_mb_s = [total / run["s"] / 1e6 for run in bwv]
        plain_mb_s = [total / run["s"] / 1e6 for run in plain]
        ratios = [b / p for b, p in zip(bwv_mb_s, plain_mb_s)]  # the round's own pair
        row: dict[str, Any] = {"cameras": count, "bytes": total, "rounds": FLEET_ROUNDS}
        for kind, runs, speeds in (("bwv", bwv, bwv_mb_s), ("plain", plain, plain_mb_s)):
            health = [latency for run in runs for latency in run["health"]]
            row.update({
                f"{kind}_mb_s": statistics.median(speeds),
                f"{kind}_mb_s_spread": [min(speeds), max(speeds)],
                f"{kind}_health_p50_ms": _percentile(health, 0.50) * 1000,
                f"{kind}_health_p99_ms": _percentile(health, 0.99) * 1000,
                f"{kind}_health_samples": len(health),
                f"{kind}_health_errors": sum(run["health_errors"] for run in runs),
                f"{kind}_server_cpu_per_gb_s": statistics.median(
                    run["server_cpu_s"] / (total / 1e9) for run in runs),
                f"{kind}_client_cpu_per_gb_s": statistics.median(
                    run["client_cpu_s"] / (total / 1e9) for run in runs)})
        row.update(ratio=statistics.median(ratios), ratio_spread=[min(ratios), max(ratios)])
        rows.append(row)
        print(f"  N={count:2d} ({total / 1e9:.2f} GB): bwv {row['bwv_mb_s']:.0f} MB/s "
              f"({min(bwv_mb_s):.0f}-{max(bwv_mb_s):.0f}), plain {row['plain_mb_s']:.0f} MB/s "
              f"({min(plain_mb_s):.0f}-{max(plain_mb_s):.0f}): {row['ratio']:.0%} "
              f"({min(ratios):.0%}-{max(ratios):.0%}); /health p50/p99 bwv "
              f"{row['bwv_health_p50_ms']:.1f}/{row['bwv_health_p99_ms']:.1f} ms "
              f"({row['bwv_health_errors']} failed of {row['bwv_health_samples']}), plain "
              f"{row['plain_health_p50_ms']:.1f}/{row['plain_health_p99_ms']:.1f} ms; server "
              f"CPU s/GB bwv {row['bwv_server_cpu_per_gb_s']:.2f}, plain "
              f"{row['plain_server_cpu_per_gb_s']:.2f}; clients' CPU s/GB bwv "
              f"{row['bwv_client_cpu_per_gb_s']:.2f}, plain {row['plain_client_cpu_per_gb_s']:.2f}")
    benchmark.extra_info.update(piece="station-fleet", op="upload", kind="bwv-vs-plain",
                                size=f"{FLEET_SEGMENTS}x{FLEET_SEGMENT_BYTES / 1e6:g}MB",
                                units=1, fleet=rows)
