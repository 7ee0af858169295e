"""Finding 8 of issue 12, the attack and its defence: with a lost card's `device_key.pem`, four
re-signed manifests (new times, another officer, other footage, a date before enrolment) were
all "verified", and the camera could be neither revoked nor rotated. Now `bwv station revoke`
makes every later upload a 401 and flags what came in since the loss, `bwv station rotate`
moves a camera to a new key (the old one refused, kept to verify what it signed), and `bwv
station assign` holds who wears which camera, stamped beside the camera's claim with a mismatch
flagged. The CLI in real subprocesses; uploads over HTTP to a served station."""

from __future__ import annotations

import datetime
import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.staff import logged_in
from support.station import (bwv, ServedStation, camera_key, make_recording, make_store, serve,
                             serve_web)
from support.http import http

from recorder.integrity import keys
from recorder.integrity.keys import DeviceKey
from recorder.integrity.request_signing import sign_request
from recorder.station import audit
from recorder.station.evidence_store import EvidenceStore

pytestmark = pytest.mark.usefixtures("no_fsync")

__all__ = ["camera_key"]

API = "/api/v1/recordings"



def upload(station: ServedStation, key: DeviceKey, directory: Path,
           device_id: str = "cam7") -> httpx.Response:
    """Send a recording as a camera does: every segment, then the manifest, each request signed
    with ``key``. Returns the first refusal, or the manifest's answer."""
    parts = [(f"{API}/{directory.name}/segments/{path.name}", path.read_bytes())
             for path in sorted(directory.glob("*.mp4"))]
    parts.append((f"{API}/{directory.name}/manifest",
                  (directory / "manifest.jsonl").read_bytes()))
    answer = None
    for path, body in parts:
        headers = sign_request(key, device_id, "PUT", path, hashlib.sha256(body).hexdigest(),
                               station_id=station.station_id)
        answer = http.put(station.url + path, content=body, headers=headers, timeout=30)
        if answer.status_code >= 400:
            return answer
    assert answer is not None
    return answer


def utc(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture()
def station(tmp_path: Path, camera_key: DeviceKey) -> Iterator[tuple[Path, EvidenceStore,
                                                                    ServedStation]]:
    data = tmp_path / "station"
    store = make_store(data)
    store.enroll("cam7", camera_key.public_key, by="admin")
    served = serve(store)
    yield data, store, served
    served.stop()


def forgeries(root: Path, stolen: DeviceKey) -> list[Path]:
    """What a thief makes with the card's key: new times, another officer, other footage, and
    a recording dated before the camera was enrolled."""
    return [make_recording(root, stolen, utc_start="2026-11-24T03:00:00.000000Z"),
            make_recording(root, stolen, utc_start="2026-11-24T04:00:00.000000Z",
                           officer_id="PC 9999"),
            make_recording(root, stolen, utc_start="2026-11-24T05:00:00.000000Z", seconds=6),
            make_recording(root, stolen, utc_start="2026-01-01T00:00:00.000000Z")]


def test_a_stolen_key_cannot_upload_after_revoke_and_what_it_sent_before_is_flagged(
        tmp_path: Path, camera_key: DeviceKey,
        station: tuple[Path, EvidenceStore, ServedStation]) -> None:
    data, store, served = station
    genuine = make_recording(tmp_path / "camera", camera_key)
    assert upload(served, camera_key, genuine).json()["verified"]

    stolen = DeviceKey.load(tmp_path / "camera" / "device_key.pem")  # the card's key file
    forged = forgeries(tmp_path / "thief", stolen)
    early = upload(served, stolen, forged[0])  # before anyone noticed: it is accepted ...
    assert early.status_code == 200 and early.json()["verified"]

    lost = utc(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=30))
    result = bwv("station", "revoke", "--data", str(data), "--device-id", "cam7", "--reason",
                 "camera lost on patrol", "--since", lost, "--by", "sgt.a")
    assert result.returncode == 0, result.stderr
    assert "2 recordings made or received since then are flagged" in result.stdout

    for recording in forged[1:]:  # ... after the revocation, every forgery is refused
        answer = upload(served, stolen, recording)
        assert answer.status_code == 401, answer.text
        assert set(answer.json()) == {"error", "message"}
        assert store.holdings(recording.name).status == "unknown"
    listing = bwv("station", "list", "--data", str(data))
    assert listing.returncode == 0
    flagged = [line for line in listing.stdout.splitlines() if "FLAGGED" in line]
    assert sorted(line.split()[0] for line in flagged) == sorted([genuine.name, forged[0].name])
    assert "camera lost on patrol" in flagged[0]
    devices = bwv("station", "devices", "--data", str(data))
    assert devices.returncode == 0 and "REVOKED" in devices.stdout
    assert camera_key.fingerprint[:16] in devices.stdout
    assert [e.action for e in audit.entries(store.engine)][-1] == "revoke"

    again = bwv("station", "revoke", "--data", str(data), "--device-id", "cam7", "--reason", "x")
    assert again.returncode == 1 and again.stderr.count("\n") == 1
    rotate = bwv("station", "rotate", "--data", str(data), "--device-id", "cam7",
                 "--public-key", keys.public_key_spki_b64(
                     DeviceKey.load_or_create(tmp_path / "new").public_key))
    assert rotate.returncode == 1 and "revoked" in rotate.stderr
    unknown = bwv("station", "revoke", "--data", str(data), "--device-id", "cam99", "--reason",
                  "x")
    assert unknown.returncode == 1 and "station devices --data" in unknown.stderr


