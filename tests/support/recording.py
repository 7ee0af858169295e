"""Recordings for the end-to-end tests: settings for a small synthetic camera, a recording's
manifest lines, its frames' burned-in numbers, ffprobe's view, and a video file to replay."""

from __future__ import annotations

import json
import subprocess
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from recorder.capture.camera.test_pattern import TestPattern, read_frame_number
from recorder.device.assembly import Device
from recorder.integrity.manifest import MANIFEST_NAME
from recorder.settings import Settings

FPS = 30


def settings(tmp_path: Path, **changes: Any) -> Settings:
    base = {"camera_source": "synthetic", "camera_width": 320, "camera_height": 240,
            "camera_fps": FPS, "camera_bitrate_bps": 500_000, "camera_keyframe_interval_s": 0.5,
            "audio_source": "synthetic", "recording_pre_event_s": 1.0,
            "recording_segment_s": 2.0, "storage_data_dir": str(tmp_path / "data"),
            "storage_min_free_mb": 1.0}
    base.update(changes)
    return Settings.load(None).with_values(**base)


def manifest_lines(recording: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (recording / MANIFEST_NAME).read_text().splitlines()]


def frame_numbers(segment: Path) -> list[int | None]:
    with av.open(str(segment)) as container:
        return [read_frame_number(frame) for frame in container.decode(video=0)]


def ffprobe(segment: Path) -> dict[str, Any]:
    result = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of",
                             "json", str(segment)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def start_recording_after(device: Device, buffering_s: float) -> Path:
    """Start the device's sources, buffer for ``buffering_s``, start a recording; its path."""
    device.start()
    time.sleep(buffering_s)
    path = device.controller.start_recording("test")
    assert path is not None, device.controller.errors
    return path


def make_video_file(path: Path, frames: int, fps: int = 25) -> None:
    pattern = TestPattern(320, 240)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.bit_rate = 2_000_000
        from datetime import datetime, timezone
        for n in range(frames):
            frame = pattern.render(n, datetime.now(timezone.utc))
            frame.pts = n
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
