"""Shared pieces of the station and uploader tests (no tests here): real sealed recordings made
with PyAV (as tests/test_verify.py does), a station served by uvicorn on loopback in a thread, a
TCP proxy that cuts a connection after a given number of bytes, direct ingest, and catalogue URLs
on SQLite and on a throwaway PostgreSQL cluster of the test session's own."""

from __future__ import annotations

import errno
import glob
import hashlib
import itertools
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
import uvicorn

from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import EventKind, ManifestWriter, RecordingHeader
from recorder.integrity.sealed_segment import SealedSegment
from recorder.integrity.station_pin import StationPin
from recorder.station.app import create_app
from recorder.station.blobs import BlobStore, LocalBlobStore, LocalBlobWriter
from recorder.station.catalogue import CATALOGUE_FILE, open_catalogue, sqlite_url, to_us
from recorder.station.evidence_store import EvidenceStore, Holdings
from recorder.station.identity import StationIdentity
from recorder.station.limits import Limits
from recorder.station.server import server_config
from recorder.station.web import create_web_app
from recorder.station.web.security import WebSettings
from support.segments import WrittenSegment, write_segments
from support import session, warm

MONOTONIC_START_US = 7_000_000


def recording_id_for(utc_start: str, device_id: str) -> str:
    return utc_start.replace("-", "").replace(":", "")[:15] + "Z-" + device_id


# Segments of each length, encoded once per test process and copied into every recording: the
# encoding is deterministic (the same bytes each time), and it was most of these tests' time.
_TEMPLATES = tempfile.TemporaryDirectory(prefix="bwv-segment-templates-")
_template_spans: dict[int, list[tuple[str, int, int, int]]] = {}


def _segment_template(seconds: int) -> tuple[Path, list[tuple[str, int, int, int]]]:
    """The directory of the segments for ``seconds`` of test media, and for each segment its
    file name, first and last pts (microseconds) and video keyframe count."""
    template = Path(_TEMPLATES.name) / f"{seconds}s"
    if seconds not in _template_spans:
        written = write_segments(template, seconds=seconds, segment_seconds=2)
        _template_spans[seconds] = [(w.path.name, w.first_pts_us, w.last_pts_us,
                                     w.video_keyframes) for w in written]
    return template, _template_spans[seconds]


def make_recording(root: Path, key: DeviceKey, device_id: str = "cam7",
                   utc_start: str = "2026-11-23T07:00:00.000000Z", seconds: int = 4,
                   sealed: bool = True, officer_id: str = "PC 1234",
                   clock_source: str = "ntp", pre_event_us: int = 0,
                   segments: list[WrittenSegment] | None = None) -> Path:
    """A recording directory ``root/<id>`` with real fragmented MP4 segments (2 s each, made by
    PyAV) and a signed manifest; unsealed (no ``sealed`` line) when ``sealed`` is False;
    ``clock_source`` is what its header says of the camera's clock; the first
    ``pre_event_us`` of footage come before the header's start (the pre-event buffer);
    ``segments`` (support.segments.cut_segments) replace the test media."""
    recording_id = recording_id_for(utc_start, device_id)
    directory = root / recording_id
    if segments is None:
        template, template_spans = _segment_template(seconds)
    else:
        template = segments[0].path.parent
        template_spans = [(w.path.name, w.first_pts_us, w.last_pts_us, w.video_keyframes)
                          for w in segments]
    shutil.copytree(template, directory, dirs_exist_ok=True)
    spans = [(directory / name, first, last, keyframes)
             for name, first, last, keyframes in template_spans]
    header = RecordingHeader(recording_id, device_id, officer_id, utc_start, MONOTONIC_START_US,
                             clock_source, {"segment_seconds": 2})
    with ManifestWriter.create(directory, key, header) as writer:
        for index, (path, first, last, keyframes) in enumerate(spans, 1):
            data = path.read_bytes()
            writer.append_segment(SealedSegment(
                index=index, file=path.name, bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                first_pts_us=MONOTONIC_START_US - pre_event_us + first,
                last_pts_us=MONOTONIC_START_US - pre_event_us + last,
                utc_start=utc_start, utc_end=utc_start, fragments=keyframes,
                recovered=False))
            if index == 1:
                writer.append_event(EventKind.MARKER, utc_start,
                                    pts_us=MONOTONIC_START_US + 1_000_000)
        if sealed:
            writer.seal(utc_start)
    return directory


