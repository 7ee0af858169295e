"""Video sources with real encoders: frames stamped, encoded, and readable back after decoding."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest

from recorder import VIDEO, AccessUnit
from recorder.capture.camera.errors import (
    NoCameraError,
    UnsupportedResolutionError,
    VideoFileMissingError,
    VideoSourceSpecError,
)
from recorder.capture.camera.h264_encoder import H264Encoder
from recorder.capture.camera.picamera2_source import EncodedFrameForwarder, Picamera2Camera
from recorder.capture.camera.sources import (FileCamera, SyntheticCamera, VideoFormat,
                                             open_video_source)
from recorder.capture.camera.test_pattern import read_frame_number
from recorder.capture.clock import monotonic_us
from support.recording import make_video_file

SMALL = VideoFormat(width=320, height=240, fps=30, bitrate_bps=400_000, keyframe_interval_s=0.5)


def capture(source: SyntheticCamera | FileCamera, timeout: float = 60) -> list[AccessUnit]:
    units: list[AccessUnit] = []
    source.start(units.append)
    assert source.finished.wait(timeout), "capture thread did not finish"
    source.stop()
    assert source.error is None, source.error
    return units


def decoded_numbers(units: list[AccessUnit]) -> list[int | None]:
    decoder = av.CodecContext.create("h264", "r")
    numbers = []
    for unit in units:
        numbers += [read_frame_number(frame) for frame in decoder.decode(av.Packet(unit.payload))]
    numbers += [read_frame_number(frame) for frame in decoder.decode(None)]
    return numbers


def test_synthetic_frames_decode_back_to_their_burned_in_numbers() -> None:
    units = capture(SyntheticCamera(SMALL, realtime=False, frames=45, start_us=1_000_000))
    assert len(units) == 45 and all(u.stream == VIDEO for u in units)
    assert decoded_numbers(units) == list(range(45))
    assert [n for n, u in enumerate(units) if u.is_keyframe] == [0, 15, 30]
    assert [u.pts_us for u in units] == [1_000_000 + round(n * 1e6 / 30) for n in range(45)]


def test_every_keyframe_carries_sps_and_pps_in_band() -> None:
    units = capture(SyntheticCamera(SMALL, realtime=False, frames=31))
    for unit in units:
        nal_types = {unit.payload[i + 3] & 0x1F for i in range(len(unit.payload) - 3)
                     if unit.payload[i:i + 3] == b"\x00\x00\x01"}
        assert ({7, 8, 5} <= nal_types) == unit.is_keyframe


def test_realtime_synthetic_frames_are_stamped_on_the_monotonic_clock() -> None:
    source = SyntheticCamera(SMALL, realtime=True)
    units: list[AccessUnit] = []
    before = monotonic_us()
    source.start(units.append)
    time.sleep(0.4)
    source.stop()
    after = monotonic_us()
    assert source.error is None
    assert len(units) >= 5
    assert before <= units[0].pts_us and units[-1].pts_us <= after
    assert all(b.pts_us > a.pts_us for a, b in zip(units, units[1:]))



def test_a_file_source_re_encodes_every_frame_with_the_files_timing(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    make_video_file(path, frames=20, fps=25)
    units = capture(FileCamera(SMALL, path, realtime=False))
    assert decoded_numbers(units) == list(range(20))
    steps = {b.pts_us - a.pts_us for a, b in zip(units, units[1:])}
    assert steps == {40_000}  # 25 fps in the file, whatever the recorder's own fps


def test_a_file_source_replays_in_real_time(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    make_video_file(path, frames=10, fps=25)
    started = time.monotonic()
    units = capture(FileCamera(SMALL, path, realtime=True))
    assert len(units) == 10
    assert time.monotonic() - started >= 0.3  # 10 frames at 25 fps span 0.36 s


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(VideoFileMissingError, match="nope.mp4 does not exist"):
        FileCamera(SMALL, tmp_path / "nope.mp4").start(lambda unit: None)


def test_a_file_without_video_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audio.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoFileMissingError, match="holds no video"):
        FileCamera(SMALL, path).start(lambda unit: None)


def test_a_missing_v4l2_device_says_how_to_list_devices() -> None:
    with pytest.raises(NoCameraError, match="v4l2-ctl --list-devices"):
        open_video_source("v4l2:/dev/video99", SMALL)


def test_an_unknown_source_is_refused() -> None:
    with pytest.raises(VideoSourceSpecError, match="use synthetic, picamera2, file:PATH"):
        open_video_source("webcam", SMALL)


def test_odd_sizes_are_refused_by_the_encoder() -> None:
    with pytest.raises(UnsupportedResolutionError, match="even sizes"):
        H264Encoder(321, 240, 30, 400_000)


def test_a_failing_sink_ends_capture_and_is_kept_for_the_controller() -> None:
    def broken(unit: AccessUnit) -> None:
        raise OSError("disk gone")

    source = SyntheticCamera(SMALL, realtime=False, frames=5)
    source.start(broken)
    assert source.finished.wait(30)
    assert isinstance(source.error, OSError)


def test_forwarder_maps_sensor_time_to_the_monotonic_clock() -> None:
    got: list[AccessUnit] = []
    now = iter([5_000_000, 5_040_000, 5_070_000, 5_100_000])
    forwarder = EncodedFrameForwarder(got.append, clock_us=lambda: next(now))
    forwarder.forward(b"k", True, 100)
    forwarder.forward(b"p", False, 33_433)
    forwarder.forward(b"p", False, 33_433)  # repeated timestamp: dropped
    forwarder.forward(b"p", False, 66_766)
    assert [(u.pts_us, u.is_keyframe) for u in got] == [
        (5_000_000, True), (5_033_333, False), (5_066_666, False)]
    assert forwarder.dropped == 1


def test_forwarder_waits_for_the_first_keyframe() -> None:
    got: list[AccessUnit] = []
    forwarder = EncodedFrameForwarder(got.append, clock_us=lambda: 1_000)
    forwarder.forward(b"p", False, 1)
    forwarder.forward(b"k", True, 2)
    assert [u.payload for u in got] == [b"k"] and forwarder.dropped == 1


@pytest.mark.picamera2
def test_the_pi_camera_records_keyframe_aligned_h264() -> None:
    source = Picamera2Camera(VideoFormat(1280, 720, 30, 4_000_000, 1.0))
    units: list[AccessUnit] = []
    source.start(units.append)
    time.sleep(2)
    source.stop()
    assert units and units[0].is_keyframe
    assert len(units) >= 45
    assert decoded_numbers(units) and all(b.pts_us > a.pts_us for a, b in zip(units, units[1:]))
