"""The camera deletes only on its pinned station's signed receipt (issue 12, finding 1).

The attack, reproduced with REAL fake stations (an http.server on loopback, started here) and
`bwv upload` as a real subprocess: a station that keeps nothing and answers "verified" with the
hashes of the manifest it was sent (unsigned; or signed with its own key; or replaying a genuine
receipt of the real station from an earlier request). Each time the camera keeps every
recording, stops with a one-line reason and exits 1. Against the real station with the right
pin the recordings go, and the receipts log holds a receipt that verifies, checked by openssl
with the block docs/formats.md gives. Plain http to another machine is refused without a
connection. The receipt parser is bounded and raises only ReceiptError."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.station import (ServedStation, camera_key, catalogue_url, make_recording, make_store,
                             postgres_cluster, real_station, real_store, serve)
from support import warm

from recorder.integrity import manifest
from recorder.integrity.keys import DeviceKey
from recorder.integrity.receipts import (MAX_RECEIPT_BYTES, Receipt, ReceiptError, parse_receipt,
                                         sign_receipt, verify_receipt)
from recorder.integrity.request_signing import HEADER_NONCE
from recorder.integrity.station_pin import StationPin
from recorder.station.evidence_store import EvidenceStore
from recorder.uploader import Uploader

__all__ = ["camera_key", "catalogue_url", "postgres_cluster", "real_station",
           "real_store"]  # fixtures used by name below

REPO = Path(__file__).resolve().parents[1]
API = "/api/v1"


def snapshot(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def bwv_upload(data: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`bwv upload` as a camera runs it: a subprocess of the installed package (cwd="/")."""
    environ = {**os.environ, "RECORDER_NATIVE": "off"}
    environ.pop("BWV_CONFIG", None)
    return warm.run(["upload", "--station", url,
                           "--data", str(data), "--device-id", "cam7", "--attempts", "1",
                           *args], cwd="/", env=environ,
                          timeout=120)


@pytest.fixture()
def camera(tmp_path: Path, camera_key: DeviceKey) -> Path:
    """The camera's data directory: its key and two sealed recordings."""
    data = tmp_path / "camera"
    make_recording(data / "recordings", camera_key, utc_start="2026-11-23T07:00:00.000000Z")
    make_recording(data / "recordings", camera_key, utc_start="2026-11-23T07:10:00.000000Z")
    return data




# --- the fake station ----------------------------------------------------------------------


class FakeStation:
    """A station that keeps nothing: it reads what it is sent, and answers every holdings
    question with "verified" and the hashes of the last manifest it was sent (or, before one,
    of the recording ``preload`` says). ``receipt(nonce, holdings)`` gives the receipt member to
    add (None: none). Every request it gets is counted in ``requests``."""

    def __init__(self, pin: StationPin,
                 receipt: Callable[[str, dict[str, Any]], str | None],
                 preload: Path | None = None) -> None:
        self.requests: list[str] = []
        self.manifests: dict[str, bytes] = {}
        if preload is not None:
            self.manifests[preload.name] = (preload / manifest.MANIFEST_NAME).read_bytes()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                fake.requests.append(f"GET {self.path}")
                if self.path == f"{API}/health":
                    self._answer(200, {"ok": True, "version": "1", "station_id": pin.station_id})
                    return
                rid = self.path.rsplit("/", 1)[-1]
                holdings = fake.holdings(rid)
                signed = receipt(self.headers[HEADER_NONCE] or "", holdings)
                self._answer(200, holdings if signed is None else dict(holdings,
                                                                       receipt=signed))

            def do_PUT(self) -> None:
                fake.requests.append(f"PUT {self.path}")
                body = self.rfile.read(int(self.headers["Content-Length"] or 0))
                parts = self.path.split("/")
                if parts[-1] == "manifest":
                    fake.manifests[parts[-2]] = body
                    holdings = fake.holdings(parts[-2])
                    signed = receipt(self.headers[HEADER_NONCE] or "", holdings)
                    self._answer(200, holdings if signed is None else dict(holdings,
                                                                           receipt=signed))
                else:
                    self._answer(201, {"stored": True, "already_held": False,
                                       "sha256": hashlib.sha256(body).hexdigest()})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def holdings(self, rid: str) -> dict[str, Any]:
        """"Verified", with every hash the manifest it was sent lists: what a camera checks."""
        data = self.manifests.get(rid)
        if data is None:
            return {"recording_id": rid, "status": "unknown", "segments": {},
                    "manifest_sha256": None, "verified": False, "verify_summary": None,
                    "problems": []}
        segments = {segment.file: segment.sha256
                    for segment in manifest.read_lines(data).segments()}
        return {"recording_id": rid, "status": "verified", "segments": segments,
                "manifest_sha256": hashlib.sha256(data).hexdigest(), "verified": True,
                "verify_summary": "ok", "problems": []}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def forged_receipt(key: DeviceKey, station_id: str) -> Callable[[str, dict[str, Any]],
                                                                str | None]:
    """Receipts exactly as the real station makes them, for this very request, naming the
    pinned station id: but signed with ``key``, not the pinned station's."""
    def receipt(nonce: str, holdings: dict[str, Any]) -> str:
        return sign_receipt(Receipt(station_id, holdings["recording_id"], "cam7",
                                    holdings["manifest_sha256"], holdings["segments"],
                                    holdings["verified"], holdings["status"],
                                    holdings["verify_summary"], 1_795_000_000_000_000, nonce),
                            key.sign)
    return receipt


