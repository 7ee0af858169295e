"""Evidence is its owner's only (issue 12, finding 9): under a umask of 000, the worst an operator
or a service file can set, a camera's recordings and a station's data directory (key, SQLite
catalogue with its -wal and -shm, blobs) and its export packages are 0700 directories and 0600
files. On the old code they were 0644 in 0755 directories (0666/0777 under this umask)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.station import ingest, make_store, serve_web
from support import warm
from support.http import http

from recorder.capture.clock import ClockAnchor
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import MANIFEST_NAME
from recorder.storage.segment_writer import PARTIAL_SUFFIX, recover_segment

@pytest.fixture()
def umask_000() -> Iterator[None]:
    """This test process creates files under umask 000 (the station runs in it, in threads)."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def loose_modes(root: Path) -> list[str]:
    """Every directory under ``root`` (itself included) not 0700, every file not 0600."""
    found = []
    for path in [root, *sorted(root.rglob("*"))]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        wanted = 0o700 if path.is_dir() else 0o600
        if mode != wanted:
            found.append(f"{path.relative_to(root.parent)} {mode:o}")
    return found


def record(tmp_path: Path) -> Path:
    """A recording by `bwv record --fast` in a real process under umask 000."""
    made = warm.run(["record", "--fast", "--audio", "synthetic", "--size",
                           "320x240", "--pre-event", "1", "--duration", "3", "--out",
                           str(tmp_path / "camera" / "recordings")],
                          env=dict(os.environ, BWV_DATA_DIR=str(tmp_path / "camera"),
                                   PYTHONPATH=""),
                          cwd="/", timeout=300, umask=0)
    assert made.returncode == 0, made.stderr
    return Path(made.stdout.strip())


def test_a_camera_writes_its_recordings_0700_and_0600_under_umask_000(tmp_path: Path) -> None:
    recording = record(tmp_path)
    assert (recording / MANIFEST_NAME).is_file() and list(recording.glob("*.mp4"))
    assert loose_modes(tmp_path / "camera" / "recordings") == []
    assert loose_modes(tmp_path / "camera") == []  # the key too, and the data directory


def test_recovery_leaves_a_recovered_segment_0600(tmp_path: Path, umask_000: None) -> None:
    recording = record(tmp_path)
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    partial = crashed / ("000001.mp4" + PARTIAL_SUFFIX)
    shutil.copyfile(recording / "000001.mp4", partial)
    os.chmod(partial, 0o666)  # as an older version, or a umask of 000, left it
    segment = recover_segment(partial, clock=ClockAnchor.now())
    assert segment is not None
    assert stat.S_IMODE((crashed / "000001.mp4").stat().st_mode) == 0o600


def test_a_station_keeps_its_data_0700_and_0600_under_umask_000(tmp_path: Path,
                                                                 umask_000: None) -> None:
    recording = record(tmp_path)
    device_id = json.loads((recording / MANIFEST_NAME).read_text().splitlines()[0])["device_id"]
    station = tmp_path / "station"
    store = make_store(station)  # makes the directory 0777 first, as a careless operator would
    store.enroll(device_id, DeviceKey.load_or_create(tmp_path / "camera").public_key, by="admin")
    served = serve_web(store)
    try:
        assert ingest(store, recording, device_id=device_id).verified
        assert http.get(served.url + "/login", timeout=10).status_code == 200
        names = {path.name for path in station.iterdir()}
        assert {"catalogue.sqlite3", "catalogue.sqlite3-wal", "catalogue.sqlite3-shm",
                "station_key.pem", "blobs"} <= names, names
        assert loose_modes(station) == []
    finally:
        served.stop()
    exported = warm.run(["station", "export", recording.name, "--data",
                               str(station), "--out", str(tmp_path / "exports" / "x.zip"),
                               "--purpose", "court", "--by", "insp"],
                              env=dict(os.environ, PYTHONPATH=""), cwd="/",
                              timeout=120, umask=0)
    assert exported.returncode == 0, exported.stderr
    assert stat.S_IMODE((tmp_path / "exports" / "x.zip").stat().st_mode) == 0o600
    assert loose_modes(station) == []