class FakeClock:
    """An injectable station clock (microseconds since the epoch) that tests move by hand."""

    def __init__(self, utc: str = "2026-11-23T08:00:00+00:00") -> None:
        import datetime

        self.now_us = to_us(datetime.datetime.fromisoformat(utc))

    def __call__(self) -> int:
        return self.now_us

    def advance_days(self, days: float) -> None:
        self.now_us += int(days * 86_400 * 1_000_000)


def make_store(data_dir: Path, clock: Callable[[], int] | None = None,
               db_url: str | None = None,
               blobs: BlobStore | None = None) -> EvidenceStore:
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = open_catalogue(db_url or sqlite_url(data_dir))
    store_blobs = blobs if blobs is not None else LocalBlobStore(data_dir / "blobs")
    identity = StationIdentity.load_or_create(data_dir)
    if clock is None:
        return EvidenceStore(engine, store_blobs, identity)
    return EvidenceStore(engine, store_blobs, identity, clock=clock)


@dataclass
class ServedStation:
    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread
    pin: StationPin  # what a camera pins of this station

    @property
    def station_id(self) -> str:
        return self.pin.station_id

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(store: EvidenceStore, port: int = 0, sweep_interval_s: float | None = None,
          tls: tuple[Path, Path] | None = None, limits: Limits | None = None) -> ServedStation:
    """Run the station's device API under uvicorn on 127.0.0.1 in a thread; returns once it
    listens. The server is configured as `bwv station serve` configures it (server_config)."""
    limits = limits if limits is not None else Limits.default()
    return serve_app(create_app(store, sweep_interval_s, limits), store, port, tls, limits)


def serve_web(store: EvidenceStore, settings: WebSettings | None = None,
              tls: tuple[Path, Path] | None = None) -> ServedStation:
    """The staff pages of ``store`` on a listener of their own (`serve --web-listen`)."""
    return serve_app(create_web_app(store, settings), store, 0, tls, Limits.default())


def serve_app(app: Any, store: EvidenceStore, port: int, tls: tuple[Path, Path] | None,
              limits: Limits) -> ServedStation:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = server_config(app, limits, log_level="critical",
                           ssl_certfile=str(tls[0]) if tls else None,
                           ssl_keyfile=str(tls[1]) if tls else None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the station did not start")
        time.sleep(0.01)
    bound = sock.getsockname()[1]
    scheme = "https" if tls else "http"
    return ServedStation(f"{scheme}://127.0.0.1:{bound}", bound, server, thread,
                         store.identity.pin)


def make_certificate(directory: Path, subject_alt_name: str = "IP:127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate and its key, as an operator makes one with openssl."""
    cert, key = directory / "station.pem", directory / "station-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=bwv station", "-addext",
                    f"subjectAltName={subject_alt_name}"], check=True, capture_output=True)
    return cert, key


class CuttingProxy:
    """A loopback TCP proxy that forwards to ``target_port`` and closes both sides once
    ``cut_after`` bytes have gone from client to server (None: never)."""

    def __init__(self, target_port: int, cut_after: int | None) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.forwarded = 0
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if upward and self.cut_after is not None:
                    room = self.cut_after - self.forwarded
                    if len(data) > room:
                        sink.sendall(data[:max(room, 0)])
                        self.forwarded += max(room, 0)
                        self.cuts += 1
                        self.cut_after = None  # one cut; later connections pass through
                        raise ConnectionAbortedError("cut")
                if upward:
                    self.forwarded += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()


