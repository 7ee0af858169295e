"""Signed export packages, checked with the real openssl binary as the package's README says, and
finding 13 of issue 12: a public-request package disclosed another case's hold ("CASE-001:
assault allegation") and other people's views and exports. Now it carries only the audit
entries about that recording and that request."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from support.station import bwv, camera_key, ingest, make_recording, make_store

from recorder.integrity.keys import DeviceKey
from recorder.station import retention
from recorder.station.audit import Action
from recorder.station.catalogue import parse_utc
from recorder.station.export import export_recording
from recorder.station.public_requests import export_request, record_request

pytestmark = pytest.mark.usefixtures("no_fsync")

__all__ = ["camera_key"]



def unpack(package: Path, into: Path) -> Path:
    with zipfile.ZipFile(package) as archive:
        archive.extractall(into)
    return into


def readme_command(readme: str) -> str:
    """The openssl command the README gives, joined over its continuation line."""
    match = re.search(r"(openssl pkeyutl -verify[^\n]*\\\n[^\n]*)", readme)
    assert match is not None, readme
    return match.group(1).replace("\\\n", " ")


def test_the_package_is_signed_and_openssl_checks_it_as_the_readme_says(
        tmp_path: Path, camera_key: DeviceKey) -> None:
    data = tmp_path / "station"
    store = make_store(data)
    store.enroll("cam7", camera_key.public_key, by="admin")
    recording = make_recording(tmp_path / "recordings", camera_key)
    assert ingest(store, recording).verified
    package = tmp_path / "out.zip"
    result = bwv("station", "export", recording.name, "--data", str(data), "--out", str(package),
                 "--purpose", "court")
    assert result.returncode == 0, result.stderr
    folder = unpack(package, tmp_path / "unpacked")
    readme = (folder / "README.txt").read_text()
    command = readme_command(readme)
    checked = subprocess.run(["sh", "-c", command], cwd=folder, capture_output=True, text=True)
    assert checked.returncode == 0 and "Signature Verified Successfully" in checked.stdout
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True,
                          text=True)
    assert sums.returncode == 0, sums.stdout
    # both fingerprints in the README are those of the keys in the package, by openssl's count
    for pem, expected in (("station_key.pem", store.identity.fingerprint),
                          ("device_key.pem", camera_key.fingerprint)):
        raw = subprocess.run(f"openssl pkey -pubin -in {pem} -outform DER | tail -c 32",
                             shell=True, cwd=folder, capture_output=True, check=True).stdout
        assert hashlib.sha256(raw).hexdigest() == expected
        assert expected in readme
    assert store.identity.station_id in readme

    # the attack: someone without the station key edits the audit entries in the package and
    # recomputes SHA256SUMS; sha256sum is satisfied, the station's signature is not
    audit_file = folder / "audit.jsonl"
    original = audit_file.read_text().splitlines()
    assert len(original) >= 2
    audit_file.write_text("".join(line + "\n" for line in original[1:]))
    lines = (folder / "SHA256SUMS").read_text().splitlines()
    (folder / "SHA256SUMS").write_text("".join(
        (f"{hashlib.sha256(audit_file.read_bytes()).hexdigest()}  audit.jsonl\n"
         if line.endswith("  audit.jsonl") else line + "\n") for line in lines))
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder,
                          capture_output=True).returncode == 0
    forged = subprocess.run(["sh", "-c", command], cwd=folder, capture_output=True, text=True)
    assert forged.returncode != 0 and "Signature Verification Failure" in forged.stdout


def test_a_public_request_package_shows_only_that_request(tmp_path: Path,
                                                           camera_key: DeviceKey) -> None:
    store = make_store(tmp_path / "station")
    store.enroll("cam7", camera_key.public_key, by="admin")
    recording = make_recording(tmp_path / "recordings", camera_key)
    rid = recording.name
    assert ingest(store, recording).verified
    retention.place_hold(store, rid, "assault allegation", "CASE-001", by="dc.jones")
    store.record_access("web:dc.jones@10.0.0.9", Action.VIEW, rid, {"page": "recording"})
    export_recording(store, rid, tmp_path / "court.zip", by="dc.jones",
                     purpose="CASE-001 disclosure to CPS")
    retention.place_hold(store, rid, "other matter", "CASE-002", by="dc.smith")
    retention.release_holds(store, rid, by="dc.smith", reason="no further action",
                            case_ref="CASE-002")

    request = record_request(store, "SAR-1", "A. Member", "stopped on High St",
                             parse_utc("2026-11-23T06:00:00Z"),
                             parse_utc("2026-11-23T08:00:00Z"), by="records.office")
    assert request.matches == (rid,)
    results = export_request(store, "SAR-1", tmp_path / "sar", by="records.office")
    assert [r.path.name for r in results] == [f"SAR-1-{rid}.zip"]
    with zipfile.ZipFile(results[0].path) as package:
        text = package.read("audit.jsonl").decode()
        readme = package.read("README.txt").decode()
    entries = [json.loads(line) for line in text.splitlines()]
    for secret in ("CASE-001", "CASE-002", "assault", "dc.jones", "dc.smith", "CPS"):
        assert secret not in text, secret
    assert {e["action"] for e in entries} == {"ingest_segment", "ingest", "hold"}
    assert [e["detail"]["case_ref"] for e in entries if e["action"] == "hold"] == ["SAR-1"]
    assert all(e["recording_id"] == rid for e in entries)
    assert "request SAR-1 only" in readme

    # the court's own package still carries the recording's whole history
    export_recording(store, rid, tmp_path / "court2.zip", by="dc.jones", purpose="court")
    with zipfile.ZipFile(tmp_path / "court2.zip") as package:
        whole = package.read("audit.jsonl").decode()
    assert "CASE-001" in whole and '"view"' in whole and "SAR-1" in whole
