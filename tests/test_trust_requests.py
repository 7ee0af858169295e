"""The station's authentication as an outsider attacks it (issue 12, findings 3, 11 and 12), on
a real served station, on SQLite and on PostgreSQL:

* no header value (``²``, which passes ``str.isdigit()`` and fails ``int()``, other non-ASCII
  digits, negative, very long, non-UTF-8 bytes) gives anything but the one 401, never a 500;
* every authentication failure answers the same bytes, so nobody learns which devices exist;
  the reason is in the station's log;
* a request signed for station A and replayed to station B is refused, as is a changed query;
* an unauthenticated manifest PUT declaring 1.5 GiB is refused before its body is read: the 401
  comes back after a few bytes and the memory of the station process does not grow."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.station import (ServedStation, camera_key, catalogue_url, make_recording, make_store,
                             postgres_cluster, real_station, real_store, serve)
from support.http import http

from recorder.integrity import manifest
from recorder.integrity.keys import DeviceKey
from recorder.integrity.request_signing import (HEADER_CONTENT_SHA256, HEADER_DEVICE,
                                                HEADER_NONCE, HEADER_SIGNATURE, HEADER_STATION,
                                                HEADER_TIMESTAMP, sign_request)
from recorder.station import audit
from recorder.station.errors import UNAUTHORISED_MESSAGE
from recorder.station.evidence_store import EvidenceStore

__all__ = ["camera_key", "catalogue_url", "postgres_cluster", "real_station",
           "real_store"]  # fixtures used by name below

pytestmark = pytest.mark.usefixtures("no_fsync")

API = "/api/v1"
UNIFORM = {"error": "unauthorised", "message": UNAUTHORISED_MESSAGE}
GET_PATH = f"{API}/recordings/20261123T070000Z-cam7"
MANIFEST_PATH = f"{API}/recordings/20261123T070000Z-cam7/manifest"


@pytest.fixture()
def station(real_station: ServedStation) -> ServedStation:
    return real_station


def signed(station_id: str, key: DeviceKey, method: str = "GET", path: str = GET_PATH,
           body: bytes = b"", device: str = "cam7", **kwargs: object) -> dict[str, str]:
    return sign_request(key, device, method, path, hashlib.sha256(body).hexdigest(),
                        station_id=station_id, **kwargs)  # type: ignore[arg-type]


def logged_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage().split(": ")[1] for record in caplog.records
            if record.name == "recorder.station" and record.getMessage().startswith("refused ")]


# --- finding 11: no header value can cause a 500 ------------------------------------------


BAD_VALUES = [
    (HEADER_TIMESTAMP, "²".encode()),  # isdigit() is True, int() raises
    (HEADER_TIMESTAMP, "١٧٩٥٠٠٠٠٠٠".encode()),  # Arabic-Indic digits: int() reads them
    (HEADER_TIMESTAMP, b"-5"),
    (HEADER_TIMESTAMP, b"9" * 4000),
    (HEADER_TIMESTAMP, b"99999999999999999999"),
    (HEADER_DEVICE, "cämera".encode()),
    (HEADER_DEVICE, b"\xff\xfe\xfd"),
    (HEADER_DEVICE, b"c" * 4000),
    (HEADER_STATION, "ßtation".encode()),
    (HEADER_NONCE, ("²" * 32).encode()),
    (HEADER_CONTENT_SHA256, ("٣" * 64).encode()),
    (HEADER_SIGNATURE, ("é" * 88).encode()),
    (HEADER_SIGNATURE, b"=" * 88),
    (HEADER_SIGNATURE, b"A" * 4000),
]


def test_no_header_value_gives_anything_but_the_one_401(station: ServedStation,
                                                        camera_key: DeviceKey) -> None:
    # every value against one station (per backend): a refused request changes nothing there
    for header, value in BAD_VALUES:
        for method, path in (("GET", GET_PATH), ("PUT", MANIFEST_PATH)):
            headers: dict[str, str | bytes] = dict(signed(station.station_id, camera_key,
                                                          method, path))
            headers[header] = value
            response = http.request(method, station.url + path, headers=headers, content=b"")
            assert response.status_code == 401, (header, value[:20], method, response.text)
            assert response.json() == UNIFORM, (header, value[:20], method)


# --- finding 12: one answer for every failure; requests bound to one station ---------------------


def test_every_authentication_failure_answers_the_same_bytes(
        station: ServedStation, real_store: EvidenceStore, camera_key: DeviceKey,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = station.url + GET_PATH
    sid = station.station_id
    good = signed(sid, camera_key)
    assert http.get(url, headers=good).status_code == 200  # used once: now a replay
    stranger = DeviceKey.load_or_create(tmp_path / "stranger")
    attempts = {
        "unsigned": {},
        "bad_header": dict(signed(sid, camera_key), **{HEADER_NONCE: "short"}),
        "not_enrolled": signed(sid, stranger, device="cam9"),
        "bad_signature": signed(sid, stranger),
        "wrong_station": signed("station-0000000000000000", camera_key),
        "stale": signed(sid, camera_key, timestamp=int(time.time()) - 301),
        "replayed": good,
    }
    bodies = {}
    for reason, headers in attempts.items():
        response = http.get(url, headers=headers)
        assert response.status_code == 401
        bodies[reason] = response.content
    assert len(set(bodies.values())) == 1, bodies
    assert json.loads(next(iter(bodies.values()))) == UNIFORM
    assert logged_reasons(caplog) == list(attempts)  # the log says which, in order
    assert [e.action for e in audit.entries(real_store.engine)] == ["enroll"]


def test_a_request_for_station_a_is_refused_by_station_b(
        station: ServedStation, real_store: EvidenceStore, camera_key: DeviceKey,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Both stations enrolled the same camera; a request captured on its way to A is replayed
    to B: refused, and B stores nothing."""
    store_b = make_store(tmp_path / "station-b")
    store_b.enroll("cam7", camera_key.public_key, by="admin")
    station_b = serve(store_b)
    recording = make_recording(tmp_path / "recordings", camera_key)
    segment = (recording / "000001.mp4").read_bytes()
    path = f"{API}/recordings/{recording.name}/segments/000001.mp4"
    try:
        for_a = signed(station.station_id, camera_key, "PUT", path, segment)
        to_b = http.put(station_b.url + path, headers=for_a, content=segment)
        assert to_b.status_code == 401 and to_b.json() == UNIFORM
        # naming B in the header does not help: the signature covers A's id
        relabelled = dict(for_a, **{HEADER_STATION: station_b.station_id})
        assert http.put(station_b.url + path, headers=relabelled,
                        content=segment).status_code == 401
        assert logged_reasons(caplog) == ["wrong_station", "bad_signature"]
        assert store_b.holdings(recording.name).status == "unknown"
        assert [e.action for e in audit.entries(store_b.engine)] == ["enroll"]
        # the control: the same request where it was meant to go is accepted
        assert http.put(station.url + path, headers=for_a, content=segment).status_code == 201
    finally:
        station_b.stop()


