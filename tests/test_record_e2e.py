"""End to end with real encoders: sources -> ring -> controller -> segments + manifest, checked by
`bwv verify`, ffprobe, and the frame numbers burned into the synthetic picture."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.board import BoardSettings, ScriptedBoard
from recorder.cli.record import record
from recorder.device.assembly import Device
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import MANIFEST_NAME
from recorder.integrity.verify import verify_recording
from recorder.storage.interleave import MAX_WAIT_US
from recorder.storage.recording import recover_interrupted
from support.media import ffmpeg_decode_errors
from support.recording import (FPS, ffprobe, frame_numbers, make_video_file, manifest_lines,
                               settings, start_recording_after)

INTERLEAVER_WAIT_S = MAX_WAIT_US / 1e6


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real-time recording: 1.5 s of buffering, trigger, 3 s of recording, 2 s segments."""
    tmp = tmp_path_factory.mktemp("e2e")
    config = settings(tmp)
    with ScriptedBoard(BoardSettings()) as board:
        return record(config, board, duration_s=3.0, trigger_after_s=1.5,
                      recordings_dir=tmp / "recordings")


def test_the_recording_verifies(recording: Path) -> None:
    report = verify_recording(recording)
    assert report.ok, report
    lines = manifest_lines(recording)
    assert lines[0]["type"] == "header" and lines[-1]["type"] == "sealed"
    assert [line["event"] for line in lines if line["type"] == "event"] == ["trigger", "stop"]


def test_pre_event_footage_is_there_and_starts_at_a_keyframe(recording: Path) -> None:
    lines = manifest_lines(recording)
    trigger = next(line for line in lines if line.get("event") == "trigger")
    first_segment = next(line for line in lines if line["type"] == "segment")
    buffered_s = (trigger["pts_us"] - first_segment["first_pts_us"]) / 1e6
    assert 1.0 <= buffered_s < 1.0 + 0.5 + 0.2  # pre-event, at most one GOP (0.5 s) more
    numbers = frame_numbers(recording / first_segment["file"])
    assert numbers[0] is not None and numbers[0] % 15 == 0  # a keyframe of the 0.5 s GOP


def test_no_frame_is_missing_or_repeated_across_the_seam_and_segment_cuts(recording: Path) -> None:
    segments = [line["file"] for line in manifest_lines(recording) if line["type"] == "segment"]
    assert len(segments) >= 2
    numbers: list[int | None] = []
    for name in segments:
        numbers += frame_numbers(recording / name)
    assert None not in numbers
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert len(numbers) >= (1.0 + 3.0) * FPS * 0.9


def test_ffprobe_sees_h264_and_aac_in_every_segment_with_audio_in_sync(recording: Path) -> None:
    lines = manifest_lines(recording)
    trigger_us = next(line["pts_us"] for line in lines if line.get("event") == "trigger")
    for index, line in enumerate(line for line in lines if line["type"] == "segment"):
        probe = ffprobe(recording / line["file"])
        codecs = sorted(stream["codec_name"] for stream in probe["streams"])
        assert codecs == ["aac", "h264"]
        video = next(s for s in probe["streams"] if s["codec_type"] == "video")
        audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
        assert (video["width"], video["height"]) == (320, 240)
        offset_s = float(audio["start_time"]) - float(video["start_time"])
        if index == 0:  # no audio in the pre-event buffer (the default): it starts at the trigger
            assert abs(offset_s - (trigger_us - line["first_pts_us"]) / 1e6) < 2 / FPS
        else:  # later segments: audio never starts later than a frame after the keyframe; it
            # starts before it only when it reached the muxer after the cut (an encoder short of
            # CPU), by no more than the interleaver waits for it (docs/formats.md)
            assert -INTERLEAVER_WAIT_S - 1 / 48_000 <= offset_s < 1 / FPS
        assert ffmpeg_decode_errors(recording / line["file"]) == ""


