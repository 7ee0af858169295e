"""Docking end to end: a real recording, a real station on loopback, the dock sense going
active; the camera uploads, the station verifies, and only then is the local copy gone."""

from __future__ import annotations

import json
import time
from pathlib import Path

from support.recording import settings, start_recording_after
from support.station import make_store, serve

from recorder.board import BoardEvent, BoardEventKind, BoardSettings, ScriptedBoard
from recorder.device.assembly import Device
from recorder.integrity.keys import DeviceKey


def record_then_dock(device: Device) -> Path:
    """Record 1.5 s (after 1 s of buffering), stop, dock, wait for the upload, shut down."""
    path = start_recording_after(device, 1.0)
    time.sleep(1.5)
    device.controller.stop_recording("test")
    device.controller.handle(BoardEvent(BoardEventKind.DOCKED, 0.0, "dock"))
    deadline = time.monotonic() + 60
    while not device.controller.upload_results and time.monotonic() < deadline:
        time.sleep(0.05)
    device.close()
    return path


def test_docking_uploads_verifies_and_only_then_deletes(tmp_path: Path) -> None:
    store = make_store(tmp_path / "station")
    station = serve(store)
    try:
        config = settings(tmp_path, station_url=station.url, device_device_id="cam-e2e",
                          station_public_key=str(station.pin))
        key = DeviceKey.load_or_create(config.data_dir)
        store.enroll("cam-e2e", key.public_key, by="test")
        with ScriptedBoard(BoardSettings()) as board:
            device = Device.build(config, board, recordings_dir=tmp_path / "recordings")
            path = record_then_dock(device)
        assert device.controller.upload_results == [True], device.controller.errors
        held = store.holdings(path.name)
        assert held.verified, held.verify_summary
        assert not path.exists()  # deleted only after the station verified it
        # ... and signed a receipt for it, which the camera logged first
        logged = (tmp_path / "receipts.jsonl").read_text().splitlines()
        assert [json.loads(line)["recording_id"] for line in logged] == [path.name]
    finally:
        station.stop()


def test_without_a_station_docking_keeps_everything(tmp_path: Path) -> None:
    config = settings(tmp_path, station_url="http://127.0.0.1:9")  # nothing listens on port 9
    with ScriptedBoard(BoardSettings()) as board:
        device = Device.build(config, board, recordings_dir=tmp_path / "recordings")
        path = record_then_dock(device)
    assert device.controller.upload_results == [False]
    assert (path / "manifest.jsonl").exists() and list(path.glob("*.mp4"))
