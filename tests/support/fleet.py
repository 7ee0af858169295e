"""Several `bwv station serve` processes on one PostgreSQL catalogue behind haproxy (no tests
here): a fresh database on the test session's own cluster, the station processes, and haproxy
started with a config of its own in a temporary directory, health-checking each process's
/api/v1/health. Used by tests/test_station_fleet.py and benches/bench_fleet_lb.py.

The blob store is a parameter (``Blobs``): ``LocalBlobs`` is the one directory every process on
this host shares, ``S3Blobs`` one bucket on the test session's Ceph gateway.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import sqlalchemy
from sqlalchemy import select

from recorder.station.blobs import BlobStore, LocalBlobStore
from recorder.station.catalogue import recordings, segments
from recorder.station.evidence_store import Status

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy")
                                      else None)
HEALTH = "/api/v1/health"


def require_haproxy() -> str:
    if HAPROXY is None:
        pytest.skip("haproxy is not installed: apt-get install haproxy (listed in "
                    "scripts/debian-packages-test.txt) to run the several-process station tests")
    return HAPROXY


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the catalogue: a database of its own on the session's PostgreSQL cluster

_databases = itertools.count(1)


@contextlib.contextmanager
def fresh_database(cluster: tuple[Path, int], prefix: str = "bwv_fleet") -> Iterator[str]:
    """The URL of a new PostgreSQL database on ``cluster`` (the ``postgres_cluster`` fixture's),
    dropped at the end (with FORCE: a killed process's session may linger)."""
    root, port = cluster
    name = f"{prefix}_{os.getpid()}_{next(_databases)}"
    admin = sqlalchemy.create_engine(
        f"postgresql+psycopg://postgres@/postgres?host={root}&port={port}",
        isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg://postgres@/{name}?host={root}&port={port}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture()
def fleet_db_url(postgres_cluster: tuple[Path, int]) -> Iterator[str]:
    """A fresh PostgreSQL database for a fleet of station processes, dropped after the test."""
    with fresh_database(postgres_cluster) as url:
        yield url


# --- the blob store every process shares


class Blobs(Protocol):
    """Where the fleet's processes keep blobs: what `serve` is told, and what a test checks."""

    def serve_args(self) -> list[str]:
        """Options of `bwv station serve` that select the store (none: --data's blobs/)."""
        ...

    def environment(self) -> dict[str, str]:
        """Variables the station processes need for it (endpoint, credentials)."""
        ...

    def store(self) -> BlobStore:
        """The same store, opened in the test's process."""
        ...

    def stored(self) -> set[str]:
        """The SHA-256 of every blob stored (not those being written)."""
        ...

    def partials(self) -> int:
        """How many interrupted writes are left over."""
        ...

    @property
    def writes_show(self) -> bool:
        """Whether a blob being written shows in ``partials`` (a local partial file does; an
        S3 blob smaller than one part is held in the process's memory until it is PUT)."""
        ...


@dataclass
class LocalBlobs:
    """The station's blob directory (DATA/blobs), shared by every process on one host."""

    data: Path

    @property
    def root(self) -> Path:
        return self.data / "blobs"

    def serve_args(self) -> list[str]:
        return []

    def environment(self) -> dict[str, str]:
        return {}

    def store(self) -> BlobStore:
        return LocalBlobStore(self.root)

    def stored(self) -> set[str]:
        return {path.name for path in self.root.glob("??/??/*") if path.is_file()}

    def partials(self) -> int:
        return sum(1 for _ in (self.root / ".partial").iterdir())

    @property
    def writes_show(self) -> bool:
        return True


@dataclass
class S3Blobs:
    """One S3 bucket every process shares (tests/support/ceph.py's gateway: the ``s3_bucket``
    fixture makes the bucket and puts the gateway's endpoint and keys in the environment, which
    the station processes inherit)."""

    bucket: str
    prefix: str = "fleet"

    def serve_args(self) -> list[str]:
        return ["--blobs", f"s3://{self.bucket}/{self.prefix}"]

    def environment(self) -> dict[str, str]:
        return {}

    def store(self) -> BlobStore:
        from recorder.station.blobs_s3 import S3BlobStore, client_from_environment

        return S3BlobStore(client_from_environment(), self.bucket, self.prefix)

    def _client(self) -> Any:
        from recorder.station.blobs_s3 import client_from_environment

        return client_from_environment()

    def stored(self) -> set[str]:
        pages = self._client().get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/")
        return {item["Key"].rsplit("/", 1)[-1] for page in pages
                for item in page.get("Contents", [])}

    def partials(self) -> int:
        answer = self._client().list_multipart_uploads(Bucket=self.bucket,
                                                       Prefix=f"{self.prefix}/")
        return len(answer.get("Uploads", []))

    @property
    def writes_show(self) -> bool:
        return False


def referenced(engine: sqlalchemy.Engine) -> set[str]:
    """The SHA-256 of every blob the catalogue refers to: live segments and manifests."""
    with engine.connect() as conn:
        held = set(conn.execute(select(segments.c.sha256)
                                .where(segments.c.blob_deleted.is_(False))).scalars())
        held |= set(conn.execute(select(recordings.c.manifest_sha256)
                                 .where(recordings.c.manifest_sha256.is_not(None))
                                 .where(recordings.c.status != Status.DELETED)).scalars())
    return held


# --- station processes and the balancer


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class StationProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no lifespan end, no rollback by the process (PostgreSQL rolls back when
        the session's socket closes), partial blobs left where they are."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive:
            _terminate(self.process)


def start_station(data: Path, db_url: str, blobs: Blobs, name: str, logs: Path,
                  sweep_every_s: float = 0, extra: tuple[str, ...] = ()) -> StationProcess:
    """`bwv station serve` in a process of its own on 127.0.0.1 (the installed package, run
    from ``logs`` rather than the source tree); returns before it is ready (``wait_ready``)."""
    port = free_port()
    log = logs / f"{name}.log"
    command = [sys.executable, "-m", "recorder", "station", "serve", "--data", str(data),
               "--db", db_url, "--listen", f"127.0.0.1:{port}",
               "--sweep-every", str(sweep_every_s), "--log-level", "warning",
               # every camera reaches the station from the balancer's address
               "--max-connections-per-client", "0", *blobs.serve_args(), *extra]
    environment = {**os.environ, **blobs.environment()}
    environment.pop("BWV_STATION_DB", None)
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=logs, env=environment, stdout=output,
                                   stderr=subprocess.STDOUT)
    return StationProcess(name, port, process, log)


def wait_ready(url: str, deadline_s: float = 30, alive: StationProcess | None = None) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if alive is not None and not alive.alive:
            raise RuntimeError(f"{alive.name} exited at start:\n{alive.log.read_text()[-2000:]}")
        try:
            if httpx.get(url + HEALTH, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer {HEALTH} within {deadline_s:.0f} s")


def haproxy_config(port: int, stations: list[StationProcess], admin_socket: Path) -> str:
    """haproxy in TCP mode (each station keeps its own HTTP limits and its own TLS, when it
    has some), round robin, checking each process's /health over HTTP every 200 ms. A
    connection refused by a dead process is sent to another (``redispatch``); a connection cut
    mid-request reaches the camera as a broken connection, which its uploader retries, and the
    retry lands on a process that is up."""
    servers = "\n".join(
        f"    server {s.name} 127.0.0.1:{s.port} check inter 200ms fall 2 rise 1"
        for s in stations)
    return textwrap.dedent("""\
        global
            stats socket {admin} mode 600 level admin
            maxconn 4096

        defaults
            mode tcp
            timeout connect 2s
            timeout client 60s
            timeout server 60s
            retries 3
            option redispatch

        frontend cameras
            bind 127.0.0.1:{port}
            default_backend stations

        backend stations
            balance roundrobin
            option httpchk
            http-check send meth GET uri {health}
            http-check expect status 200
        """).format(admin=admin_socket, port=port, health=HEALTH) + servers + "\n"


@dataclass
class Haproxy:
    port: int
    process: subprocess.Popen[bytes]
    admin_socket: Path
    config: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(self.admin_socket))
            conn.sendall(command.encode() + b"\n")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        return answer.decode()

    def states(self) -> dict[str, str]:
        """Each server's state as haproxy's checks see it (UP, DOWN, ...)."""
        lines = self.admin("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        states = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == "stations" and row.get("svname") not in (None, "BACKEND"):
                states[row["svname"]] = row["status"]
        return states

    def wait_state(self, name: str, state: str, deadline_s: float = 10) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            try:
                if self.states().get(name, "").startswith(state):
                    return
            except ConnectionRefusedError:  # the socket is bound, not yet listening
                pass
            time.sleep(0.05)
        raise AssertionError(f"haproxy never saw {name} {state}: {self.states()}")

    def stop(self) -> None:
        _terminate(self.process)


def start_haproxy(stations: list[StationProcess], directory: Path) -> Haproxy:
    """haproxy in the foreground (-db) with its config in ``directory``; returns once every
    station is UP in its checks."""
    binary = require_haproxy()
    port = free_port()
    config = directory / "haproxy.cfg"
    admin_socket = directory / "admin.sock"
    config.write_text(haproxy_config(port, stations, admin_socket))
    check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy refuses {config}: {check.stdout}{check.stderr}")
    with open(directory / "haproxy.log", "wb") as output:
        process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=output,
                                   stderr=subprocess.STDOUT)
    proxy = Haproxy(port, process, admin_socket, config)
    deadline = time.monotonic() + 10
    while not admin_socket.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"haproxy did not start: {(directory / 'haproxy.log').read_text()}")
        time.sleep(0.02)
    for station in stations:
        proxy.wait_state(station.name, "UP")
    return proxy


@dataclass
class Fleet:
    """``count`` station processes on one catalogue and one blob store, behind haproxy."""

    stations: list[StationProcess]
    proxy: Haproxy
    directory: Path
    _stopped: bool = field(default=False)

    @property
    def url(self) -> str:
        return self.proxy.url

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.proxy.stop()
        for station in self.stations:
            station.stop()


def start_fleet(data: Path, db_url: str, blobs: Blobs, count: int,
                sweep_every_s: float = 0, directory: Path | None = None) -> Fleet:
    """Start ``count`` station processes on the station in ``data`` (made and its cameras
    enrolled beforehand: processes starting at once on an empty catalogue would race to
    create it) and haproxy before them."""
    require_haproxy()
    directory = directory or Path(tempfile.mkdtemp(prefix="bwv-fleet-"))
    directory.mkdir(parents=True, exist_ok=True)
    stations = [start_station(data, db_url, blobs, f"station{number}", directory,
                              sweep_every_s) for number in range(1, count + 1)]
    try:
        for station in stations:
            wait_ready(f"http://127.0.0.1:{station.port}", alive=station)
        proxy = start_haproxy(stations, directory)
    except BaseException:
        for station in stations:
            station.stop()
        raise
    return Fleet(stations, proxy, directory)
