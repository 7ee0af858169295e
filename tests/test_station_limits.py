"""The station's hard limits, attacked over real sockets (issue 12, findings 6, 7 and 10, and the
size side of 3): slow clients, chunked and oversized bodies, a body longer than declared, an
HTML file posing as a segment, a camera over its quota, and a segment racing its manifest.

The attacks of findings 6 and 7 run against `bwv station serve` in a subprocess, so its memory is
measured from /proc/PID/status and its open-file limit can be lowered as on a small server; the
race of finding 10 runs against a station served in a thread, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support.station import (camera_key, catalogue_url, make_recording, make_store,
                             postgres_cluster, serve)
from support import warm
from support.http import http

from recorder.integrity import manifest
from recorder.integrity.keys import DeviceKey
from recorder.integrity.request_signing import sign_request
from recorder.station.evidence_store import EvidenceStore
from recorder.station.export import export_recording
from recorder.station.identity import StationIdentity

__all__ = ["camera_key", "catalogue_url", "postgres_cluster"]  # fixtures used by name below

API = "/api/v1"
BWV = [sys.executable, "-m", "recorder"]  # run from "/": the installed package
MIB = 1 << 20
ATTACKER = "127.0.0.2"  # loopback too, but another client address than the camera's


_station_dir: list[Path] = []  # where this test's station lives (every one is tmp_path/station)


@pytest.fixture(autouse=True)
def _the_station_dir(tmp_path: Path) -> Iterator[None]:
    _station_dir.append(tmp_path / "station")
    yield
    _station_dir.clear()


def signed(key: DeviceKey, method: str, path: str, body_sha256: str,
           device: str = "cam7") -> dict[str, str]:
    """The one place these tests sign a request: for the station of this test, by its key."""
    identity = StationIdentity.find(_station_dir[-1])
    assert identity is not None, "sign only once the station exists"
    return sign_request(key, device, method, path, body_sha256,
                        station_id=identity.station_id)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def segment_path(recording_id: str, file: str) -> str:
    return f"{API}/recordings/{recording_id}/segments/{file}"


def manifest_path(recording_id: str) -> str:
    return f"{API}/recordings/{recording_id}/manifest"


# --- `bwv station serve` in a subprocess


@dataclass
class Subprocess:
    process: subprocess.Popen[bytes] | warm.Process
    port: int
    data: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def data_bytes(self) -> int:
        return sum(path.stat().st_size for path in (self.data / "blobs").rglob("*")
                   if path.is_file())

    def health_s(self, timeout: float = 5.0) -> float:
        """Seconds /health takes to answer 200 (a fresh connection each time)."""
        start = time.monotonic()
        response = http.get(self.url + f"{API}/health", timeout=timeout)
        assert response.status_code == 200
        return time.monotonic() - start


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_station(data: Path, key: DeviceKey, *options: str,
                  open_files: int | None = None) -> Subprocess:
    """`bwv station serve` on a free loopback port with cam7 enrolled; returns once it answers."""
    store = make_store(data)
    store.enroll("cam7", key.public_key, by="admin")
    store.engine.dispose()
    port = free_port()

    def limit_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    log = data.parent / "serve.log"
    args = ["station", "serve", "--data", str(data), "--listen", f"127.0.0.1:{port}",
            "--log-level", "critical", "--sweep-every", "0", *options]
    with open(log, "wb") as errors:
        process: subprocess.Popen[bytes] | warm.Process
        if open_files is None:  # forked from the warm process: no interpreter start-up
            process = warm.spawn(args, stderr=errors)
        else:  # the limit applies from exec, as it would to a service
            process = subprocess.Popen([*BWV, *args], cwd="/", preexec_fn=limit_files,
                                       stdout=subprocess.DEVNULL, stderr=errors)
    served = Subprocess(process, port, data)
    deadline = time.monotonic() + 20
    while True:
        try:
            served.health_s(timeout=1)
            return served
        except (httpx.HTTPError, AssertionError):
            if process.poll() is not None or time.monotonic() > deadline:
                stop_station(served)
                raise RuntimeError(f"the station did not start: {log.read_text()}")
            time.sleep(0.1)


def stop_station(served: Subprocess) -> None:
    served.process.terminate()
    try:
        served.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()
    for pipe in (served.process.stdin, served.process.stdout):
        if pipe is not None:
            pipe.close()


@pytest.fixture()
def recording(tmp_path: Path, camera_key: DeviceKey) -> Path:
    return make_recording(tmp_path / "recordings", camera_key)


QUOTA_BYTES = 400_000  # one test recording's segments fit; a 1 MiB body does not


@pytest.fixture()
def served(tmp_path: Path, camera_key: DeviceKey) -> Iterator[Subprocess]:
    """`bwv station serve` with its default limits but a small device quota."""
    station = start_station(tmp_path / "station", camera_key, "--device-quota-gib",
                            str(QUOTA_BYTES / (1 << 30)))
    yield station
    stop_station(station)


_opened: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    """Close the raw sockets a test opened with put_head."""
    yield
    while _opened:
        _opened.pop().close()


def put_head(port: int, path: str, headers: dict[str, str]) -> socket.socket:
    """A raw socket that has sent a PUT's request line and headers; the body is the caller's
    to send, byte by byte if it likes. Closed after the test."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=15)
    _opened.append(connection)
    head = f"PUT {path} HTTP/1.1\r\nHost: station\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    connection.sendall(head.encode("latin-1"))
    return connection


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def read_answer(connection: socket.socket) -> Answer:
    """One HTTP response read off ``connection`` (Content-Length framed, as the station's)."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = connection.recv(65536)
        if not more:
            raise ConnectionError(f"closed before an answer: {data!r}")
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":")
                                                           for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        more = connection.recv(65536)
        if not more:
            break
        body += more
    return Answer(int(lines[0].split()[1]), headers, body)


def send_until_refused(connection: socket.socket, total: int) -> int:
    """Send up to ``total`` bytes of body; how many went before the station closed."""
    chunk = b"\0" * MIB
    sent = 0
    try:
        while sent < total:
            connection.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    return sent


def answer_while_sending(connection: socket.socket, total: int) -> tuple[Answer, int]:
    """Read the answer on a thread of its own while sending up to ``total`` more bytes (so a
    station that answers and closes early cannot make the answer unreadable)."""
    answers: list[Answer] = []
    reader = threading.Thread(target=lambda: answers.append(read_answer(connection)))
    reader.start()
    sent = send_until_refused(connection, total)
    reader.join(timeout=20)
    assert answers, "no answer"
    return answers[0], sent


# --- finding 6: slow clients


def test_slow_loris_connections_do_not_lock_out_health(tmp_path: Path,
                                                       camera_key: DeviceKey) -> None:
    """300 connections from one address, each sending a header line every second, against a
    station that may open 256 files: without limits they take every descriptor and /health
    stops answering. The per-client limit closes most at once, the header timeout the rest.
    (The timeout is 3 s here, not the default 10 s, so that the test waits seconds, not tens:
    what is checked is that a header never finished is cut, however often its lines come.)"""
    station = start_station(tmp_path / "station", camera_key, "--header-timeout", "3",
                            open_files=256)
    attackers: list[socket.socket] = []
    try:
        rss_before = station.rss_mib()
        for _ in range(300):
            attacker = socket.socket()
            attacker.bind((ATTACKER, 0))
            attacker.connect(("127.0.0.1", station.port))
            attacker.sendall(f"GET {API}/health HTTP/1.1\r\nHost: station\r\n".encode())
            attackers.append(attacker)
        worst = 0.0
        start = next_line = time.monotonic()
        while time.monotonic() - start < 6:
            if time.monotonic() >= next_line:
                for attacker in attackers:
                    try:
                        attacker.sendall(b"X-Slow: 1\r\n")
                    except OSError:
                        pass  # closed by the station
                next_line += 1
            worst = max(worst, station.health_s(timeout=5))
            time.sleep(0.1)
        rss_after = station.rss_mib()
        still_open = [a for a in attackers if _open(a)]
    finally:
        for attacker in attackers:
            attacker.close()
        stop_station(station)
    print(f"slow loris: worst /health {worst * 1000:.0f} ms, RSS {rss_before:.0f} -> "
          f"{rss_after:.0f} MiB")
    # locked out, /health would not answer within its 5 s; answered at all, it takes
    # milliseconds, or about a second on a machine loaded by other work
    assert worst < 2.5
    assert still_open == []  # every slow header was cut, none waits for ever
    assert rss_after - rss_before < 50


def _open(connection: socket.socket) -> bool:
    """True while the station keeps ``connection`` open (it sent nothing, so EOF means shut)."""
    connection.setblocking(False)
    try:
        return connection.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_a_stalled_body_is_cut_after_the_body_timeout(tmp_path: Path, camera_key: DeviceKey,
                                                      recording: Path) -> None:
    """A signed segment PUT that stops sending halfway holds its connection only
    --body-timeout seconds; nothing of it is kept."""
    station = start_station(tmp_path / "station", camera_key, "--body-timeout", "2")
    try:
        data = (recording / "000001.mp4").read_bytes()
        path = segment_path(recording.name, "000001.mp4")
        connection = put_head(station.port, path, {
            **signed(camera_key, "PUT", path, sha256(data)), "Content-Length": str(len(data))})
        connection.sendall(data[:len(data) // 2])
        started = time.monotonic()
        closed = connection.recv(65536)  # the station closes, or answers and closes
        waited = time.monotonic() - started
        assert b"201" not in closed[:20]
        assert 1.5 < waited < 6, (waited, closed[:300])
        deadline = time.monotonic() + 5
        while list((station.data / "blobs" / ".partial").iterdir()):
            assert time.monotonic() < deadline, "the partial blob was not removed"
            time.sleep(0.05)
        assert station.data_bytes() == 0
        assert station.health_s() < 1
    finally:
        stop_station(station)


def test_connections_over_the_limit_are_closed_at_once(tmp_path: Path,
                                                      camera_key: DeviceKey) -> None:
    """With --max-connections 20, of 30 idle connections the last 10 are closed at once; the
    20 kept go at the header timeout, and the station answers again."""
    station = start_station(tmp_path / "station", camera_key, "--max-connections", "20",
                            "--max-connections-per-client", "0", "--header-timeout", "2")
    idle: list[socket.socket] = []
    try:
        for _ in range(30):
            connection = socket.socket()
            connection.bind((ATTACKER, 0))
            connection.connect(("127.0.0.1", station.port))
            idle.append(connection)
        time.sleep(0.5)
        assert sum(_open(c) for c in idle) == 20
        time.sleep(2.5)
        assert sum(_open(c) for c in idle) == 0
        assert station.health_s() < 1
    finally:
        for connection in idle:
            connection.close()
        stop_station(station)


def test_a_limit_that_makes_no_sense_is_a_usage_error(tmp_path: Path) -> None:
    for option, value in (("--max-segment-mib", "0"), ("--header-timeout", "-1"),
                          ("--device-quota-gib", "-5")):
        result = warm.run(["station", "serve", "--data", str(tmp_path / "s"),
                                 option, value], cwd="/", timeout=30)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"bwv station serve: {option} must be "
            + ("0 (none) or more" if option == "--device-quota-gib" else "more than 0")]
    assert not (tmp_path / "s").exists()  # nothing was made


# --- finding 7: bodies


def test_a_chunked_segment_put_is_refused(served: Subprocess, camera_key: DeviceKey,
                                          recording: Path) -> None:
    data = (recording / "000001.mp4").read_bytes()
    path = segment_path(recording.name, "000001.mp4")
    rss_before = served.rss_mib()

    def chunks() -> Iterator[bytes]:  # 1 GiB unless the station stops it
        for _ in range(1024):
            yield b"\0" * MIB

    response = http.put(served.url + path, content=chunks(),
                        headers=signed(camera_key, "PUT", path, sha256(data)), timeout=30)
    assert response.status_code == 411 and response.json()["error"] == "length_required"
    assert "Content-Length" in response.json()["message"]
    assert served.data_bytes() == 0
    assert served.rss_mib() - rss_before < 50
    assert served.health_s() < 1


def test_a_segment_declaring_2_gib_is_refused_before_a_byte_is_stored(
        served: Subprocess, camera_key: DeviceKey, recording: Path) -> None:
    path = segment_path(recording.name, "000001.mp4")
    rss_before = served.rss_mib()
    connection = put_head(served.port, path, {
        **signed(camera_key, "PUT", path, sha256(b"x")), "Content-Length": str(2 << 30)})
    answer = read_answer(connection)  # answered from the headers alone
    assert answer.status == 413 and b'"too_large"' in answer.body
    assert answer.headers["connection"] == "close"
    sent = send_until_refused(connection, 256 * MIB)
    assert sent < 256 * MIB  # the station did not read the body
    assert served.data_bytes() == 0
    assert not list((served.data / "blobs" / ".partial").iterdir())
    rss_after = served.rss_mib()
    print(f"2 GiB declared: {sent // MIB} MiB sent before the close, RSS {rss_before:.0f} -> "
          f"{rss_after:.0f} MiB")
    assert rss_after - rss_before < 50
    assert served.health_s() < 1


def test_a_manifest_declaring_1_5_gib_is_refused_before_it_is_read(
        served: Subprocess, camera_key: DeviceKey, recording: Path) -> None:
    path = manifest_path(recording.name)
    rss_before = served.rss_mib()
    connection = put_head(served.port, path, {
        **signed(camera_key, "PUT", path, sha256(b"x")), "Content-Length": str(1536 * MIB)})
    answer = read_answer(connection)
    assert answer.status == 413 and b'"too_large"' in answer.body
    assert send_until_refused(connection, 256 * MIB) < 256 * MIB
    assert served.rss_mib() - rss_before < 50


def test_a_body_longer_than_its_content_length_is_cut_there(
        served: Subprocess, camera_key: DeviceKey, recording: Path) -> None:
    """The declared length is what is read and hashed: 8 MiB more on the same connection is
    not part of the segment, is not stored, and ends the connection."""
    data = (recording / "000001.mp4").read_bytes()
    path = segment_path(recording.name, "000001.mp4")
    connection = put_head(served.port, path, {
        **signed(camera_key, "PUT", path, sha256(data)), "Content-Length": str(len(data))})
    connection.sendall(data)
    answer, sent = answer_while_sending(connection, 8 * MIB)
    assert answer.status == 201, answer.body
    assert answer.body.count(sha256(data).encode()) == 1
    blobs = [p for p in (served.data / "blobs").glob("??/??/*")]
    assert [p.name for p in blobs] == [sha256(data)]
    assert blobs[0].read_bytes() == data  # exactly the declared bytes
    assert served.data_bytes() == len(data)
    assert sent > 0


def test_an_html_segment_with_the_right_hash_is_refused_and_not_stored(
        served: Subprocess, camera_key: DeviceKey, recording: Path) -> None:
    page = b"<!doctype html><html><body><script>alert(1)</script></body></html>\n" * 100
    path = segment_path(recording.name, "000001.mp4")
    response = http.put(served.url + path, content=page,
                        headers=signed(camera_key, "PUT", path, sha256(page)))
    assert response.status_code == 415 and response.json()["error"] == "not_mp4"
    assert "ftyp" in response.json()["message"]
    assert served.data_bytes() == 0
    holdings = http.get(served.url + f"{API}/recordings/{recording.name}",
                        headers=signed(camera_key, "GET", f"{API}/recordings/{recording.name}",
                                        sha256(b"")))
    assert holdings.json()["status"] == "unknown"
    short = b"\0\0\0\x10ftyp"  # an ftyp size with nothing after it
    response = http.put(served.url + path, content=short,
                        headers=signed(camera_key, "PUT", path, sha256(short)))
    assert response.status_code == 415 and served.data_bytes() == 0


def test_a_camera_over_its_quota_is_refused_with_507(served: Subprocess, camera_key: DeviceKey,
                                                     recording: Path) -> None:
    segments = sorted(recording.glob("*.mp4"))
    assert sum(p.stat().st_size for p in segments) < QUOTA_BYTES
    for segment in segments:
        path = segment_path(recording.name, segment.name)
        data = segment.read_bytes()
        response = http.put(served.url + path, content=data,
                            headers=signed(camera_key, "PUT", path, sha256(data)))
        assert response.status_code == 201, response.text
    held = served.data_bytes()
    data = segments[0].read_bytes() + b"\0" * MIB  # begins as an MP4; too big for the quota
    assert held + len(data) > QUOTA_BYTES
    path = segment_path("20261123T090000Z-cam7", "000001.mp4")
    response = http.put(served.url + path, content=data,
                        headers=signed(camera_key, "PUT", path, sha256(data)))
    assert response.status_code == 507 and response.json()["error"] == "quota"
    assert "quota" in response.json()["message"]
    assert served.data_bytes() == held
    # what is held already may still be sent again (nothing new is stored)
    first = segments[0].read_bytes()
    path = segment_path(recording.name, segments[0].name)
    again = http.put(served.url + path, content=first,
                     headers=signed(camera_key, "PUT", path, sha256(first)))
    assert again.status_code == 200 and again.json()["already_held"] is True


# --- finding 10: a segment racing the manifest


@pytest.fixture()
def race_store(catalogue_url: str, camera_key: DeviceKey,
               tmp_path: Path) -> Iterator[EvidenceStore]:
    """A station on SQLite or PostgreSQL, on the system clock (requests are signed now)."""
    store = make_store(tmp_path / "station", db_url=catalogue_url)
    store.enroll("cam7", camera_key.public_key, by="admin")
    yield store
    store.engine.dispose()


def _put(url: str, key: DeviceKey, path: str, data: bytes) -> httpx.Response:
    return http.put(url + path, content=data, headers=signed(key, "PUT", path, sha256(data)),
                    timeout=30)


def _export_verifies(store: EvidenceStore, recording_id: str, out: Path) -> bool:
    return export_recording(store, recording_id, out, by="test", purpose="race").verified


def test_a_segment_finishing_after_the_manifest_verified_is_refused(
        race_store: EvidenceStore, camera_key: DeviceKey, recording: Path,
        tmp_path: Path) -> None:
    """The race window made explicit: a third segment's PUT has passed the station's early
    checks and is half sent when the manifest arrives and verifies; its end then arrives."""
    station = serve(race_store)
    try:
        for segment in sorted(recording.glob("*.mp4")):
            assert _put(station.url, camera_key, segment_path(recording.name, segment.name),
                        segment.read_bytes()).status_code == 201
        extra = (recording / "000001.mp4").read_bytes() + b"\0" * 1024  # an MP4, unlisted
        path = segment_path(recording.name, "000003.mp4")
        racing = put_head(station.port, path, {
            **signed(camera_key, "PUT", path, sha256(extra)), "Content-Length": str(len(extra))})
        racing.sendall(extra[:len(extra) // 2])
        time.sleep(0.5)  # the early checks ran while the recording was still receiving
        verified = _put(station.url, camera_key, manifest_path(recording.name),
                        (recording / manifest.MANIFEST_NAME).read_bytes())
        assert verified.json()["status"] == "verified"
        racing.sendall(extra[len(extra) // 2:])
        answer = read_answer(racing)
        assert answer.status == 409, answer.body
        assert b"verified and complete" in answer.body
    finally:
        station.stop()
    holdings = race_store.holdings(recording.name)
    assert holdings.status == "verified" and "000003.mp4" not in holdings.segments
    assert not race_store.blobs.exists(sha256(extra))
    assert _export_verifies(race_store, recording.name, tmp_path / "export.zip")
    code = warm.run(["station", "export", recording.name, "--data",
                           str(tmp_path / "station"), "--db", str(race_store.engine.url
                                                                  .render_as_string(False)),
                           "--out", str(tmp_path / "cli.zip"), "--purpose", "race"],
                          cwd="/")
    assert code.returncode == 0 and "verification OK" in code.stdout, code.stderr


def test_a_segment_and_the_manifest_sent_at_once_end_consistent(
        race_store: EvidenceStore, camera_key: DeviceKey, tmp_path: Path) -> None:
    """The concurrent race, eight times: whichever wins, the station's status and a fresh
    export's verification agree, and a segment is never stored beside a verified verdict."""
    station = serve(race_store)
    outcomes: list[tuple[int, str]] = []
    try:
        for run in range(8):
            recording = make_recording(tmp_path / f"run{run}", camera_key,
                                       utc_start=f"2026-11-23T07:{run:02d}:00.000000Z")
            for segment in sorted(recording.glob("*.mp4")):
                assert _put(station.url, camera_key, segment_path(recording.name, segment.name),
                            segment.read_bytes()).status_code == 201
            extra = (recording / "000001.mp4").read_bytes() + bytes([run]) * 4096
            lines = (recording / manifest.MANIFEST_NAME).read_bytes()
            start = threading.Barrier(2)
            answers: dict[str, httpx.Response] = {}

            def send(name: str, path: str, data: bytes) -> None:
                start.wait()
                answers[name] = _put(station.url, camera_key, path, data)

            threads = [threading.Thread(target=send, args=(
                           "segment", segment_path(recording.name, "000003.mp4"), extra)),
                       threading.Thread(target=send, args=(
                           "manifest", manifest_path(recording.name), lines))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            holdings = race_store.holdings(recording.name)
            exported = _export_verifies(race_store, recording.name, tmp_path / f"{run}.zip")
            assert (holdings.status == "verified") == exported, (run, holdings)
            if answers["segment"].status_code == 201:
                assert holdings.status != "verified" and "000003.mp4" in holdings.segments
            else:
                assert answers["segment"].status_code == 409
                assert "000003.mp4" not in holdings.segments
            outcomes.append((answers["segment"].status_code, holdings.status))
    finally:
        station.stop()
    print(f"race outcomes (segment answer, final status): {outcomes}")


def test_a_failed_recording_takes_only_segments_its_manifest_lists(
        race_store: EvidenceStore, camera_key: DeviceKey, recording: Path) -> None:
    """A manifest that arrived first fails (its segments are missing); the listed segments may
    still come, and the stale failure makes way for a new verification; anything else is 409."""
    station = serve(race_store)
    try:
        lines = (recording / manifest.MANIFEST_NAME).read_bytes()
        early = _put(station.url, camera_key, manifest_path(recording.name), lines)
        assert early.json()["status"] == "failed"
        extra = (recording / "000001.mp4").read_bytes() + b"\1" * 100
        refused = _put(station.url, camera_key, segment_path(recording.name, "000009.mp4"),
                       extra)
        assert refused.status_code == 409 and "does not list" in refused.json()["message"]
        first = (recording / "000001.mp4").read_bytes()
        listed = _put(station.url, camera_key, segment_path(recording.name, "000001.mp4"),
                      first)
        assert listed.status_code == 201
        assert race_store.holdings(recording.name).status == "receiving"
        second = (recording / "000002.mp4").read_bytes()
        assert _put(station.url, camera_key, segment_path(recording.name, "000002.mp4"),
                    second).status_code == 201
        again = _put(station.url, camera_key, manifest_path(recording.name), lines)
        assert again.json()["status"] == "verified"
    finally:
        station.stop()
    assert not race_store.blobs.exists(sha256(extra))
    assert race_store.blobs.exists(sha256(first))


class _Transport:
    def __init__(self, closing: bool) -> None:
        self.closing = closing

    def is_closing(self) -> bool:
        return self.closing


class _Connection:
    def __init__(self, host: str, closing: bool) -> None:
        self.client = (host, 40000)
        self.transport = _Transport(closing)


def test_connections_being_closed_do_not_count_against_a_new_client() -> None:
    """Right after a burst over the limit, the burst's connections are closing but still in the
    server's set until the loop reports them lost: a client arriving then was refused for them
    (seen as a reset /health in the slow-loris test under load)."""
    from recorder.station.limits import Limits
    from recorder.station.server import StationProtocol, protocol_for

    limits = Limits(max_connections=3, max_connections_per_client=2)
    protocol = protocol_for(limits).__new__(protocol_for(limits))
    newcomer = _Connection("127.0.0.1", closing=False)
    burst = {_Connection("127.0.0.2", closing=True) for _ in range(50)}
    protocol.client = newcomer.client
    protocol.connections = burst | {newcomer}  # type: ignore[assignment]
    assert isinstance(protocol, StationProtocol) and not protocol._over_limit()
    protocol.connections |= {_Connection("127.0.0.2", False) for _ in range(3)}
    assert protocol._over_limit()  # four open: over the limit of three
    protocol.connections = {newcomer, _Connection("127.0.0.1", False),  # type: ignore
                            _Connection("127.0.0.1", False)}
    assert protocol._over_limit()  # three from one address: over its two


# --- the two HTTP protocols: httptools (the fast path) and h11 (without it) hold the same limits


def test_the_fast_path_serves_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The station extra installs httptools and uvloop: `serve` then runs on them, with the
    limits' protocol; BWV_STATION_HTTP=h11 (or their absence) gives h11 and asyncio."""
    from recorder.station.limits import Limits
    from recorder.station.server import StationHttpToolsProtocol, StationProtocol, server_config

    monkeypatch.delenv("BWV_STATION_HTTP", raising=False)
    fast = server_config(None, Limits())  # type: ignore[arg-type]
    assert isinstance(fast.http, type) and issubclass(fast.http, StationHttpToolsProtocol)
    assert fast.loop == "uvloop"
    monkeypatch.setenv("BWV_STATION_HTTP", "h11")
    slow = server_config(None, Limits())  # type: ignore[arg-type]
    assert isinstance(slow.http, type) and issubclass(slow.http, StationProtocol)
    assert slow.loop == "asyncio"


@pytest.fixture(params=["httptools", "h11"])
def small_limits_station(request: pytest.FixtureRequest, tmp_path: Path, camera_key: DeviceKey,
                         monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, str]]:
    """A station in a thread, on either protocol, with limits small enough to reach in a test:
    (its port, the protocol's name)."""
    from recorder.station.limits import Limits
    from support.station import serve

    if request.param == "h11":
        monkeypatch.setenv("BWV_STATION_HTTP", "h11")
    else:
        monkeypatch.delenv("BWV_STATION_HTTP", raising=False)
    store = make_store(tmp_path / "station")
    store.enroll("cam7", camera_key.public_key, by="admin")
    limits = Limits(header_timeout_s=1.0, body_timeout_s=1.0, max_header_bytes=4096,
                    max_connections_per_client=3)
    station = serve(store, limits=limits)
    served_by = station.server.config.http
    assert isinstance(served_by, type)
    assert ("HttpTools" in served_by.__name__) == (request.param == "httptools")
    yield station.port, request.param
    station.stop()