def test_rotate_the_new_key_uploads_the_old_is_refused_and_exports_carry_the_right_key(
        tmp_path: Path, camera_key: DeviceKey,
        station: tuple[Path, EvidenceStore, ServedStation]) -> None:
    data, store, served = station
    before = make_recording(tmp_path / "camera", camera_key)
    assert upload(served, camera_key, before).json()["verified"]

    new_key = DeviceKey.load_or_create(tmp_path / "camera-new")
    result = bwv("station", "rotate", "--data", str(data), "--device-id", "cam7",
                 "--public-key", keys.public_key_spki_b64(new_key.public_key))
    assert result.returncode == 0, result.stderr
    assert new_key.fingerprint in result.stdout

    after = make_recording(tmp_path / "camera-new", new_key,
                           utc_start="2026-11-23T09:00:00.000000Z")
    assert upload(served, new_key, after).json()["verified"]
    old_signed = make_recording(tmp_path / "thief", camera_key,
                                utc_start="2026-11-23T10:00:00.000000Z")
    refused = upload(served, camera_key, old_signed)
    assert refused.status_code == 401
    assert store.holdings(old_signed.name).status == "unknown"

    for recording, key in ((before, camera_key), (after, new_key)):
        package = tmp_path / f"{recording.name}.zip"
        exported = bwv("station", "export", recording.name, "--data", str(data), "--out",
                       str(package), "--purpose", "court")
        assert exported.returncode == 0, exported.stderr  # verification OK with its own key
        with zipfile.ZipFile(package) as archive:
            pem = archive.read("device_key.pem").decode()
        assert pem == keys.public_key_pem(key.public_key)

    same = bwv("station", "rotate", "--data", str(data), "--device-id", "cam7", "--public-key",
               keys.public_key_spki_b64(camera_key.public_key))  # a retired key never returns
    assert same.returncode == 1 and "has had key" in same.stderr
    devices = bwv("station", "devices", "--data", str(data))
    assert f"key {new_key.fingerprint[:16]}" in devices.stdout and "keys 2" in devices.stdout


def test_the_stations_officer_is_stamped_beside_the_cameras_and_a_mismatch_is_flagged(
        tmp_path: Path, camera_key: DeviceKey,
        station: tuple[Path, EvidenceStore, ServedStation]) -> None:
    data, store, served = station
    result = bwv("station", "assign", "--data", str(data), "--device-id", "cam7", "--officer",
                 "PC 1234", "--from", "2026-11-23T00:00:00Z", "--to", "2026-11-24T00:00:00Z")
    assert result.returncode == 0, result.stderr
    result = bwv("station", "assign", "--data", str(data), "--device-id", "cam7", "--officer",
                 "PC 5678", "--from", "2026-11-24T00:00:00Z")
    assert result.returncode == 0, result.stderr
    honest = make_recording(tmp_path / "camera", camera_key, officer_id="PC 1234")
    claims = make_recording(tmp_path / "camera", camera_key,
                            utc_start="2026-11-24T07:00:00.000000Z", officer_id="PC 1234")
    assert upload(served, camera_key, honest).json()["verified"]
    assert upload(served, camera_key, claims).json()["verified"]  # signed, so verified ...

    rows = {row.recording_id: row for row in store.list_recordings()}
    assert (rows[honest.name].station_officer_id, rows[honest.name].officer_check) == (
        "PC 1234", "match")
    assert (rows[claims.name].station_officer_id, rows[claims.name].officer_check) == (
        "PC 5678", "mismatch")  # ... and the station says who really wore the camera
    listing = bwv("station", "list", "--data", str(data)).stdout.splitlines()
    line = next(line for line in listing if line.startswith(claims.name))
    assert "PC 1234 (MISMATCH: station says PC 5678)" in line
    assert "MISMATCH" not in next(line for line in listing if line.startswith(honest.name))
    devices = bwv("station", "devices", "--data", str(data))
    assert "officer PC 5678" in devices.stdout

    # an assignment learnt later re-stamps the recordings in its window
    result = bwv("station", "assign", "--data", str(data), "--device-id", "cam7", "--officer",
                 "PC 1234", "--from", "2026-11-24T06:00:00Z", "--to", "2026-11-24T08:00:00Z")
    assert result.returncode == 0 and "1 recordings stamped again" in result.stdout
    assert store.recording(claims.name).officer_check == "match"

    bad = bwv("station", "assign", "--data", str(data), "--device-id", "cam7", "--officer",
              "PC 1", "--from", "2026-11-24T08:00:00Z", "--to", "2026-11-24T07:00:00Z")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1


def test_the_web_pages_show_the_mismatch_and_the_flag(tmp_path: Path,
                                                      camera_key: DeviceKey) -> None:
    store = make_store(tmp_path / "station")
    store.enroll("cam7", camera_key.public_key, by="admin")
    served, pages = serve(store), serve_web(store)
    browser = logged_in(pages.url, store)
    try:
        from recorder.station import devices

        devices.assign(store, "cam7", "PC 5678", by="admin", from_us=0)
        recording = make_recording(tmp_path / "camera", camera_key, officer_id="PC 1234")
        assert upload(served, camera_key, recording).json()["verified"]
        devices.revoke(store, "cam7", "stolen", by="admin", since_us=0)
        index = browser.get("/").text
        page = browser.get(f"/recordings/{recording.name}").text
    finally:
        browser.close()
        served.stop()
        pages.stop()
    for text in (index, page):
        assert "MISMATCH: station says PC 5678" in text
        assert "revoked" in text and "stolen" in text
