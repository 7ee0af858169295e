"""Uploads configured as a camera is: `bwv upload` (a real subprocess) reading its settings file
from $BWV_CONFIG, station.cafile trusted for a real TLS station (a self-signed certificate made
with openssl) and overridden by --cafile, clear errors for a missing CA file and an untrusted
certificate, a kept directory reported once; and the docked upload of recorder.device.assembly using
station.cafile."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.station import (ServedStation, camera, make_certificate, make_store, serve)

from recorder.device.assembly import station_upload
from recorder.integrity.keys import DeviceKey
from recorder.integrity.station_pin import StationPin
from recorder.settings import Settings
from recorder.uploader import CaFileError
from support import warm

__all__ = ["camera"]  # fixtures used by name below

# what is uploaded, catalogued or kept is checked here, not durability: fsync does nothing
pytestmark = pytest.mark.usefixtures("no_fsync")

RID = "20261123T070000Z-cam7"


@pytest.fixture()
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return make_certificate(tmp_path)


@pytest.fixture()
def tls_station(tmp_path: Path, camera: tuple[Path, DeviceKey],
                certificate: tuple[Path, Path]) -> Iterator[ServedStation]:
    store = make_store(tmp_path / "station")
    store.enroll("cam7", camera[1].public_key, by="admin")
    served = serve(store, tls=certificate)
    yield served
    served.stop()


def write_config(path: Path, url: str, data: Path, cafile: Path | None,
                 pin: StationPin | None = None) -> Path:
    lines = ["[device]", 'device_id = "cam7"', "[storage]", f'data_dir = "{data}"', "[station]",
             f'url = "{url}"']
    if cafile is not None:
        lines.append(f'cafile = "{cafile}"')
    if pin is not None:
        lines.append(f'public_key = "{pin}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def bwv_upload(config: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    """`bwv upload ARGS` in a subprocess with $BWV_CONFIG set to ``config`` (cwd="/": the
    installed package)."""
    environ = {**os.environ, "RECORDER_NATIVE": "off"}
    environ.pop("BWV_CONFIG", None)
    if config is not None:
        environ["BWV_CONFIG"] = str(config)
    return warm.run(["upload", "--attempts", "1", *args], cwd="/", env=environ, timeout=120)


def test_bwv_upload_trusts_the_ca_of_the_settings_file_found_by_bwv_config(
        tmp_path: Path, camera: tuple[Path, DeviceKey], certificate: tuple[Path, Path],
        tls_station: ServedStation) -> None:
    data = camera[0]
    config = write_config(tmp_path / "bwv.toml", tls_station.url, data, certificate[0],
                          tls_station.pin)
    result = bwv_upload(config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"uploaded {RID}: 2 segments sent, 0 already held; verified by the "
                             "station, deleted here\n")
    assert list((data / "recordings").iterdir()) == []


def test_bwv_upload_without_the_ca_says_how_to_give_it(
        tmp_path: Path, camera: tuple[Path, DeviceKey], tls_station: ServedStation) -> None:
    data = camera[0]
    config = write_config(tmp_path / "bwv.toml", tls_station.url, data, None, tls_station.pin)
    result = bwv_upload(config)
    assert result.returncode == 1
    assert (f"kept {RID}: the station's certificate is not trusted: give its CA with --cafile or "
            "station.cafile") in result.stderr
    assert "Traceback" not in result.stderr
    assert len(list((data / "recordings").iterdir())) == 1


def test_the_cafile_option_overrides_the_setting(
        tmp_path: Path, camera: tuple[Path, DeviceKey], certificate: tuple[Path, Path],
        tls_station: ServedStation) -> None:
    config = write_config(tmp_path / "bwv.toml", tls_station.url, camera[0],
                          tmp_path / "old-ca.pem", tls_station.pin)  # never read: overridden
    result = bwv_upload(config, "--cafile", str(certificate[0]))
    assert result.returncode == 0, result.stderr


def test_a_missing_ca_file_is_a_usage_error_of_one_line(
        tmp_path: Path, camera: tuple[Path, DeviceKey]) -> None:
    missing = tmp_path / "station-ca.pem"
    config = write_config(tmp_path / "bwv.toml", "https://127.0.0.1:9", camera[0], missing)
    result = bwv_upload(config)
    assert result.returncode == 2
    assert result.stderr == (f"bwv upload: the CA file {missing} (--cafile or station.cafile) "
                             "does not exist: give the PEM certificate of the station's CA, or "
                             "its own\n")


def test_bwv_config_naming_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = bwv_upload(tmp_path / "nope.toml")
    assert result.returncode == 2
    assert result.stderr == f"bwv upload: settings file {tmp_path / 'nope.toml'} does not exist\n"


def test_a_kept_directory_is_reported_once_and_never_called_unsealed(
        tmp_path: Path, camera: tuple[Path, DeviceKey], certificate: tuple[Path, Path],
        tls_station: ServedStation) -> None:
    data = camera[0]
    (data / "recordings" / RID / "notes.txt").write_text("see pocket book p. 12\n")
    config = write_config(tmp_path / "bwv.toml", tls_station.url, data, certificate[0],
                          tls_station.pin)
    first = bwv_upload(config)
    assert first.returncode == 0, first.stderr
    assert first.stdout == (f"uploaded {RID}: 2 segments sent, 0 already held; verified by the "
                            "station; its segments and manifest deleted here, but kept the "
                            "directory because it holds files that are not part of the "
                            "recording: notes.txt\n")
    second = bwv_upload(config)
    assert second.returncode == 0, second.stderr
    assert second.stdout == f"nothing to upload in {data / 'recordings'}\n"
    assert "not sealed" not in second.stdout + second.stderr


# --- the docked upload (what `bwv run` does when the camera is docked)


def test_the_docked_upload_trusts_station_cafile(
        tmp_path: Path, camera: tuple[Path, DeviceKey], certificate: tuple[Path, Path],
        tls_station: ServedStation, caplog: pytest.LogCaptureFixture) -> None:
    data, key = camera
    untrusted = Settings.load(None).with_values(station_url=tls_station.url,
                                                device_device_id="cam7",
                                                station_public_key=str(tls_station.pin))
    upload = station_upload(untrusted, key, data / "recordings")
    assert upload is not None
    with caplog.at_level(logging.WARNING, logger="recorder.device"):
        assert upload() is False
    assert "the station's certificate is not trusted: give its CA with --cafile or " \
           "station.cafile" in caplog.text
    assert len(list((data / "recordings").iterdir())) == 1
    trusted = untrusted.with_values(station_cafile=str(certificate[0]))
    upload = station_upload(trusted, key, data / "recordings")
    assert upload is not None and upload() is True
    assert list((data / "recordings").iterdir()) == []


def test_the_docked_upload_names_a_missing_ca_file(
        tmp_path: Path, camera: tuple[Path, DeviceKey],
        caplog: pytest.LogCaptureFixture) -> None:
    data, key = camera
    missing = tmp_path / "station-ca.pem"
    settings = Settings.load(None).with_values(station_url="https://127.0.0.1:9",
                                               station_cafile=str(missing))
    with caplog.at_level(logging.ERROR, logger="recorder.device"):
        upload = station_upload(settings, key, data / "recordings")
    assert f"station.cafile = {missing} does not exist" in caplog.text
    assert upload is not None
    with pytest.raises(CaFileError, match=f"the CA file {missing} .* does not exist"):
        upload()
    assert len(list((data / "recordings").iterdir())) == 1
