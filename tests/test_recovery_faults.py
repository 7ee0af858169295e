"""Faults found in review, pinned: nothing recorded is ever left out of the evidence chain."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from support.recording import manifest_lines, settings

from recorder import durability
from recorder.board import BoardSettings, ScriptedBoard
from recorder.capture.camera import SyntheticCamera, VideoFormat
from recorder.capture.clock import ClockAnchor
from recorder.cli.record import record
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import MANIFEST_NAME, RecordingHeader
from recorder.integrity.verify import verify_recording
from recorder.storage.recording import FileRecording, recover_interrupted
from recorder.uploader import LocalRecordingError, Uploader, read_sealed


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DeviceKey]:
    tmp = tmp_path_factory.mktemp("sealed")
    config = settings(tmp, audio_source="none")
    with ScriptedBoard(BoardSettings()) as board:
        path = record(config, board, duration_s=3.0, trigger_after_s=1.0,
                      recordings_dir=tmp / "recordings")
    return path, DeviceKey.load_or_create(config.data_dir)


def copy_of(recording: Path, tmp_path: Path) -> Path:
    target = tmp_path / "recordings" / recording.name
    shutil.copytree(recording, target)
    return target


def cut_manifest_before_last_segment(recording: Path) -> str:
    """What a power cut between a segment's rename and its manifest line leaves."""
    lines = (recording / MANIFEST_NAME).read_bytes().splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if b'"type":"segment"' in line)
    (recording / MANIFEST_NAME).write_bytes(b"".join(lines[:last]))
    return str(manifest_lines_from(lines[last])["file"])


def manifest_lines_from(line: bytes) -> dict[str, object]:
    import json
    return dict(json.loads(line))


def test_a_segment_renamed_but_never_entered_is_recovered_into_the_manifest(
        sealed: tuple[Path, DeviceKey], tmp_path: Path) -> None:
    recording = copy_of(sealed[0], tmp_path)
    orphan = cut_manifest_before_last_segment(recording)
    assert recover_interrupted(recording.parent, sealed[1]) == [recording]
    report = verify_recording(recording, trusted_key=sealed[1].public_key)
    assert report.ok, report
    entered = [line for line in manifest_lines(recording) if line["type"] == "segment"]
    assert entered[-1]["file"] == orphan and entered[-1]["recovered"] is True


def test_one_damaged_recording_does_not_stop_the_others_from_being_recovered(
        sealed: tuple[Path, DeviceKey], tmp_path: Path) -> None:
    damaged = copy_of(sealed[0], tmp_path)
    cut_manifest_before_last_segment(damaged)
    data = bytearray((damaged / MANIFEST_NAME).read_bytes())
    data[40] ^= 1  # line 1 no longer verifies
    (damaged / MANIFEST_NAME).write_bytes(bytes(data))
    healthy = tmp_path / "recordings" / "zz-healthy"
    shutil.copytree(sealed[0], healthy)
    cut_manifest_before_last_segment(healthy)
    assert recover_interrupted(tmp_path / "recordings", sealed[1]) == [healthy]
    assert verify_recording(healthy).ok


def test_the_uploader_keeps_a_recording_whose_directory_holds_unlisted_media(
        sealed: tuple[Path, DeviceKey], tmp_path: Path) -> None:
    recording = copy_of(sealed[0], tmp_path)
    (recording / "000099.mp4").write_bytes(b"footage the manifest does not list")
    local = read_sealed(recording)
    assert local is not None
    with pytest.raises(LocalRecordingError, match="000099.mp4"):
        Uploader._delete_local(local)
    assert (recording / MANIFEST_NAME).exists() and len(list(recording.glob("*.mp4"))) >= 2


def test_a_failed_write_is_sealed_as_a_recovered_segment_with_an_error_event(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = DeviceKey.load_or_create(tmp_path / "data")
    anchor = ClockAnchor.now()
    header = RecordingHeader("r1", "cam", "", anchor.iso(anchor.monotonic_us),
                             anchor.monotonic_us, "unknown")
    recording = FileRecording(tmp_path / "r1", key, header, anchor, None, segment_seconds=30)
    units: list = []
    camera = SyntheticCamera(VideoFormat(320, 240, 30, 400_000, 0.5), realtime=False, frames=60,
                             start_us=anchor.monotonic_us)
    camera.start(units.append)
    assert camera.finished.wait(60)
    for unit in units[:40]:  # two whole fragments (0.5 s GOPs) and part of a third
        recording.write(unit)
    real_write = durability.write_all

    def card_full(fd: int, data: bytes | memoryview) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(durability, "write_all", card_full)
    with pytest.raises(OSError):
        for unit in units[40:]:
            recording.write(unit)
    monkeypatch.setattr(durability, "write_all", real_write)
    with pytest.raises(Exception):
        recording.seal("stopped")
    lines = manifest_lines(tmp_path / "r1")
    assert lines[-1]["type"] == "sealed" and "writing segments failed" in lines[-1]["reason"]
    assert any(line.get("event") == "error" for line in lines)
    segments = [line for line in lines if line["type"] == "segment"]
    assert segments and segments[-1]["recovered"] is True
    assert not list((tmp_path / "r1").glob("*.partial"))
    assert verify_recording(tmp_path / "r1", trusted_key=key.public_key).ok
