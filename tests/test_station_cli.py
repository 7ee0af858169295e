"""`bwv station ...` and `bwv upload` as a user runs them: enroll with the key `bwv doctor`
prints, upload with the CLI, audit --verify (exit 0, and 1 once an entry is edited), hold,
release, sweep, stats and list, and usage errors with exit 2."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update
from support.station import camera, make_store, serve

from recorder import cli
from recorder.integrity import keys
from recorder.integrity.keys import DeviceKey
from recorder.station import catalogue

__all__ = ["camera"]  # fixtures used by name below

# what is uploaded, catalogued or kept is checked here, not durability: fsync does nothing
pytestmark = pytest.mark.usefixtures("no_fsync")


def bwv(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_enroll_accepts_the_one_line_key_and_audit_verify_passes(
        tmp_path: Path, camera: tuple[Path, DeviceKey],
        capsys: pytest.CaptureFixture[str]) -> None:
    station = str(tmp_path / "station")
    one_line = keys.public_key_spki_b64(camera[1].public_key)
    code, out, _ = bwv("station", "enroll", "--data", station, "--device-id", "cam7",
                       "--public-key", one_line, "--by", "sgt-lee", capsys=capsys)
    pin = make_store(tmp_path / "station").identity.pin_line()
    assert code == 0 and out == (f"enrolled cam7: key sha256 {camera[1].fingerprint}\n"
                                 "set this station's key on the camera (station.public_key in "
                                 "its settings, or `bwv upload --station-key`), so that it "
                                 f"deletes only on this station's signed receipts:\n{pin}\n")
    code, out, _ = bwv("station", "key", "--data", station, capsys=capsys)
    assert code == 0 and out == f"{pin}\n"
    code, out, _ = bwv("station", "audit", "--data", station, "--verify", capsys=capsys)
    assert code == 0 and out.startswith("audit chain OK: 1 entries")
    code, out, _ = bwv("station", "audit", "--data", station, capsys=capsys)
    entry = json.loads(out)
    assert (entry["action"], entry["actor"], entry["seq"]) == ("enroll", "sgt-lee", 1)


def test_enroll_reads_a_pem_file_and_refuses_a_second_key(
        tmp_path: Path, camera: tuple[Path, DeviceKey],
        capsys: pytest.CaptureFixture[str]) -> None:
    pem = tmp_path / "cam7.pem"
    pem.write_text(camera[1].public_key_pem)
    station = str(tmp_path / "station")
    assert bwv("station", "enroll", "--data", station, "--device-id", "cam7", "--public-key",
               str(pem), capsys=capsys)[0] == 0
    other = DeviceKey.load_or_create(tmp_path / "other")
    code, _, err = bwv("station", "enroll", "--data", station, "--device-id", "cam7",
                       "--public-key", other.public_key_raw.hex(), capsys=capsys)
    assert code == 1 and "already enrolled with another key" in err


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BWV_STATION_DATA", raising=False)
    code, _, err = bwv("station", "stats", capsys=capsys)
    assert code == 2 and "give the station's data directory with --data DIR" in err
    code, _, err = bwv("station", "enroll", "--data", str(tmp_path), "--device-id", "cam7",
                       "--public-key", "not-a-key", capsys=capsys)
    assert code == 2 and "not valid base64" in err
    code, _, err = bwv("upload", "--data", str(tmp_path / "nothing"), "--station",
                       "http://127.0.0.1:9", capsys=capsys)
    assert code == 2 and "no device key" in err
    assert bwv("station", capsys=capsys)[0] == 2


def test_bwv_upload_sends_verifies_and_deletes(tmp_path: Path, camera: tuple[Path, DeviceKey],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data, key = camera
    store = make_store(tmp_path / "station")
    store.enroll("cam7", key.public_key, by="admin")
    served = serve(store)
    try:
        code, out, err = bwv("upload", "--station", served.url, "--data", str(data),
                             "--device-id", "cam7", "--station-key", str(served.pin),
                             capsys=capsys)
    finally:
        served.stop()
    assert code == 0, err
    assert out == ("uploaded 20261123T070000Z-cam7: 2 segments sent, 0 already held; verified "
                   "by the station, deleted here\n")
    assert list((data / "recordings").iterdir()) == []


def test_bwv_upload_exits_1_and_keeps_the_recording_when_refused(
        tmp_path: Path, camera: tuple[Path, DeviceKey],
        capsys: pytest.CaptureFixture[str]) -> None:
    data, _ = camera
    store = make_store(tmp_path / "station")  # nothing enrolled
    served = serve(store)
    try:
        code, _, err = bwv("upload", "--station", served.url, "--data", str(data),
                           "--device-id", "cam7", "--attempts", "1", "--station-key",
                           str(served.pin), capsys=capsys)
    finally:
        served.stop()
    assert code == 1 and "kept 20261123T070000Z-cam7: the station refused (401 unauthorised)" in err
    assert len(list((data / "recordings").iterdir())) == 1


def test_audit_verify_exits_1_after_an_entry_is_edited(
        tmp_path: Path, camera: tuple[Path, DeviceKey],
        capsys: pytest.CaptureFixture[str]) -> None:
    station = tmp_path / "station"
    store = make_store(station)
    store.enroll("cam7", camera[1].public_key, by="admin")
    store.enroll("cam8", DeviceKey.load_or_create(tmp_path / "k8").public_key, by="admin")
    with store.engine.begin() as conn:
        conn.execute(update(catalogue.audit).where(catalogue.audit.c.seq == 1)
                     .values(actor="someone-else"))
    code, _, err = bwv("station", "audit", "--data", str(station), "--verify", capsys=capsys)
    assert code == 1 and "entry 1: the columns do not match the hashed line" in err


def test_hold_release_sweep_stats_and_list_from_the_command_line(
        tmp_path: Path, camera: tuple[Path, DeviceKey],
        capsys: pytest.CaptureFixture[str]) -> None:
    data, key = camera
    station = tmp_path / "station"
    store = make_store(station)
    store.enroll("cam7", key.public_key, by="admin")
    served = serve(store)
    try:
        assert bwv("upload", "--station", served.url, "--data", str(data), "--device-id",
                   "cam7", "--station-key", str(served.pin), capsys=capsys)[0] == 0
    finally:
        served.stop()
    rid = "20261123T070000Z-cam7"
    base = ["--data", str(station)]
    code, out, _ = bwv("station", "hold", rid, *base, "--reason", "assault complaint",
                       "--case", "CR-2026-118", "--by", "insp-khan", capsys=capsys)
    assert code == 0 and out.startswith(f"held {rid} (hold 1, case CR-2026-118)")
    code, out, _ = bwv("station", "stats", *base, "--json", capsys=capsys)
    assert json.loads(out) | {"bytes_stored": 0} == {
        "recorded": 1, "uploaded": 1, "auto_deleted": 0, "held": 1, "failed_verification": 0,
        "receiving": 0, "bytes_stored": 0}
    code, out, _ = bwv("station", "list", *base, capsys=capsys)
    assert rid in out and "verified" in out
    # kept 31 days from its receipt (today), not from the camera's 2026-11-23
    kept = datetime.date.fromisoformat(out.split("keep until ")[1][:10])
    assert 31 <= (kept - datetime.datetime.now(datetime.timezone.utc).date()).days <= 32
    code, out, _ = bwv("station", "release", rid, *base, "--case", "CR-2026-118", capsys=capsys)
    assert code == 0 and out.startswith(f"released 1 hold(s) on {rid}")
    code, _, err = bwv("station", "release", rid, *base, capsys=capsys)
    assert code == 1 and "has no active hold" in err
    code, out, _ = bwv("station", "sweep", *base, capsys=capsys)
    assert code == 0 and out.startswith("deleted ")  # how many depends on today's date
    code, _, err = bwv("station", "hold", "no-such-recording", *base, "--reason", "r", "--case",
                       "c", capsys=capsys)
    assert code == 1 and "no recording no-such-recording" in err


def test_station_help_reads_like_a_manual() -> None:
    # cwd="/": the installed package, not ./recorder from the source tree
    result = subprocess.run([sys.executable, "-m", "recorder", "station", "serve", "--help"],
                            capture_output=True, text=True, check=True, cwd="/")
    assert "--ssl-certfile" in result.stdout and "--sweep-every" in result.stdout
    result = subprocess.run([sys.executable, "-m", "recorder", "upload", "--help"],
                            capture_output=True, text=True, check=True, cwd="/")
    assert "delete each" in result.stdout and "exit status:" in result.stdout


def test_request_and_export_from_the_command_line(tmp_path: Path, camera: tuple[Path, DeviceKey],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data, key = camera
    station = tmp_path / "station"
    store = make_store(station)
    store.enroll("cam7", key.public_key, by="admin")
    served = serve(store)
    try:
        assert bwv("upload", "--station", served.url, "--data", str(data), "--device-id",
                   "cam7", "--station-key", str(served.pin), capsys=capsys)[0] == 0
    finally:
        served.stop()
    rid = "20261123T070000Z-cam7"
    code, out, _ = bwv("station", "request", "--data", str(station), "--ref", "SAR-7",
                       "--requester", "J. Smith", "--from", "2026-11-23T06:59:00Z", "--to",
                       "2026-11-23T07:01:00", "--export", str(tmp_path / "sar"), capsys=capsys)
    assert code == 0 and out.splitlines()[:2] == [
        "recorded request SAR-7: 1 recordings held", f"  held {rid}"]
    assert (tmp_path / "sar" / f"SAR-7-{rid}.zip").is_file()
    code, out, _ = bwv("station", "export", rid, "--data", str(station), "--out",
                       str(tmp_path / "one.zip"), "--purpose", "court", capsys=capsys)
    assert code == 0 and "verification OK" in out
    code, _, err = bwv("station", "request", "--data", str(station), "--ref", "SAR-8",
                       "--requester", "x", "--from", "yesterday", "--to", "now", capsys=capsys)
    assert code == 2 and "--from 'yesterday' is not a UTC time" in err