def assert_kept_with_one_line(result: subprocess.CompletedProcess[str], camera: Path,
                              before: dict[str, str], says: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    kept = [line for line in result.stderr.splitlines() if line.startswith("kept ")]
    assert len(kept) == 1 and says in kept[0], result.stderr
    assert snapshot(camera / "recordings") == before
    assert not (camera / "receipts.jsonl").exists()


# --- finding 1: the fake station ----------------------------------------------------------


def test_a_fake_station_without_a_pin_gets_uploads_but_no_deletion(
        camera: Path, tmp_path: Path) -> None:
    """The attack of finding 1 as filed: no pin, a station that answers "verified". The camera
    uploads (nothing tells it not to) but deletes nothing and says how to pin."""
    pin = make_store(tmp_path / "station").identity.pin
    fake = FakeStation(pin, lambda nonce, holdings: None)
    before = snapshot(camera / "recordings")
    try:
        result = bwv_upload(camera, fake.url)
    finally:
        fake.stop()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no station key pinned" in result.stderr and "bwv station key --data DIR" in \
        result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("kept ")] and all(
        "nothing is deleted" in line for line in result.stderr.splitlines()
        if line.startswith("kept "))
    assert snapshot(camera / "recordings") == before
    assert any(r.startswith("PUT") for r in fake.requests)  # it did upload


def test_an_unsigned_fake_station_deletes_nothing_and_gets_no_footage(
        camera: Path, tmp_path: Path) -> None:
    pin = make_store(tmp_path / "station").identity.pin
    fake = FakeStation(pin, lambda nonce, holdings: None)
    before = snapshot(camera / "recordings")
    try:
        result = bwv_upload(camera, fake.url, "--station-key", str(pin))
    finally:
        fake.stop()
    assert_kept_with_one_line(result, camera, before,
                              "is not the pinned station " + pin.station_id)
    assert "carries no receipt" in result.stderr
    assert [r.split()[0] for r in fake.requests] == ["GET"]  # the run stopped at once


def test_a_fake_station_signing_with_its_own_key_deletes_nothing(
        camera: Path, tmp_path: Path) -> None:
    pin = make_store(tmp_path / "station").identity.pin
    impostor_key = DeviceKey.load_or_create(tmp_path / "impostor", "station_key.pem")
    fake = FakeStation(pin, forged_receipt(impostor_key, pin.station_id),
                       preload=sorted((camera / "recordings").iterdir())[0])
    before = snapshot(camera / "recordings")
    try:
        result = bwv_upload(camera, fake.url, "--station-key", str(pin))
    finally:
        fake.stop()
    assert_kept_with_one_line(result, camera, before, "is not signed by the pinned station")
    assert [r.split()[0] for r in fake.requests] == ["GET"]


