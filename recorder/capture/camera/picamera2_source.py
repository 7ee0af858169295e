"""The Raspberry Pi camera through picamera2, with the Pi's own H.264 encoder.

picamera2's `H264Encoder` is the hardware (V4L2) encoder on a Pi 4 or Zero 2 W and its libav
software encoder on a Pi 5, which has no hardware encoder; either way encoded frames arrive at an
`Output` subclass with a keyframe flag and a timestamp. `EncodedFrameForwarder` (plain Python,
tested here) turns those into access units on the monotonic clock; the picamera2 wiring around it
runs only on a Pi (tests marked ``pi``).
"""

from __future__ import annotations

import threading
from typing import Any

from ..access_unit import VIDEO, AccessUnit
from ..clock import monotonic_us
from .base import Sink, VideoFormat, VideoSource
from .errors import CameraBusyError, CameraError, NoCameraError, UnsupportedResolutionError


class EncodedFrameForwarder:
    """Maps picamera2's (frame, keyframe, timestamp_us) to access units on the monotonic clock.

    picamera2 stamps frames with the sensor timestamp in microseconds, on a clock of its own; the
    offset to our monotonic clock is measured at the first frame and kept, so frame spacing is the
    sensor's (exact) and the origin is ours. Frames whose mapped pts does not increase are dropped
    and counted (the ring would refuse them).
    """

    def __init__(self, sink: Sink, clock_us: Any = monotonic_us) -> None:
        self.sink = sink
        self.clock_us = clock_us
        self.offset_us: int | None = None
        self.last_pts = -1
        self.frames = 0
        self.dropped = 0
        self.waiting_for_keyframe = True
        self.lock = threading.Lock()  # picamera2 calls from its encoder thread

    def forward(self, frame: bytes, keyframe: bool, timestamp_us: int | None) -> None:
        with self.lock:
            now = self.clock_us()
            if timestamp_us is None:
                timestamp_us = now if self.offset_us is None else now - self.offset_us
            if self.offset_us is None:
                self.offset_us = now - timestamp_us
            pts = timestamp_us + self.offset_us
            if pts <= self.last_pts or (self.waiting_for_keyframe and not keyframe):
                self.dropped += 1
                return
            self.waiting_for_keyframe = False
            self.last_pts = pts
            self.frames += 1
            self.sink(AccessUnit(VIDEO, pts, bool(keyframe), bytes(frame)))


class Picamera2Camera(VideoSource):
    """The Raspberry Pi camera module (picamera2 + the Pi's H.264 encoder)."""

    description = "Raspberry Pi camera"

    def __init__(self, video: VideoFormat) -> None:
        super().__init__(video)
        self._picam2: Any = None
        self._encoder: Any = None
        self.forwarder: EncodedFrameForwarder | None = None

    def start(self, sink: Sink) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
            from picamera2.encoders import H264Encoder  # type: ignore[import-not-found]
            from picamera2.outputs import Output  # type: ignore[import-not-found]
        except ImportError as exc:
            raise NoCameraError("picamera2 is not installed: sudo apt install python3-picamera2 "
                                "(and create the venv with --system-site-packages)") from exc
        forwarder = EncodedFrameForwarder(sink)
        self.forwarder = forwarder
        camera = self

        class RingOutput(Output):  # type: ignore[misc]
            def outputframe(self, frame: bytes, keyframe: bool = True,
                            timestamp: int | None = None, packet: Any = None,
                            audio: bool = False) -> None:
                if not audio:
                    forwarder.forward(frame, keyframe, timestamp)
                    camera.frames_captured = forwarder.frames  # the service watchdog reads it

        try:
            picam2 = Picamera2()
        except IndexError as exc:
            raise NoCameraError("no camera found: check the ribbon cable and "
                                "`rpicam-hello --list-cameras`") from exc
        except RuntimeError as exc:
            if "busy" in str(exc).lower():
                raise CameraBusyError(f"the camera is in use by another program: {exc}") from exc
            raise CameraError(f"cannot open the camera: {exc}") from exc
        frame_us = round(1_000_000 / self.video.fps)
        try:
            config = picam2.create_video_configuration(
                main={"size": (self.video.width, self.video.height), "format": "YUV420"},
                controls={"FrameDurationLimits": (frame_us, frame_us)})
            picam2.configure(config)
        except Exception as exc:
            picam2.close()
            raise UnsupportedResolutionError(
                f"the camera cannot give {self.video.width}x{self.video.height} at "
                f"{self.video.fps} fps: {exc}") from exc
        gop = max(1, round(self.video.fps * self.video.keyframe_interval_s))
        self._encoder = H264Encoder(bitrate=self.video.bitrate_bps, repeat=True, iperiod=gop)
        self._picam2 = picam2
        picam2.start_encoder(self._encoder, RingOutput())
        picam2.start()

    def stop(self, timeout: float = 10.0) -> None:
        picam2, self._picam2 = self._picam2, None
        if picam2 is None:
            return
        try:
            picam2.stop_encoder()
            picam2.stop()
        finally:
            picam2.close()
            self.finished.set()