def test_the_query_is_signed(station: ServedStation, camera_key: DeviceKey,
                             caplog: pytest.LogCaptureFixture) -> None:
    sid = station.station_id
    unsigned_query = http.get(station.url + GET_PATH + "?as=someone-else",
                              headers=signed(sid, camera_key))
    assert unsigned_query.status_code == 401 and unsigned_query.json() == UNIFORM
    changed = http.get(station.url + GET_PATH + "?as=someone-else",
                       headers=signed(sid, camera_key, query="as=me"))
    assert changed.status_code == 401
    assert logged_reasons(caplog) == ["bad_signature", "bad_signature"]
    as_signed = http.get(station.url + GET_PATH + "?as=me",
                         headers=signed(sid, camera_key, query="as=me"))
    assert as_signed.status_code == 200


def test_a_manifest_is_checked_against_the_signed_hash_after_authentication(
        station: ServedStation, camera_key: DeviceKey, tmp_path: Path) -> None:
    recording = make_recording(tmp_path / "recordings", camera_key)
    data = (recording / manifest.MANIFEST_NAME).read_bytes()
    path = f"{API}/recordings/{recording.name}/manifest"
    headers = signed(station.station_id, camera_key, "PUT", path, data)
    response = http.put(station.url + path, headers=headers, content=data + b"\n")
    assert response.status_code == 422 and response.json()["error"] == "hash_mismatch"


# --- finding 3: a huge unauthenticated body is never read ----------------------------------


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture()
def station_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, str]]:
    """`bwv station serve` in a process of its own: (process, port, station id)."""
    data = tmp_path / "station-process"
    station_id = make_store(data).identity.station_id
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "recorder", "station", "serve", "--data", str(data), "--listen",
         f"127.0.0.1:{port}", "--sweep-every", "0", "--log-level", "critical"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                http.get(f"http://127.0.0.1:{port}{API}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
        yield process, port, station_id
    finally:
        process.kill()
        process.wait()


DECLARED = 1_610_612_736  # 1.5 GiB


@pytest.mark.parametrize("who", ["no headers", "an unenrolled device"])
def test_a_huge_unauthenticated_manifest_put_is_refused_before_its_body_is_read(
        station_process: tuple[subprocess.Popen[bytes], int, str], tmp_path: Path,
        who: str) -> None:
    process, port, station_id = station_process
    path = "/api/v1/recordings/20261123T070000Z-cam9/manifest"
    auth = b""
    if who == "an unenrolled device":
        stranger = DeviceKey.load_or_create(tmp_path / "stranger")
        headers = sign_request(stranger, "cam9", "PUT", path, "0" * 64, station_id=station_id)
        auth = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
    before = _rss_bytes(process.pid)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Content-Length: {DECLARED}\r\n".encode() + auth + b"\r\n" + b"m" * 4096)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)  # a station that waits for the body times out here
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == UNIFORM
        # keep pushing the declared body: the station must not take it in
        pushed, block = 0, b"\0" * (1 << 20)
        give_up = time.monotonic() + 10
        try:
            while pushed < 512 << 20 and time.monotonic() < give_up:
                sock.sendall(block)
                pushed += len(block)
        except OSError:
            pass  # the station closed the connection, or stopped reading: both fine
    health = threading.Event()

    def ask_health() -> None:
        if http.get(f"http://127.0.0.1:{port}{API}/health", timeout=1).status_code == 200:
            health.set()

    asker = threading.Thread(target=ask_health)
    asker.start()
    asker.join(2)
    assert health.is_set(), "the station did not answer /health within 1 s"
    grown = _rss_bytes(process.pid) - before
    print(f"\n{who}: pushed {pushed >> 20} MiB after the 401; station RSS "
          f"{before >> 20} MiB -> {(before + grown) >> 20} MiB")
    assert grown < 32 << 20
