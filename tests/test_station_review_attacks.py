"""Attacks from a review of the trust work, each reproduced and now harmless: a public request
whose reference is a detective's case reference, retention counted from the first segment while
the camera deletes on the later receipt, manifests that escape the quota or give a 500, footage
fetched from the web pages without an audit entry, a lost station key silently replaced, a
retention shorter than the camera's deletion counts on, and scratch directories left by failed
web exports."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

import pytest
from support.staff import StaffBrowser, add_staff
from support.station import (FakeClock, bwv, camera_key, catalogue_url, clock, ingest,
                             make_recording, make_store, postgres_cluster, serve, serve_web,
                             store)
from support.http import http

from recorder.integrity.keys import DeviceKey
from recorder.integrity.request_signing import sign_request
from recorder.station import audit, retention
from recorder.station.audit import Action
from recorder.station.errors import ConflictError
from recorder.station.evidence_store import EvidenceStore, Status
from recorder.station.encryption_key import ENCRYPTION_KEY_FILE, ENCRYPTION_PUBLIC_FILE
from recorder.station.identity import STATION_KEY_FILE
from recorder.station.limits import Limits
from recorder.station.public_requests import export_request, record_request

# fixtures used by name below
__all__ = ["camera_key", "catalogue_url", "clock", "postgres_cluster", "store"]

DAY_US = 86_400 * 1_000_000



def blob_bytes(data: Path) -> int:
    return sum(path.stat().st_size for path in (data / "blobs").rglob("*") if path.is_file())


def lines(*objects: dict[str, object]) -> bytes:
    return b"".join(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"
                    for obj in objects)


@pytest.fixture()
def enrolled(tmp_path: Path, camera_key: DeviceKey, clock: FakeClock) -> EvidenceStore:
    store = make_store(tmp_path / "station", clock=clock)
    store.enroll("cam7", camera_key.public_key, by="admin")
    return store


# --- a public request cannot take a case's reference, nor gather its footage -------------------


def test_a_public_request_cannot_use_a_case_reference_or_export_that_case(
        tmp_path: Path, camera_key: DeviceKey, enrolled: EvidenceStore) -> None:
    early = make_recording(tmp_path / "cam", camera_key, utc_start="2026-11-23T07:00:00.000000Z")
    late = make_recording(tmp_path / "cam", camera_key, utc_start="2026-11-23T07:10:00.000000Z")
    assert ingest(enrolled, early).verified and ingest(enrolled, late).verified
    retention.place_hold(enrolled, late.name, "assault, informant present", "2026-0042",
                         by="det.smith")
    window = (enrolled.clock() - 3 * 3_600_000_000, enrolled.clock() - 55 * 60_000_000)
    with pytest.raises(ConflictError, match="already the case reference"):
        record_request(enrolled, "2026-0042", "A. Person", "me", *window, by="clerk")
    request = record_request(enrolled, "SAR-7", "A. Person", "me", *window, by="clerk")
    assert request.matches == (early.name,)
    with pytest.raises(ConflictError, match="reference of a request from the public"):
        retention.place_hold(enrolled, late.name, "another case", "SAR-7", by="det.smith")
    exported = export_request(enrolled, "SAR-7", tmp_path / "out", by="clerk")
    assert [result.path.name for result in exported] == [f"SAR-7-{early.name}.zip"]


# --- retention counts from the verdict the camera deletes on ----------------------------------


def test_a_recording_verified_late_is_kept_31_days_from_its_verification(
        tmp_path: Path, camera_key: DeviceKey, enrolled: EvidenceStore, clock: FakeClock) -> None:
    directory = make_recording(tmp_path / "cam", camera_key)
    segments = sorted(directory.glob("*.mp4"))
    for path in segments:  # the segments on day 0 ...
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        writer = enrolled.blobs.begin(digest)
        writer.write(path.read_bytes())
        enrolled.commit_segment("cam7", directory.name, path.name, writer, digest)
    clock.advance_days(30)  # ... the manifest, and the receipt the camera deletes on, on day 30
    held = enrolled.ingest_manifest("cam7", directory.name,
                                    (directory / "manifest.jsonl").read_bytes())
    assert held.verified
    verified_at = clock.now_us
    clock.advance_days(2)
    assert retention.sweep(enrolled).deleted == []  # day 32: only 2 days after the receipt
    clock.now_us = verified_at + 31 * DAY_US - 1
    assert retention.sweep(enrolled).deleted == []
    clock.now_us = verified_at + 31 * DAY_US
    assert retention.sweep(enrolled).deleted == [directory.name]


# --- manifests: counted, never orphaned, never a 500 ------------------------------------------


def test_manifests_a_device_sends_are_counted_or_not_kept(
        tmp_path: Path, enrolled: EvidenceStore) -> None:
    data = tmp_path / "station"
    before = blob_bytes(data)
    for attempt in range(6):  # a failed recording's manifest sent again and again, 256 KiB each
        enrolled.ingest_manifest("cam7", "R3", lines(
            {"type": "header", "recording_id": "R3", "device_id": "cam7",
             "pad": f"{attempt}" + "x" * (256 << 10)}))
    assert enrolled.recording("R3").status == Status.FAILED
    grown = blob_bytes(data) - before
    assert grown == enrolled.device_bytes("cam7") < 300 << 10  # only the newest is kept


@pytest.mark.parametrize("segment_bytes", [10**30, -10**30, 4 * 2**62])
def test_a_manifest_claiming_any_size_is_catalogued_not_a_500(
        tmp_path: Path, enrolled: EvidenceStore, segment_bytes: int) -> None:
    held = enrolled.ingest_manifest("cam7", "R1", lines(
        {"type": "header", "recording_id": "R1", "device_id": "cam7"},
        {"type": "segment", "file": "000001.mp4", "bytes": segment_bytes, "sha256": "a" * 64}))
    assert not held.verified and held.status == Status.FAILED
    assert 0 <= enrolled.recording("R1").total_bytes <= 2**53


def test_text_no_database_can_hold_is_stored_escaped_on_both(
        tmp_path: Path, catalogue_url: str, camera_key: DeviceKey) -> None:
    store = make_store(tmp_path / "station", db_url=catalogue_url)
    store.enroll("cam7", camera_key.public_key, by="admin")
    body = (b'{"device_id":"cam7","officer_id":"PC \\ud800 \\u0000 1","recording_id":"R2",'
            b'"type":"header","utc_start":"\\u0000"}\n')
    held = store.ingest_manifest("cam7", "R2", body)
    assert held.status == Status.FAILED
    row = store.recording("R2")
    assert row.officer_id == "PC \\ud800 \\x00 1"  # shown escaped, the claim still visible
    assert audit.verify(store.engine, store.identity).ok
    store.engine.dispose()


def test_a_manifest_over_the_quota_is_refused_before_it_is_read(
        camera_key: DeviceKey, store: EvidenceStore) -> None:
    enrolled = store  # the system clock: requests are signed now
    served = serve(enrolled, limits=dataclasses.replace(Limits.default(),
                                                        device_quota_bytes=1000))
    try:
        body = lines({"type": "header", "recording_id": "R9", "device_id": "cam7",
                      "pad": "x" * 2000})
        path = "/api/v1/recordings/R9/manifest"
        answer = http.put(served.url + path, content=body, headers=sign_request(
            camera_key, "cam7", "PUT", path, hashlib.sha256(body).hexdigest(),
            station_id=served.station_id), timeout=30)
    finally:
        served.stop()
    assert answer.status_code == 507 and answer.json()["error"] == "quota"
    assert enrolled.holdings("R9").status == "unknown"


# --- footage fetched from the web pages is audited ---------------------------------------------


def test_every_download_of_footage_from_the_staff_pages_is_audited(
        tmp_path: Path, camera_key: DeviceKey, enrolled: EvidenceStore) -> None:
    directory = make_recording(tmp_path / "cam", camera_key)
    assert ingest(enrolled, directory).verified
    served = serve_web(enrolled)
    browser = StaffBrowser(served.url, enrolled)
    try:
        browser.login(add_staff(enrolled, "mallory", "disclosure"))
        path = f"/recordings/{directory.name}/media/000001.mp4"
        whole = browser.get(path)
        part = browser.get(path, headers={"Range": "bytes=100-"})
    finally:
        browser.close()
        served.stop()
    assert whole.status_code == 200 and part.status_code == 206
    fetches = [entry for entry in audit.entries(enrolled.engine, directory.name)
               if entry.action == Action.DOWNLOAD]
    assert [(entry.detail["file"], entry.detail["range"]) for entry in fetches] == [
        ("000001.mp4", ""), ("000001.mp4", "bytes=100-")]
    assert all(entry.actor == "mallory" for entry in fetches)


def lose_footage(store: EvidenceStore, recording_id: str) -> None:
    """Take every segment of ``recording_id`` out of the blob store behind the station's back
    (a failed disk, an operator's rm)."""
    for sha256 in store.holdings(recording_id).segments.values():
        (store.blobs.root / sha256[:2] / sha256[2:4] / sha256).unlink()


def test_a_failed_web_export_says_why_and_leaves_no_scratch_directory(
        enrolled: EvidenceStore, tmp_path: Path, camera_key: DeviceKey) -> None:
    directory = make_recording(tmp_path / "cam", camera_key)
    assert ingest(enrolled, directory).verified
    lose_footage(enrolled, directory.name)
    before = set(Path(tempfile.gettempdir()).glob("bwv-web-export-*"))
    served = serve_web(enrolled)
    browser = StaffBrowser(served.url, enrolled)
    try:
        browser.login(add_staff(enrolled, "do-lee", "disclosure"))
        browser.get("/")
        path = f"/recordings/{directory.name}"
        answers = [browser.post(f"{path}/export", {"purpose": "p"}) for _ in range(3)]
        media = browser.get(f"{path}/media/000001.mp4")
        after = browser.get("/")  # the same connection still serves: nothing was torn down
    finally:
        browser.close()
        served.stop()
    for answer in [*answers, media]:
        assert answer.status_code == 500, answer
        assert "missing from the blob store" in answer.text and "Traceback" not in answer.text
    assert after.status_code == 200
    assert set(Path(tempfile.gettempdir()).glob("bwv-web-export-*")) == before
    exports = [entry for entry in audit.entries(enrolled.engine, directory.name)
               if entry.action == Action.EXPORT]
    assert exports == []  # nothing was exported, so nothing says it was


def test_an_export_of_lost_footage_fails_with_a_message_not_a_traceback(
        enrolled: EvidenceStore, tmp_path: Path, camera_key: DeviceKey) -> None:
    data = tmp_path / "station"
    directory = make_recording(tmp_path / "cam", camera_key)
    assert ingest(enrolled, directory).verified
    lose_footage(enrolled, directory.name)
    out = tmp_path / "package.zip"
    result = bwv("station", "export", directory.name, "--data", str(data), "--out", str(out),
                 "--purpose", "court")
    assert result.returncode == 1, result.stderr
    assert "missing from the blob store" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


# --- the station's key is never replaced silently ------------------------------------------------


def test_a_lost_station_key_is_reported_not_silently_replaced(
        tmp_path: Path, enrolled: EvidenceStore) -> None:
    data = tmp_path / "station"
    pin = bwv("station", "key", "--data", str(data), "--quiet")
    assert pin.returncode == 0, pin.stderr
    (data / STATION_KEY_FILE).unlink()
    for command in (["list"], ["key"], ["audit", "--verify"], ["serve", "--listen",
                                                               "127.0.0.1:1"]):
        result = bwv("station", *command, "--data", str(data))
        assert result.returncode == 2, (command, result.stderr)
        assert "has lost its key" in result.stderr and "--new-key" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (data / STATION_KEY_FILE).exists()
    made = bwv("station", "key", "--data", str(data), "--new-key", "--quiet")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("bwv-station/1:") and made.stdout != pin.stdout


def test_a_lost_encryption_key_is_reported_not_silently_replaced(
        tmp_path: Path, enrolled: EvidenceStore) -> None:
    """A new encryption key would leave every recording encrypted for the old one unreadable,
    and cameras pinned to the old one would go on encrypting for a key nobody holds."""
    data = tmp_path / "station"
    pin = bwv("station", "key", "--data", str(data), "--quiet")
    assert pin.returncode == 0, pin.stderr
    (data / ENCRYPTION_KEY_FILE).unlink()
    for command in (["list"], ["key"], ["serve", "--listen", "127.0.0.1:1"]):
        result = bwv("station", *command, "--data", str(data))
        assert result.returncode == 2, (command, result.stderr)
        assert "has lost its encryption key" in result.stderr and "--new-key" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (data / ENCRYPTION_KEY_FILE).exists()
    made = bwv("station", "key", "--data", str(data), "--new-key", "--quiet")
    assert made.returncode == 0, made.stderr
    assert made.stdout.split(":")[:3] == pin.stdout.split(":")[:3]  # the same station id and key
    assert made.stdout != pin.stdout  # with another encryption key


def test_a_station_made_before_encryption_gets_its_key_quietly(
        tmp_path: Path, enrolled: EvidenceStore) -> None:
    data = tmp_path / "station"
    assert bwv("station", "key", "--data", str(data), "--quiet").returncode == 0
    (data / ENCRYPTION_KEY_FILE).unlink()
    (data / ENCRYPTION_PUBLIC_FILE).unlink()  # as a station made before either existed
    again = bwv("station", "key", "--data", str(data), "--quiet")
    assert again.returncode == 0, again.stderr
    assert (data / ENCRYPTION_KEY_FILE).exists() and (data / ENCRYPTION_PUBLIC_FILE).exists()


def test_a_retention_shorter_than_31_days_is_refused(tmp_path: Path) -> None:
    for days in ("0", "-1", "30", "x"):
        result = bwv("station", "serve", "--data", str(tmp_path / "s"), "--retention-days", days)
        assert result.returncode == 2 and "--retention-days" in result.stderr, result.stderr
        assert not (tmp_path / "s").exists()