class FullBlobStore(LocalBlobStore):
    """A blob store whose disk fills after ``room`` bytes of partial writes."""

    def __init__(self, root: Path, room: int) -> None:
        super().__init__(root)
        self.room = room

    def begin(self, expected_sha256: str) -> LocalBlobWriter:
        writer = super().begin(expected_sha256)
        store = self
        real_file = writer._file
        assert real_file is not None

        class Filling:
            def write(self, chunk: bytes) -> int:
                if len(chunk) > store.room:
                    raise OSError(errno.ENOSPC, "No space left on device")
                store.room -= len(chunk)
                return real_file.write(chunk)

            def __getattr__(self, name: str) -> Any:
                return getattr(real_file, name)

        writer._file = Filling()  # type: ignore[assignment]
        return writer


def ingest(store: EvidenceStore, directory: Path, device_id: str = "cam7") -> Holdings:
    """Put a recording into a store as the device API would (no HTTP): segments, then manifest."""
    recording_id = directory.name
    for segment in sorted(directory.glob("*.mp4")):
        data = segment.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if store.precheck_segment(device_id, recording_id, segment.name, digest):
            continue
        writer = store.blobs.begin(digest)
        writer.write(data)
        store.commit_segment(device_id, recording_id, segment.name, writer, digest)
    return store.ingest_manifest(device_id, recording_id,
                                 (directory / "manifest.jsonl").read_bytes())


# --- catalogue backends: SQLite in the test's directory, and a throwaway PostgreSQL cluster

PG_BIN_DIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _as_postgres(command: list[str]) -> list[str]:
    # initdb refuses to run as root: run the cluster as the postgres OS user
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _start_cluster() -> dict[str, Any]:
    """initdb and start a cluster on a unix socket in a new temp directory (no TCP)."""
    binaries = Path(PG_BIN_DIRS[-1])
    root = Path(tempfile.mkdtemp(prefix="bwv-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    data = root / "data"
    subprocess.run(_as_postgres([str(binaries / "initdb"), "-D", str(data), "-A", "trust",
                                 "-U", "postgres", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-w", "-l",
                                 str(root / "server.log"), "-o",
                                 f"-k {root} -p {port} -c listen_addresses='' -c fsync=off",
                                 "start"]), check=True, capture_output=True)
    return {"root": str(root), "port": port}


def _stop_cluster(cluster: dict[str, Any]) -> list[list[str]]:
    data = Path(cluster["root"]) / "data"
    return [_as_postgres([str(Path(PG_BIN_DIRS[-1]) / "pg_ctl"), "-D", str(data), "-m",
                          "immediate", "-w", "stop"]), ["rm", "-rf", cluster["root"]]]


@pytest.fixture(scope="session")
def postgres_cluster() -> tuple[Path, int]:
    """A PostgreSQL cluster of our own (initdb + pg_ctl) on a unix socket in a temp directory,
    one for the whole test session (every worker shares it: databases get names of their
    own), stopped and removed at its end. Skipped when PostgreSQL is not installed."""
    if not PG_BIN_DIRS:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin): apt-get "
                    "install postgresql to run the catalogue tests on PostgreSQL")
    cluster = session.shared("postgres", _start_cluster, _stop_cluster)
    return Path(cluster["root"]), int(cluster["port"])