def test_a_genuine_receipt_replayed_by_a_fake_station_deletes_nothing(
        camera: Path, camera_key: DeviceKey, tmp_path: Path) -> None:
    """A receipt the real station signed for this very recording (same device, hashes,
    "verified"), captured from an earlier request and replayed: only the nonce differs."""
    store = make_store(tmp_path / "station")
    store.enroll("cam7", camera_key.public_key, by="admin")
    original = sorted((camera / "recordings").iterdir())[0]
    earlier = tmp_path / "earlier-copy" / "recordings"
    earlier.mkdir(parents=True)
    subprocess.run(["cp", "-a", str(original), str(earlier)], check=True)
    served = serve(store)
    try:
        with Uploader(served.url, camera_key, "cam7", earlier, pin=served.pin,
                      attempts=1) as up:
            assert up.upload_all().ok
    finally:
        served.stop()
    genuine = json.loads((tmp_path / "earlier-copy" / "receipts.jsonl").read_text())["receipt"]
    assert json.loads(genuine)["recording_id"] == original.name
    fake = FakeStation(served.pin, lambda nonce, holdings: genuine, preload=original)
    before = snapshot(camera / "recordings")
    try:
        result = bwv_upload(camera, fake.url, "--station-key", str(served.pin))
    finally:
        fake.stop()
    assert_kept_with_one_line(result, camera, before, "a replayed receipt")
    assert [r.split()[0] for r in fake.requests] == ["GET"]


# --- the real station, pinned -----------------------------------------------------------------