def test_each_protocol_cuts_a_head_too_long_or_too_slow(
        small_limits_station: tuple[int, str]) -> None:
    port, _ = small_limits_station
    long_head = socket.create_connection(("127.0.0.1", port), timeout=5)
    _opened.append(long_head)
    long_head.sendall(f"GET {API}/health HTTP/1.1\r\nHost: s\r\nX-Big: {'a' * 8000}".encode())
    time.sleep(0.2)  # held incomplete: over max_header_bytes (4096) before it ends
    try:
        long_head.sendall(b"\r\n\r\n")
    except OSError:
        pass  # already refused
    assert read_answer(long_head).status == 400
    slow_head = socket.create_connection(("127.0.0.1", port), timeout=5)
    _opened.append(slow_head)
    started = time.monotonic()
    slow_head.sendall(f"GET {API}/health HTTP/1.1\r\n".encode())
    try:
        for _ in range(10):  # a line every 0.3 s: never a whole head
            slow_head.sendall(b"X-Slow: 1\r\n")
            time.sleep(0.3)
    except OSError:
        pass  # closed by the station
    slow_head.settimeout(5)
    assert slow_head.recv(1) == b""
    assert 0.8 < time.monotonic() - started < 2.5


def test_each_protocol_limits_connections_per_client(
        small_limits_station: tuple[int, str]) -> None:
    port, _ = small_limits_station
    idle = []
    for _ in range(5):
        connection = socket.socket()
        _opened.append(connection)
        connection.bind((ATTACKER, 0))
        connection.connect(("127.0.0.1", port))
        idle.append(connection)
    time.sleep(0.3)
    assert sum(_open(c) for c in idle) == 3


def test_each_protocol_cuts_a_stalled_body_and_reads_no_further_than_its_length(
        small_limits_station: tuple[int, str], camera_key: DeviceKey, recording: Path,
        tmp_path: Path) -> None:
    port, _ = small_limits_station
    data = (recording / "000001.mp4").read_bytes()
    path = segment_path(recording.name, "000001.mp4")
    stalled = put_head(port, path, {**signed(camera_key, "PUT", path, sha256(data)),
                                    "Content-Length": str(len(data))})
    stalled.sendall(data[:len(data) // 2])
    started = time.monotonic()
    assert b"201" not in stalled.recv(65536)[:20]
    assert 0.8 < time.monotonic() - started < 4
    # the whole segment and 8 MiB more: the segment is answered 201, and only then refused
    longer = put_head(port, path, {**signed(camera_key, "PUT", path, sha256(data)),
                                   "Content-Length": str(len(data))})
    longer.sendall(data)
    answer, sent = answer_while_sending(longer, 8 * MIB)
    assert answer.status == 201, answer.body
    blobs = list((tmp_path / "station" / "blobs").glob("??/??/*"))
    assert [blob.read_bytes() for blob in blobs] == [data]
