"""Upload throughput on loopback: `Uploader` to a real `bwv station serve` against a plain HTTP
copy of the same bytes (the same uvicorn and httpx, the body streamed to a file and fsynced, with
no signing, hashing, catalogue or verification). Target: the upload reaches at least 90% of it.

The recording is 30 minutes at 10 Mbit/s (60 segments of 30 s, 37.5 MB each, 2.25 GB): real
fragmented MP4 from PyAV at a tiny frame size, each padded with a ``free`` box to the size a
10 Mbit/s camera writes, so the station's `bwv verify` checks pass. Set BWV_BENCH_UPLOAD_MINUTES
for a shorter one. Both servers run in their own process, as on a real station.

Run: pytest benches/bench_upload.py --benchmark-min-rounds=3 -s
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
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

PLAIN_SERVER = textwrap.dedent("""
    import os, sys
    import uvicorn
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
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", ws="none")
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