def test_the_real_station_with_the_right_pin_deletes_and_logs_receipts_openssl_checks(
        camera: Path, real_station: ServedStation, real_store: EvidenceStore,
        tmp_path: Path) -> None:
    names = sorted(p.name for p in (camera / "recordings").iterdir())
    result = bwv_upload(camera, real_station.url, "--station-key", str(real_station.pin))
    assert result.returncode == 0, result.stderr
    assert list((camera / "recordings").iterdir()) == []
    log = camera / "receipts.jsonl"
    assert log.stat().st_mode & 0o777 == 0o600
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["recording_id"] for e in entries] == names
    for entry in entries:
        receipt, signature, signed = parse_receipt(entry["receipt"])
        assert verify_receipt(real_station.pin, entry["receipt"], receipt.nonce) == receipt
        held = real_store.holdings(entry["recording_id"])
        assert (receipt.station_id, receipt.device_id, receipt.verified) == (
            real_station.station_id, "cam7", True)
        assert (receipt.manifest_sha256, dict(receipt.segments)) == (held.manifest_sha256,
                                                                     held.segments)
    # the external oracle: the openssl block of docs/formats.md, run as written
    (camera / "station.pin").write_text(str(real_station.pin) + "\n")
    text = (REPO / "docs" / "formats.md").read_text()
    block = re.search(r"<!-- receipt-check:begin -->\n```sh\n(.*?)```", text, re.S)
    assert block is not None
    checked = subprocess.run(["sh", "-c", block.group(1)], cwd=camera, capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert "Signature Verified Successfully" in checked.stdout
    assert json.loads(checked.stdout[checked.stdout.index("{"):])["recording_id"] == names[-1]
    # ... and the same block fails on a receipt whose verdict was edited
    lines = log.read_text().splitlines()
    lines[-1] = lines[-1].replace('\\"verified\\":true', '\\"verified\\":false')
    log.write_text("\n".join(lines) + "\n")
    tampered = subprocess.run(["sh", "-c", block.group(1)], cwd=camera, capture_output=True,
                              text=True, timeout=60)
    assert tampered.returncode != 0 and "Signature Verified Successfully" not in tampered.stdout


def test_a_pin_of_another_station_keeps_everything(camera: Path, real_station: ServedStation,
                                                  tmp_path: Path) -> None:
    """The real station, but the camera pinned a different one: its answers do not verify."""
    other = make_store(tmp_path / "other-station").identity.pin
    before = snapshot(camera / "recordings")
    result = bwv_upload(camera, real_station.url, "--station-key", str(other))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert snapshot(camera / "recordings") == before
    assert not (camera / "receipts.jsonl").exists()


# --- plain http ------------------------------------------------------------------------------


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing address
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_plain_http_to_another_machine_is_refused_without_connecting(
        camera: Path, tmp_path: Path) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to listen on")
    listener = socket.create_server((address, 0))
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    pin = make_store(tmp_path / "station").identity.pin
    before = snapshot(camera / "recordings")
    try:
        result = bwv_upload(camera, f"http://{address}:{port}", "--station-key", str(pin))
        assert result.returncode == 2
        assert result.stderr == (f"bwv upload: refused plain http to {address}: footage goes to "
                                 f"a station over https (https://{address}...); plain http is "
                                 "only for this machine (127.0.0.1, ::1, localhost). Nothing "
                                 "was sent\n")
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody knocked
        # the control: with the test-only flag the same command does connect
        accepted: list[socket.socket] = []

        def accept_and_close() -> None:
            connection, _ = listener.accept()
            accepted.append(connection)
            connection.close()

        listener.settimeout(30)
        knocker = threading.Thread(target=accept_and_close)
        knocker.start()
        allowed = bwv_upload(camera, f"http://{address}:{port}", "--station-key", str(pin),
                             "--insecure-http-for-tests")
        knocker.join(30)
        assert accepted and allowed.returncode == 1
    finally:
        listener.close()
    assert snapshot(camera / "recordings") == before


# --- the receipt format ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def station_key(tmp_path_factory: pytest.TempPathFactory) -> DeviceKey:
    return DeviceKey.load_or_create(tmp_path_factory.mktemp("station"), "station_key.pem")


def a_receipt(nonce: str = "ab" * 16) -> Receipt:
    return Receipt("station-0123456789abcdef", "20261123T070000Z-cam7", "cam7", "a" * 64,
                   {"000001.mp4": "b" * 64, "000002.mp4": "c" * 64}, True, "verified", "ok",
                   1_795_000_000_000_000, nonce)


def test_a_signed_receipt_verifies_and_any_edit_breaks_it(station_key: DeviceKey) -> None:
    pin = StationPin("station-0123456789abcdef", station_key.public_key)
    line = sign_receipt(a_receipt(), station_key.sign)
    assert verify_receipt(pin, line, "ab" * 16) == a_receipt()
    edits = [('"verified":true', '"verified":false'), ('"c' + "c" * 63, '"d' + "d" * 63),
             ('"status":"verified"', '"status":"failed"'), ("cam7\"", "cam8\""),
             ('"station_time_us":1795', '"station_time_us":1796')]
    for old, new in edits:
        assert old in line
        with pytest.raises(ReceiptError, match="not signed by the pinned station"):
            verify_receipt(pin, line.replace(old, new, 1), "ab" * 16)
    with pytest.raises(ReceiptError, match="replayed"):
        verify_receipt(pin, line, "cd" * 16)
    other = StationPin("station-ffffffffffffffff", station_key.public_key)
    with pytest.raises(ReceiptError, match="names station"):
        verify_receipt(other, line, "ab" * 16)
    # sig sits in the middle: removing its text gives exactly the signed bytes
    _, signature, signed = parse_receipt(line)
    assert re.sub(r',"sig":"[^"]*"', "", line).encode() == signed
    assert base64.b64encode(signature).decode() in line


def test_a_receipt_in_any_but_the_canonical_form_is_refused(station_key: DeviceKey) -> None:
    """A genuine receipt with a duplicate member in front (json.loads keeps the last one, so it
    would still verify), spaces, or a needless escape: refused, so that what the camera keeps
    is exactly what was signed and openssl checks it as formats.md says."""
    pin = StationPin("station-0123456789abcdef", station_key.public_key)
    line = sign_receipt(a_receipt(), station_key.sign)
    disguised = [
        '{"verified":false,"status":"failed","manifest_sha256":"' + "c" * 64 + '",' + line[1:],
        line.replace('","', '", "', 1),
        line.replace('"cam7"', '"cam\\u0037"', 1),
    ]
    for text in disguised:
        assert json.loads(text)["device_id"] == "cam7"  # the same members, read the usual way
        with pytest.raises(ReceiptError, match="canonical form"):
            verify_receipt(pin, text, "ab" * 16)
    assert verify_receipt(pin, line, "ab" * 16) == a_receipt()


@pytest.mark.parametrize("text", [
    None, 42, "", "[]", "{", '{"scheme":"bwv-receipt/1"}', "x" * (MAX_RECEIPT_BYTES + 1),
    "[" * 100_000, '{"a":' * 50_000,
])
def test_malformed_receipts_raise_only_receipt_error(station_key: DeviceKey,
                                                     text: object) -> None:
    pin = StationPin("station-0123456789abcdef", station_key.public_key)
    with pytest.raises(ReceiptError):
        verify_receipt(pin, text, "ab" * 16)


MEMBER_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                          st.floats(allow_nan=True), st.text(max_size=20),
                          st.lists(st.dictionaries(st.text(max_size=8), st.text(max_size=8),
                                                   max_size=3), max_size=3))


