"""The Raspberry Pi camera source through picamera2's real API, on libcamera's virtual camera.

The tests marked ``picamera2`` run on a Pi, or here under scripts/with-virtual-camera: a real
libcamera (its virtual pipeline handler), picamera2 from PyPI and the recorder's own code, with
only the harness's shims (tests/virtual_camera/) standing in for the Pi's devices. The
forwarder's clock mapping is plain Python and runs everywhere.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import av
import pytest

from recorder import AccessUnit
from recorder.capture.camera.errors import (CameraBusyError, CameraError, NoCameraError,
                                            UnsupportedResolutionError)
from recorder.capture.camera.picamera2_source import (MAX_FIRST_FRAME_DELAY_US,
                                                      EncodedFrameForwarder, Picamera2Camera,
                                                      _open_picamera2)
from recorder.capture.camera.sources import VideoFormat
from recorder.capture.clock import monotonic_us
from support.media import ffmpeg_decode_errors, frame_pts
from support.recording import ffprobe, manifest_lines

BWV = [sys.executable, "-m", "recorder"]  # run from "/": the installed package, not ./recorder
SMALL = VideoFormat(width=640, height=480, fps=30, bitrate_bps=1_000_000, keyframe_interval_s=0.5)


# --- the sensor clock, mapped (plain Python) ----------------------------------------------------


def test_forwarder_keeps_sensor_time_when_it_is_on_the_recorders_clock() -> None:
    got: list[AccessUnit] = []
    forwarder = EncodedFrameForwarder(got.append, clock_us=lambda: 7_050_000)
    forwarder.forward(b"k", True, 0, sensor_origin_us=7_000_000)  # exposed 50 ms ago
    forwarder.forward(b"p", False, 33_333, sensor_origin_us=7_000_000)
    assert [u.pts_us for u in got] == [7_000_000, 7_033_333] and forwarder.on_sensor_clock


@pytest.mark.parametrize("origin_us", [9_000_000, 7_050_000 - MAX_FIRST_FRAME_DELAY_US - 1, None],
                         ids=["in-the-future", "too-old", "absent"])
def test_forwarder_takes_an_implausible_sensor_origin_as_now(origin_us: int | None) -> None:
    """A sensor clock that is not ours (a frame from the future, or older than any pipeline's
    delay) must not put frames at wrong times: the first frame is taken as captured now."""
    got: list[AccessUnit] = []
    forwarder = EncodedFrameForwarder(got.append, clock_us=lambda: 7_050_000)
    forwarder.forward(b"k", True, 0, sensor_origin_us=origin_us)
    forwarder.forward(b"p", False, 33_333, sensor_origin_us=origin_us)
    assert [u.pts_us for u in got] == [7_050_000, 7_083_333] and not forwarder.on_sensor_clock


class FailingPicamera2:
    """``Picamera2()`` failing as picamera2 0.3.38 does: its message, and the cause beneath."""

    cause = ""

    def __init__(self) -> None:
        try:
            raise RuntimeError(self.cause)
        except RuntimeError as exc:
            raise RuntimeError("Camera __init__ sequence did not complete.") from exc


@pytest.mark.parametrize(("cause", "error", "message"), [
    ('No camera number 0 found - use "rpicam-hello --list-cameras"', NoCameraError, "ribbon cable"),
    ("Failed to acquire camera: Device or resource busy", CameraBusyError, "fuser"),
    ("Failed to initialize camera", CameraError, "Failed to initialize camera"),
], ids=["none", "busy", "other"])
def test_picamera2_failures_say_what_to_do(cause: str, error: type[Exception],
                                           message: str) -> None:
    failing = type("Failing", (FailingPicamera2,), {"cause": cause})
    with pytest.raises(error, match=message):
        _open_picamera2(failing)


@pytest.mark.skipif(os.environ.get("BWV_VIRTUAL_CAMERA") == "1"
                    or Path("/proc/device-tree/model").exists(),
                    reason="libcamera is importable here")
def test_without_libcamera_the_source_says_what_cannot_be_imported() -> None:
    with pytest.raises(NoCameraError, match=r"picamera2 cannot be imported \(.*\): on a Raspberry"):
        Picamera2Camera(SMALL).start(lambda unit: None)


# --- picamera2 on a camera ----------------------------------------------------------------------


class SensorStamps:
    """Every SensorTimestamp (microseconds) picamera2 sees, read in its own request callback."""

    def __init__(self) -> None:
        self.us: list[int] = []

    def __call__(self, request: Any) -> None:
        self.us.append(request.get_metadata()["SensorTimestamp"] // 1000)


@pytest.mark.picamera2
def test_access_units_carry_libcameras_sensor_timestamps() -> None:
    source = Picamera2Camera(SMALL)
    units: list[AccessUnit] = []
    stamps = SensorStamps()
    source.start(units.append)
    try:
        source._picam2.pre_callback = stamps  # noqa: SLF001 - the oracle: picamera2's own view
        time.sleep(1.5)
    finally:
        source.stop()
    assert source.error is None and source.forwarder is not None
    assert source.forwarder.on_sensor_clock
    seen = [u.pts_us for u in units if u.pts_us >= stamps.us[0]]
    assert len(seen) >= 20 and set(seen) <= set(stamps.us)
    # paced like a 30 fps sensor, never a burst of near-identical stamps (the virtual camera
    # stamps when its thread takes the request: on a busy machine some ms late, or a slot late),
    # on the recorder's clock: exposed before we saw it
    gaps = sorted(b - a for a, b in zip(seen, seen[1:]))
    assert gaps[0] >= 10_000 and 30_000 <= gaps[len(gaps) // 2] <= 37_000, gaps
    assert (seen[-1] - seen[0]) / len(gaps) <= 40_000, gaps
    assert 0 < monotonic_us() - units[-1].pts_us < 2_000_000


@pytest.mark.picamera2
def test_keyframes_come_every_keyframe_interval_and_decode() -> None:
    source = Picamera2Camera(SMALL)
    units: list[AccessUnit] = []
    source.start(units.append)
    time.sleep(1.6)
    source.stop()
    keyframes = [n for n, unit in enumerate(units) if unit.is_keyframe]
    assert keyframes[:3] == [0, 15, 30]  # keyframe_interval_s 0.5 at 30 fps
    decoder = av.CodecContext.create("h264", "r")
    frames = [frame for unit in units for frame in decoder.decode(av.Packet(unit.payload))]
    frames += decoder.decode(None)
    assert len(frames) == len(units) and (frames[0].width, frames[0].height) == (640, 480)


@pytest.mark.picamera2
def test_a_failing_sink_ends_picamera2_capture_and_is_kept_for_the_controller() -> None:
    def broken(unit: AccessUnit) -> None:
        raise OSError("disk gone")

    source = Picamera2Camera(SMALL)
    source.start(broken)
    try:
        assert source.finished.wait(10)
    finally:
        source.stop()
    assert isinstance(source.error, OSError)


@pytest.mark.picamera2
def test_a_second_user_of_the_camera_is_told_it_is_busy() -> None:
    first = Picamera2Camera(SMALL)
    first.start(lambda unit: None)
    try:
        with pytest.raises(CameraBusyError, match="in use by another program"):
            Picamera2Camera(SMALL).start(lambda unit: None)
    finally:
        first.stop()
    # picamera2 0.3.38 leaves the notification pipe of a Picamera2() that failed to open unclosed
    # (its close() returns before closing it): freed here, so that no later test is blamed for it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    second = Picamera2Camera(SMALL)  # the refused one released nothing it did not hold
    second.start(lambda unit: None)
    second.stop()
    second.stop()  # twice is harmless


@pytest.mark.picamera2
def test_a_size_the_camera_does_not_offer_is_refused_with_what_it_offers() -> None:
    # larger than any Pi camera module's sensor, and not in the virtual camera's list
    with pytest.raises(UnsupportedResolutionError, match="cannot give 8000x6000: it offers"):
        Picamera2Camera(VideoFormat(8000, 6000, 30, 1_000_000, 1.0)).start(lambda unit: None)
    if os.environ.get("BWV_VIRTUAL_CAMERA") == "1":  # the virtual camera takes only its list
        with pytest.raises(UnsupportedResolutionError, match="cannot give 800x600: it offers"):
            Picamera2Camera(VideoFormat(800, 600, 30, 1_000_000, 1.0)).start(lambda unit: None)


def _bwv(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BWV, *args], cwd="/", capture_output=True, text=True, timeout=timeout)


@pytest.mark.picamera2
def test_bwv_record_from_picamera2_verifies_plays_and_keeps_its_pre_event(tmp_path: Path) -> None:
    recorded = _bwv("record", "--source", "picamera2", "--audio", "synthetic", "--size", "640x480",
                    "--fps", "30", "--pre-event", "2", "--trigger-after", "2.5", "--duration", "3",
                    "--segment", "2", "--out", str(tmp_path / "recordings"))
    assert recorded.returncode == 0, recorded.stderr
    assert "Traceback" not in recorded.stderr
    recording = Path(recorded.stdout.strip().splitlines()[-1].split()[-1])
    checked = _bwv("verify", "--json", str(recording))
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"] is True, checked.stdout
    lines = manifest_lines(recording)
    trigger = next(line for line in lines if line.get("event") == "trigger")
    segments = [line for line in lines if line["type"] == "segment"]
    buffered_s = (trigger["pts_us"] - segments[0]["first_pts_us"]) / 1e6
    assert 2.0 <= buffered_s < 2.0 + 0.5 + 0.2  # the pre-event, at most one GOP (0.5 s) more
    times: list[float] = []
    for segment in segments:
        path = recording / segment["file"]
        assert ffmpeg_decode_errors(path) == ""
        video = next(s for s in ffprobe(path)["streams"] if s["codec_type"] == "video")
        assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 480)
        times += frame_pts(path)
    # 30 fps paced by the camera (a busy machine makes the virtual one miss a slot now and then)
    assert len(times) >= 30 * (2 + 3) * 0.8
    assert all(b > a for a, b in zip(times, times[1:]))


@pytest.mark.picamera2
def test_bwv_run_records_from_picamera2(tmp_path: Path) -> None:
    config = tmp_path / "bwv.toml"
    config.write_text(f"""
[device]
device_id = "cam7"
[camera]
source = "picamera2"
width = 640
height = 480
fps = 30
keyframe_interval_s = 0.5
[audio]
source = "synthetic"
[recording]
pre_event_s = 1.0
segment_s = 2.0
[storage]
data_dir = "{tmp_path / 'data'}"
min_free_mb = 1.0
""")
    run = subprocess.Popen([*BWV, "run", "--board", "terminal", "--config", str(config)], cwd="/",
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdin is not None
    try:
        time.sleep(3)  # buffering
        run.stdin.write(b"  ")  # a double press: recording
        run.stdin.flush()
        time.sleep(3)
    finally:
        run.terminate()
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err.decode()
    assert b"Traceback" not in err
    [recording] = list((tmp_path / "data" / "recordings").iterdir())
    checked = _bwv("verify", "--json", str(recording))
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"] is True, checked.stdout
    segments = [line for line in manifest_lines(recording) if line["type"] == "segment"]
    assert segments and all(ffmpeg_decode_errors(recording / s["file"]) == "" for s in segments)