_databases = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalogue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty catalogue URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalogue.sqlite3'}"
        return
    root, port = request.getfixturevalue("postgres_cluster")
    name = f"bwv_test_{os.getpid()}_{next(_databases)}"  # workers share the cluster
    admin = sqlalchemy.create_engine(
        f"postgresql+psycopg://postgres@/postgres?host={root}&port={port}",
        isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = f"postgresql+psycopg://postgres@/{name}?host={root}&port={port}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


# --- fixtures: import them by name into a test module (and list them in its __all__) ----------


@pytest.fixture()
def camera_key(tmp_path: Path) -> DeviceKey:
    """A camera's device key, in tmp_path/camera."""
    return DeviceKey.load_or_create(tmp_path / "camera")


@pytest.fixture()
def camera(tmp_path: Path) -> tuple[Path, DeviceKey]:
    """A camera's data directory (tmp_path/camera) holding its key and one sealed recording."""
    data = tmp_path / "camera"
    key = DeviceKey.load_or_create(data)
    make_recording(data / "recordings", key)
    return data, key


@pytest.fixture()
def clock() -> FakeClock:
    """The station's clock: an hour after the recordings' default start (07:00)."""
    return FakeClock("2026-11-23T08:00:00+00:00")


@pytest.fixture()
def store(tmp_path: Path, camera_key: DeviceKey) -> EvidenceStore:
    """A station on SQLite in tmp_path/station with cam7 enrolled."""
    store = make_store(tmp_path / "station")
    store.enroll("cam7", camera_key.public_key, by="admin")
    return store


@pytest.fixture()
def station(store: EvidenceStore) -> Iterator[ServedStation]:
    """``store`` served on loopback for the test's length."""
    served = serve(store)
    yield served
    served.stop()


@pytest.fixture()
def new_store(catalogue_url: str, tmp_path: Path,
              clock: FakeClock) -> Iterator[Callable[[], EvidenceStore]]:
    """Opens the station in tmp_path/station on ``catalogue_url`` (each call: a fresh store on
    the same data, as after a restart); every store made is closed after the test."""
    made: list[EvidenceStore] = []

    def factory() -> EvidenceStore:
        store = make_store(tmp_path / "station", clock=clock, db_url=catalogue_url)
        made.append(store)
        return store

    yield factory
    for store in made:
        store.engine.dispose()


def bwv(*args: str) -> subprocess.CompletedProcess[str]:
    """`bwv ARGS` in a subprocess against the installed package (cwd "/", pure Python so that
    no native-fallback warning adds a line), without the station's environment variables: a
    command must name its station."""
    environ = {**os.environ, "RECORDER_NATIVE": "off"}
    environ.pop("BWV_STATION_DATA", None)
    environ.pop("BWV_STATION_DB", None)
    return warm.run([*args], cwd="/", env=environ, timeout=60)


@pytest.fixture()
def real_store(catalogue_url: str, tmp_path: Path, camera_key: DeviceKey) -> Iterator[
        EvidenceStore]:
    """A station on the system clock (requests are signed now), on SQLite and on PostgreSQL,
    with cam7 enrolled."""
    store = make_store(tmp_path / "station", db_url=catalogue_url)
    store.enroll("cam7", camera_key.public_key, by="admin")
    yield store
    store.engine.dispose()


@pytest.fixture()
def real_station(real_store: EvidenceStore) -> Iterator[ServedStation]:
    """``real_store`` served on loopback."""
    served = serve(real_store)
    yield served
    served.stop()


def copy_station(source: Path, target: Path) -> None:
    """Copy a station's directory whose catalogue this process has open (a store fixture).

    Not shutil.copytree alone: reading the catalogue file through a descriptor of our own and
    closing it drops every POSIX lock this process holds on that file (SQLite's locks are
    such locks), so the next process to open the catalogue believes no one else has it open,
    rebuilds the WAL index under our connections, and entries it then writes stay invisible to
    them. The catalogue goes through SQLite's backup API, which shares SQLite's own descriptors."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(CATALOGUE_FILE + "*"))
    if not (source / CATALOGUE_FILE).exists():
        return
    with sqlite3.connect(source / CATALOGUE_FILE) as original, \
            sqlite3.connect(target / CATALOGUE_FILE) as copy:
        original.backup(copy)
    original.close()
    copy.close()
