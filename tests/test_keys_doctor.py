"""`bwv doctor` shows the device key's public key and fingerprint, and never creates a key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from recorder.device import doctor
from recorder.integrity import keys
from recorder.integrity.keys import DeviceKey


def doctor_values(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> dict[str, str]:
    monkeypatch.setenv(keys.DATA_DIR_ENV_VAR, str(data_dir))
    return {line.label: line.value for line in doctor.report()}


def test_doctor_says_no_key_yet_and_does_not_create_one(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    values = doctor_values(monkeypatch, tmp_path / "data")
    assert values["device key"].startswith("no device key yet (created on first recording)")
    assert not (tmp_path / "data").exists()


def test_doctor_shows_the_public_key_and_its_fingerprint(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    key = DeviceKey.load_or_create(tmp_path)
    values = doctor_values(monkeypatch, tmp_path)
    assert values["device key"] == str(key.path)
    assert values["device key fingerprint"] == f"sha256 {key.fingerprint}"
    # the one-line public key is the PEM body: usable as `bwv verify --key` and by openssl
    assert values["device public key"] in key.public_key_pem
    (tmp_path / "cam.key").write_text(values["device public key"] + "\n")
    assert keys.public_key_raw(keys.load_public_key(tmp_path / "cam.key")) == key.public_key_raw


def test_doctor_reports_an_exposed_key_instead_of_crashing(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    key = DeviceKey.load_or_create(tmp_path)
    key.path.chmod(0o644)
    values = doctor_values(monkeypatch, tmp_path)
    assert values["device key"].startswith("ERROR: ") and "chmod 600" in values["device key"]


def test_bwv_doctor_prints_the_key_lines(tmp_path: Path) -> None:
    key = DeviceKey.load_or_create(tmp_path)
    result = subprocess.run([sys.executable, "-m", "recorder", "doctor"], check=True,
                            capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", keys.DATA_DIR_ENV_VAR: str(tmp_path),
                                 "HOME": str(tmp_path)}, cwd=tmp_path)
    assert f"sha256 {key.fingerprint}" in result.stdout
