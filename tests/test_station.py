"""The station's device API on a real uvicorn server on loopback with SQLite and local blobs:
enrollment, signed requests (unsigned, unenrolled, bad signature, stale, replayed), segment upload
by SHA-256 (idempotent, checked on arrival, disk full), manifest verification, and the audit
chain, which `bwv station audit --verify` checks and which catches edits."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update
from support.station import (FullBlobStore, ServedStation, camera_key, make_recording, make_store,
                             serve, station, store)
from support.http import http

from recorder.integrity import manifest
from recorder.integrity.keys import DeviceKey
from recorder.integrity.request_signing import sign_request
from recorder.station import audit, catalogue
from recorder.station.errors import UNAUTHORISED_MESSAGE, EnrollmentError
from recorder.station.evidence_store import EvidenceStore

__all__ = ["camera_key", "station", "store"]  # fixtures used by name below

API = "/api/v1"


@pytest.fixture()
def recording(tmp_path: Path, camera_key: DeviceKey) -> Path:
    return make_recording(tmp_path / "recordings", camera_key)


def signed(station: ServedStation, key: DeviceKey, method: str, path: str, body: bytes = b"",
           device: str = "cam7", **kwargs: Any) -> dict[str, str]:
    return sign_request(key, device, method, path, hashlib.sha256(body).hexdigest(),
                        station_id=station.station_id, **kwargs)


def put(station: ServedStation, key: DeviceKey, path: str, body: bytes,
        device: str = "cam7") -> httpx.Response:
    return http.put(station.url + path, content=body, headers=signed(station, key, "PUT", path, body,
                                                                     device))


def segment_path(recording: Path, file: str) -> str:
    return f"{API}/recordings/{recording.name}/segments/{file}"


def refused(response: httpx.Response, caplog: pytest.LogCaptureFixture, reason: str) -> str:
    """Assert the uniform 401 answer, and that the station's log names ``reason``; returns the
    logged line (the answer never says which check failed)."""
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "unauthorised", "message": UNAUTHORISED_MESSAGE}
    lines = [r.getMessage() for r in caplog.records if r.name == "recorder.station"
             and f": {reason}: " in r.getMessage()]
    assert lines, [r.getMessage() for r in caplog.records]
    return lines[-1]


def audit_actions(store: EvidenceStore) -> list[str]:
    return [entry.action for entry in audit.entries(store.engine)]


def upload_all(station: ServedStation, key: DeviceKey, recording: Path) -> httpx.Response:
    for segment in sorted(recording.glob("*.mp4")):
        response = put(station, key, segment_path(recording, segment.name), segment.read_bytes())
        assert response.status_code == 201, response.text
    path = f"{API}/recordings/{recording.name}/manifest"
    return put(station, key, path, (recording / manifest.MANIFEST_NAME).read_bytes())


# --- enrollment and authentication


def test_an_enrolled_device_asks_what_the_station_holds(station: ServedStation,
                                                        camera_key: DeviceKey) -> None:
    path = f"{API}/recordings/20261123T070000Z-cam7"
    response = http.get(station.url + path, headers=signed(station, camera_key, "GET", path))
    assert response.status_code == 200
    assert response.json()["status"] == "unknown" and response.json()["segments"] == {}


def test_re_enrolling_another_key_under_an_enrolled_id_is_refused(store: EvidenceStore,
                                                                  tmp_path: Path) -> None:
    other = DeviceKey.load_or_create(tmp_path / "other")
    with pytest.raises(EnrollmentError, match="already enrolled with another key"):
        store.enroll("cam7", other.public_key, by="admin")
    assert audit_actions(store) == ["enroll"]


def test_an_unsigned_request_is_refused(station: ServedStation,
                                        caplog: pytest.LogCaptureFixture) -> None:
    response = http.get(station.url + f"{API}/recordings/x")
    assert "X-BWV-Device is missing" in refused(response, caplog, "unsigned")


def test_an_unenrolled_device_is_refused_and_the_log_says_how_to_enroll(
        station: ServedStation, store: EvidenceStore, recording: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    stranger = DeviceKey.load_or_create(tmp_path / "stranger")
    segment = recording / "000001.mp4"
    response = put(station, stranger, segment_path(recording, segment.name),
                   segment.read_bytes(), device="cam9")
    logged = refused(response, caplog, "not_enrolled")
    assert "bwv station enroll --data DIR --device-id cam9" in logged
    assert audit_actions(store) == ["enroll"]
    assert not list((tmp_path / "station" / "blobs").glob("??/??/*"))


def test_a_request_signed_by_another_key_is_refused(station: ServedStation, recording: Path,
                                                    tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    impostor = DeviceKey.load_or_create(tmp_path / "impostor")
    segment = recording / "000001.mp4"
    response = put(station, impostor, segment_path(recording, segment.name),
                   segment.read_bytes())
    refused(response, caplog, "bad_signature")


def test_a_signature_over_another_path_is_refused(station: ServedStation, camera_key: DeviceKey,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    headers = signed(station, camera_key, "GET", f"{API}/recordings/a")
    response = http.get(station.url + f"{API}/recordings/b", headers=headers)
    refused(response, caplog, "bad_signature")


def test_a_stale_request_is_refused(station: ServedStation, camera_key: DeviceKey,
                                    caplog: pytest.LogCaptureFixture) -> None:
    path = f"{API}/recordings/a"
    headers = signed(station, camera_key, "GET", path, timestamp=int(time.time()) - 301)
    response = http.get(station.url + path, headers=headers)
    refused(response, caplog, "stale")
    fresh = http.get(station.url + path, headers=signed(station, camera_key, "GET", path,
                                                          timestamp=int(time.time()) - 200))
    assert fresh.status_code == 200


def test_a_replayed_request_is_refused(station: ServedStation, store: EvidenceStore,
                                       camera_key: DeviceKey, recording: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    segment = recording / "000001.mp4"
    path = segment_path(recording, segment.name)
    body = segment.read_bytes()
    headers = signed(station, camera_key, "PUT", path, body)
    assert http.put(station.url + path, content=body, headers=headers).status_code == 201
    replay = http.put(station.url + path, content=body, headers=headers)
    refused(replay, caplog, "replayed")
    assert audit_actions(store) == ["enroll", "ingest_segment"]


# --- segments


def test_a_segment_is_stored_under_its_sha256_with_identical_bytes(
        station: ServedStation, store: EvidenceStore, camera_key: DeviceKey, recording: Path,
        tmp_path: Path) -> None:
    segment = recording / "000001.mp4"
    response = put(station, camera_key, segment_path(recording, segment.name),
                   segment.read_bytes())
    assert response.status_code == 201 and response.json()["stored"] is True
    digest = hashlib.sha256(segment.read_bytes()).hexdigest()
    blob = tmp_path / "station" / "blobs" / digest[:2] / digest[2:4] / digest
    oracle = subprocess.run(["sha256sum", str(blob)], capture_output=True, text=True, check=True)
    assert oracle.stdout.split()[0] == digest
    assert store.holdings(recording.name).segments == {"000001.mp4": digest}


def test_uploading_the_same_segment_again_stores_nothing_new(
        station: ServedStation, store: EvidenceStore, camera_key: DeviceKey,
        recording: Path) -> None:
    segment = recording / "000001.mp4"
    first = put(station, camera_key, segment_path(recording, segment.name), segment.read_bytes())
    again = put(station, camera_key, segment_path(recording, segment.name), segment.read_bytes())
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {"stored": False, "already_held": True,
                            "sha256": hashlib.sha256(segment.read_bytes()).hexdigest()}
    assert audit_actions(store) == ["enroll", "ingest_segment"]


def test_a_segment_with_a_wrong_hash_is_refused_and_never_stored(
        station: ServedStation, store: EvidenceStore, camera_key: DeviceKey, recording: Path,
        tmp_path: Path) -> None:
    segment = recording / "000001.mp4"
    path = segment_path(recording, segment.name)
    body = segment.read_bytes()
    headers = sign_request(camera_key, "cam7", "PUT", path, hashlib.sha256(body).hexdigest(),
                           station_id=station.station_id)
    damaged = body[:100] + bytes([body[100] ^ 1]) + body[101:]
    response = http.put(station.url + path, content=damaged, headers=headers)
    assert response.status_code == 422 and response.json()["error"] == "hash_mismatch"
    assert "refused, nothing stored" in response.json()["message"]
    assert store.holdings(recording.name).status == "unknown"
    blobs = tmp_path / "station" / "blobs"
    assert not list(blobs.glob("??/??/*")) and not list((blobs / ".partial").iterdir())
    assert audit_actions(store) == ["enroll", "refused"]
    assert audit.verify(store.engine).ok


def test_another_file_under_a_held_segment_name_is_a_conflict(
        station: ServedStation, camera_key: DeviceKey, recording: Path) -> None:
    path = segment_path(recording, "000001.mp4")
    assert put(station, camera_key, path, (recording / "000001.mp4").read_bytes()
               ).status_code == 201
    response = put(station, camera_key, path, (recording / "000002.mp4").read_bytes())
    assert response.status_code == 409 and "a sealed segment never changes" in response.text


def test_a_full_disk_refuses_the_segment_with_507_and_stores_nothing(
        tmp_path: Path, camera_key: DeviceKey, recording: Path) -> None:
    blobs = FullBlobStore(tmp_path / "full" / "blobs", room=1000)
    store = make_store(tmp_path / "full", blobs=blobs)
    store.enroll("cam7", camera_key.public_key, by="admin")
    served = serve(store)
    try:
        segment = recording / "000001.mp4"
        response = put(served, camera_key, segment_path(recording, segment.name),
                       segment.read_bytes())
    finally:
        served.stop()
    assert response.status_code == 507 and response.json()["error"] == "storage_full"
    assert "the camera keeps its copy" in response.json()["message"]
    assert store.holdings(recording.name).status == "unknown"
    assert not list((blobs.root / ".partial").iterdir())
    assert audit.verify(store.engine).ok and audit_actions(store) == ["enroll"]


# --- manifests and verification


def test_a_complete_recording_verifies_when_its_manifest_arrives(
        station: ServedStation, store: EvidenceStore, camera_key: DeviceKey,
        recording: Path) -> None:
    response = upload_all(station, camera_key, recording)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verified"] is True and body["status"] == "verified"
    assert body["verify_summary"] == "ok" and body["problems"] == []
    lines = (recording / manifest.MANIFEST_NAME).read_bytes()
    assert body["manifest_sha256"] == hashlib.sha256(lines).hexdigest()
    assert body["segments"] == {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
                                for path in recording.glob("*.mp4")}
    row = store.recording(recording.name)
    assert (row.officer_id, row.utc_start, row.segment_count) == (
        "PC 1234", "2026-11-23T07:00:00.000000Z", 2)
    with store.engine.connect() as conn:
        assert len(list(conn.execute(select(catalogue.markers)))) == 1
    assert audit_actions(store) == ["enroll", "ingest_segment", "ingest_segment", "ingest"]
    # the same manifest again: the stored result, no second ingest entry
    again = put(station, camera_key, f"{API}/recordings/{recording.name}/manifest", lines)
    # (each answer carries its own receipt: another nonce, another station time)
    assert again.json()["receipt"] != body["receipt"]
    assert dict(again.json(), receipt=None) == dict(body, receipt=None)
    assert audit_actions(store)[-1] == "ingest"
    assert len(audit_actions(store)) == 4


def test_a_manifest_before_its_segments_fails_verification_then_passes_once_they_arrive(
        station: ServedStation, store: EvidenceStore, camera_key: DeviceKey,
        recording: Path) -> None:
    path = f"{API}/recordings/{recording.name}/manifest"
    early = put(station, camera_key, path, (recording / manifest.MANIFEST_NAME).read_bytes())
    assert early.json()["verified"] is False and early.json()["status"] == "failed"
    assert "missing_file" in {problem["code"] for problem in early.json()["problems"]}
    assert upload_all(station, camera_key, recording).json()["verified"] is True


def test_a_manifest_signed_by_another_key_fails_verification(
        station: ServedStation, store: EvidenceStore, camera_key: DeviceKey, tmp_path: Path) -> None:
    forger = DeviceKey.load_or_create(tmp_path / "forger")
    forged = make_recording(tmp_path / "forged", forger)
    body = upload_all(station, camera_key, forged).json()
    assert body["verified"] is False
    assert body["problems"][0]["code"] == "key"
    assert "is not the trusted key" in body["verify_summary"]


def test_a_manifest_naming_another_device_is_refused(station: ServedStation, store: EvidenceStore,
                                                     camera_key: DeviceKey,
                                                     tmp_path: Path) -> None:
    other = make_recording(tmp_path / "other", camera_key, device_id="cam8")
    path = f"{API}/recordings/{other.name}/manifest"
    response = put(station, camera_key, path, (other / manifest.MANIFEST_NAME).read_bytes())
    assert response.status_code == 400 and "by device 'cam8'" in response.json()["message"]


# --- the audit chain


def test_the_audit_chain_verifies_and_catches_an_edited_entry(
        station: ServedStation, store: EvidenceStore, camera_key: DeviceKey,
        recording: Path) -> None:
    upload_all(station, camera_key, recording)
    check = audit.verify(store.engine)
    assert check.ok and check.entries == 4
    with store.engine.begin() as conn:
        line = conn.execute(select(catalogue.audit.c.line)
                            .where(catalogue.audit.c.seq == 2)).scalar_one()
        conn.execute(update(catalogue.audit).where(catalogue.audit.c.seq == 2)
                     .values(line=line.replace('"bytes":', '"bytes":1')))
    problems = audit.verify(store.engine).problems
    assert any(p.startswith("entry 2: its stored hash") for p in problems)


def test_the_audit_chain_catches_a_removed_last_entry(
        station: ServedStation, store: EvidenceStore, camera_key: DeviceKey,
        recording: Path) -> None:
    upload_all(station, camera_key, recording)
    with store.engine.begin() as conn:
        conn.execute(delete(catalogue.audit).where(catalogue.audit.c.seq == 4))
    assert audit.verify(store.engine).problems == [
        "the head says entry 4 is the newest, but the log ends at entry 3: entries were "
        "removed from the end"]


def test_each_audit_line_chains_to_the_one_before_by_sha256sum(
        station: ServedStation, store: EvidenceStore, camera_key: DeviceKey, recording: Path,
        tmp_path: Path) -> None:
    upload_all(station, camera_key, recording)
    lines = [entry.line for entry in audit.entries(store.engine)]
    exported = tmp_path / "audit.jsonl"
    exported.write_text("".join(line + "\n" for line in lines))
    for number in range(2, len(lines) + 1):
        previous = subprocess.run(f"sed -n {number - 1}p {exported} | sha256sum", shell=True,
                                  capture_output=True, text=True, check=True).stdout.split()[0]
        assert f'"prev":"{previous}"' in lines[number - 1]