@settings(max_examples=300, deadline=None)
@given(member=st.sampled_from(sorted(json.loads(sign_receipt(a_receipt(), lambda m: b"\0" * 64)))),
       value=MEMBER_VALUES)
def test_any_member_of_any_type_is_a_receipt_error_or_a_receipt(member: str,
                                                                value: object) -> None:
    obj = json.loads(sign_receipt(a_receipt(), lambda message: b"\0" * 64))
    obj[member] = value
    try:
        parse_receipt(json.dumps(obj))
    except ReceiptError:
        pass


# --- settings and the docked upload ----------------------------------------------------------


def test_a_bad_station_key_is_a_usage_error_of_one_line(camera: Path) -> None:
    result = bwv_upload(camera, "http://127.0.0.1:9", "--station-key", "MCowBQYDK2VwAyEA")
    assert result.returncode == 2
    assert result.stderr.startswith("bwv upload: --station-key / station.public_key: ")
    assert result.stderr.count("\n") == 1 and "bwv station key" in result.stderr


def test_the_docked_upload_deletes_only_with_the_pin_of_its_settings(
        camera: Path, camera_key: DeviceKey, real_station: ServedStation,
        caplog: pytest.LogCaptureFixture) -> None:
    from recorder.device.assembly import station_upload
    from recorder.settings import Settings

    unpinned = Settings.load(None).with_values(station_url=real_station.url,
                                               device_device_id="cam7")
    upload = station_upload(unpinned, camera_key, camera / "recordings")
    before = snapshot(camera / "recordings")
    assert upload is not None and upload() is False
    assert "no station key pinned (station.public_key)" in caplog.text
    assert snapshot(camera / "recordings") == before
    pinned = unpinned.with_values(station_public_key=str(real_station.pin))
    upload = station_upload(pinned, camera_key, camera / "recordings")
    assert upload is not None and upload() is True
    assert list((camera / "recordings").iterdir()) == []
    assert len((camera / "receipts.jsonl").read_text().splitlines()) == 2


# --- a station whose answer never ends -------------------------------------------------------


class EndlessAnswer(BaseHTTPRequestHandler):
    """Answers every request with a JSON-looking body that never ends (no Content-Length, the
    connection closed only by the client): a hostile station trying to fill the camera's RAM."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        filler = b" " * (1 << 16)
        try:
            self.wfile.write(b'{"station_id":"')
            while True:
                self.wfile.write(filler)
        except OSError:
            pass  # the camera hung up: what this test waits for


def test_an_answer_that_never_ends_is_cut_off_and_nothing_is_deleted(
        camera: Path, tmp_path: Path) -> None:
    pin = make_store(tmp_path / "station").identity.pin
    server = ThreadingHTTPServer(("127.0.0.1", 0), EndlessAnswer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    before = snapshot(camera / "recordings")
    try:
        started = time.monotonic()
        result = bwv_upload(camera, f"http://127.0.0.1:{server.server_address[1]}",
                            "--station-key", str(pin))
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "answer_too_large" in result.stderr and "16 MiB" in result.stderr
    assert snapshot(camera / "recordings") == before
    assert elapsed < 30  # stopped reading at the cap, not at the end of an endless answer