def test_segments_concatenate_into_one_playable_stream(recording: Path, tmp_path: Path) -> None:
    segments = sorted(recording.glob("*.mp4"))
    joined = tmp_path / "joined.mp4"
    with open(joined, "wb") as out:  # fMP4: init + fragments; later inits are skipped by readers
        for segment in segments:
            out.write(segment.read_bytes())
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"file '{s}'\n" for s in segments))
    result = subprocess.run(["ffmpeg", "-v", "error", "-f", "concat", "-safe", "0", "-i",
                             str(listing), "-c", "copy", "-f", "null", "-"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_sha256sum_agrees_with_the_manifest(recording: Path) -> None:
    for line in manifest_lines(recording):
        if line["type"] == "segment":
            result = subprocess.run(["sha256sum", line["file"]], cwd=recording,
                                    capture_output=True, text=True, check=True)
            assert result.stdout.split()[0] == line["sha256"]


def test_bwv_record_then_bwv_verify_from_the_command_line(tmp_path: Path) -> None:
    env = dict(os.environ, BWV_DATA_DIR=str(tmp_path / "data"))
    made = subprocess.run(
        [sys.executable, "-m", "recorder", "record", "--size", "320x240", "--pre-event", "0.5",
         "--trigger-after", "0.6", "--duration", "1", "--audio", "none", "--out",
         str(tmp_path / "out")], cwd="/", env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    path = Path(made.stdout.strip())
    assert path.parent == tmp_path / "out" and (path / MANIFEST_NAME).exists()
    checked = subprocess.run([sys.executable, "-m", "recorder", "verify", "--json", str(path)],
                             cwd="/", env=env, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout
    assert json.loads(checked.stdout)["ok"] is True


def test_bwv_record_reports_a_bad_setting_as_a_usage_error(tmp_path: Path) -> None:
    made = subprocess.run([sys.executable, "-m", "recorder", "record", "--pre-event", "500",
                           "--duration", "1", "--out", str(tmp_path)], cwd="/",
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 2
    assert "recording.pre_event_s = 500.0 is not allowed" in made.stderr


def test_a_file_source_recorded_fast_keeps_every_frame(tmp_path: Path) -> None:

    clip = tmp_path / "clip.mp4"
    make_video_file(clip, frames=90, fps=30)
    # the whole 3 s clip fits in a 5 s pre-event buffer, however fast the file is read
    config = settings(tmp_path, camera_source=f"file:{clip}", audio_source="none",
                      recording_pre_event_s=5.0)
    with ScriptedBoard(BoardSettings()) as board:
        path = record(config, board, duration_s=10.0, trigger_after_s=0.0, realtime=False,
                      recordings_dir=tmp_path / "recordings")
    assert verify_recording(path).ok
    numbers: list[int | None] = []
    for segment in sorted(path.glob("*.mp4")):
        numbers += frame_numbers(segment)
    assert numbers == list(range(90))


def test_a_power_cut_mid_recording_is_recovered_and_sealed(tmp_path: Path) -> None:
    """Copy a recording's directory while it is being written (what a power cut leaves), then
    recover the copy as the next start would: the last segment is cut to whole fragments,
    entered with recovered: true, the recording sealed, and verify passes."""
    config = settings(tmp_path, recording_segment_s=2.0)
    with ScriptedBoard(BoardSettings()) as board:
        device = Device.build(config, board, recordings_dir=tmp_path / "recordings")
        path = start_recording_after(device, 1.2)
        time.sleep(2.4)  # segment 1 sealed (2 s from the pre-event start), segment 2 in flight
        crashed = tmp_path / "after-power-cut" / path.name
        shutil.copytree(path, crashed)  # mid-write: an unsealed manifest and a .partial segment
        device.close()
    assert list(crashed.glob("*.partial")), "the copy should hold the segment being written"
    key = DeviceKey.load_or_create(config.data_dir)
    assert recover_interrupted(crashed.parent, key) == [crashed]
    report = verify_recording(crashed, trusted_key=key.public_key)
    assert report.ok, report
    lines = manifest_lines(crashed)
    segments = [line for line in lines if line["type"] == "segment"]
    assert segments[-1]["recovered"] is True and not any(s["recovered"] for s in segments[:-1])
    assert lines[-1]["type"] == "sealed" and lines[-1]["reason"] == "recovered after an interruption"
    assert recover_interrupted(crashed.parent, key) == []  # sealed now: nothing to do twice


def test_running_out_of_storage_stops_and_seals_cleanly(tmp_path: Path) -> None:
    config = settings(tmp_path)
    free = [10**12]
    with ScriptedBoard(BoardSettings()) as board:
        device = Device.build(config, board, recordings_dir=tmp_path / "recordings")
        device.controller.storage = lambda: free[0]
        path = start_recording_after(device, 1.0)
        writer = device.controller.writer
        assert writer is not None
        writer.storage = lambda: free[0]
        time.sleep(0.5)
        free[0] = 1000  # the card is full
        assert writer.done.wait(20)
        device.controller.check()
        device.close()
    assert verify_recording(path).ok
    events = [line for line in manifest_lines(path) if line["type"] == "event"]
    assert any(e["event"] == "error" and "storage full" in e["detail"]["reason"] for e in events)
    assert device.controller.state.value == "buffering"
    assert any(c.value == "storage full" for c in device.controller.conditions)
