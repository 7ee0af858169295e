"""The Raspberry Pi camera through picamera2, encoded to H.264 by the encoder the Pi has.

A Pi 4 or Zero 2 W encodes in hardware (picamera2's V4L2 `H264Encoder`, ``/dev/video11``); a Pi 5
has no hardware encoder and picamera2 encodes with libx264 (`LibavH264Encoder`). Either way
encoded frames reach our `Output` subclass with a keyframe flag and a timestamp taken from
libcamera's SensorTimestamp; `EncodedFrameForwarder` maps those onto the recorder's monotonic
clock and hands access units to the sink. It runs unchanged on a Pi and on libcamera's virtual
camera (docs/testing.md, "Virtual camera").
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..access_unit import VIDEO, AccessUnit
from ..clock import monotonic_us
from .base import Sink, VideoFormat, VideoSource
from .errors import CameraBusyError, CameraError, NoCameraError, UnsupportedResolutionError

V4L2_ENCODER_DEVICE = Path("/dev/video11")  # the hardware H.264 encoder of a Pi 4 or Zero 2 W
# libcamera's SensorTimestamp is on CLOCK_MONOTONIC, the recorder's clock, so a first frame that
# reaches us no later than this after its exposure started is taken at its sensor time.
MAX_FIRST_FRAME_DELAY_US = 1_000_000


class EncodedFrameForwarder:
    """Maps picamera2's (frame, keyframe, timestamp_us) to access units on the monotonic clock.

    picamera2 passes each frame's sensor timestamp in microseconds since the first frame of the
    recording, and keeps the first frame's own SensorTimestamp (``sensor_origin_us``). libcamera
    stamps on CLOCK_MONOTONIC, which is the recorder's clock: pts = origin + timestamp, the
    sensor's own time. Should the origin be missing or implausible (not within
    `MAX_FIRST_FRAME_DELAY_US` before now), the first frame is taken as captured now and the
    sensor's spacing is kept from there. Frames whose pts does not increase, and frames before the
    first keyframe, are dropped and counted (the ring would refuse them).
    """

    def __init__(self, sink: Sink, clock_us: Callable[[], int] = monotonic_us) -> None:
        self.sink = sink
        self.clock_us = clock_us
        self.offset_us: int | None = None
        self.on_sensor_clock = False
        self.last_pts = -1
        self.frames = 0
        self.dropped = 0
        self.waiting_for_keyframe = True
        self.lock = threading.Lock()  # picamera2 calls from its encoder thread

    def forward(self, frame: bytes, keyframe: bool, timestamp_us: int | None,
                sensor_origin_us: int | None = None) -> None:
        with self.lock:
            now = self.clock_us()
            if timestamp_us is None:
                timestamp_us = now if self.offset_us is None else now - self.offset_us
            if self.offset_us is None:
                delay = (None if sensor_origin_us is None
                         else now - (sensor_origin_us + timestamp_us))
                self.on_sensor_clock = delay is not None and 0 <= delay <= MAX_FIRST_FRAME_DELAY_US
                self.offset_us = sensor_origin_us if self.on_sensor_clock else now - timestamp_us
            assert self.offset_us is not None
            pts = timestamp_us + self.offset_us
            if pts <= self.last_pts or (self.waiting_for_keyframe and not keyframe):
                self.dropped += 1
                return
            self.waiting_for_keyframe = False
            self.last_pts = pts
            self.frames += 1
            self.sink(AccessUnit(VIDEO, pts, bool(keyframe), bytes(frame)))


class Picamera2Camera(VideoSource):
    """The Raspberry Pi camera module (picamera2, and the Pi's H.264 encoder).

    picamera2 runs its own threads (the camera's event loop, the encoder's); a failure in the sink
    on them is kept in ``error`` and sets ``finished``, as for the other sources.
    """

    description = "Raspberry Pi camera"

    def __init__(self, video: VideoFormat) -> None:
        super().__init__(video)
        self._picam2: Any = None
        self._encoder: Any = None
        self.forwarder: EncodedFrameForwarder | None = None
        self.encoder_name = ""

    def start(self, sink: Sink) -> None:
        if self._picam2 is not None:
            raise CameraError(f"{self.description} already started")
        try:
            from picamera2 import Picamera2
            from picamera2 import encoders
            from picamera2.outputs import Output
        except ImportError as exc:  # picamera2 itself, or the libcamera bindings beneath it
            raise NoCameraError(f"picamera2 cannot be imported ({exc}): on a Raspberry Pi, sudo "
                                "apt install python3-picamera2 (and create the venv with "
                                "--system-site-packages)") from exc
        picam2 = _open_picamera2(Picamera2)
        try:
            self._configure(picam2)
            encoder = self._h264_encoder(encoders)
            forwarder = EncodedFrameForwarder(sink)
            picam2.start_encoder(encoder, _ring_output(Output, self, forwarder, encoder))
            picam2.start()
        except BaseException:
            picam2.close()
            raise
        self._picam2, self._encoder, self.forwarder = picam2, encoder, forwarder

    def _configure(self, picam2: Any) -> None:
        frame_us = round(1_000_000 / self.video.fps)
        try:
            config = picam2.create_video_configuration(
                main={"size": (self.video.width, self.video.height), "format": "YUV420"},
                controls={"FrameDurationLimits": (frame_us, frame_us)})
            picam2.configure(config)
        except Exception as exc:
            raise UnsupportedResolutionError(
                f"the camera cannot give {self.video.width}x{self.video.height} at "
                f"{self.video.fps} fps: {exc}") from exc
        size = tuple(picam2.camera_configuration()["main"]["size"])
        if size != (self.video.width, self.video.height):
            raise UnsupportedResolutionError(
                f"the camera cannot give {self.video.width}x{self.video.height}: it offers "
                f"{size[0]}x{size[1]} instead (set camera.width and camera.height to that)")

    def _h264_encoder(self, encoders: Any) -> Any:
        """The Pi's hardware encoder where it exists, else libx264 as picamera2 uses on a Pi 5."""
        gop = max(1, round(self.video.fps * self.video.keyframe_interval_s))
        if V4L2_ENCODER_DEVICE.exists():
            from picamera2.encoders.h264_encoder import H264Encoder

            self.encoder_name = "H264Encoder"
            return H264Encoder(bitrate=self.video.bitrate_bps, repeat=True, iperiod=gop)
        self.encoder_name = "LibavH264Encoder"
        return encoders.LibavH264Encoder(bitrate=self.video.bitrate_bps, repeat=True, iperiod=gop,
                                         framerate=self.video.fps)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the camera and the encoder and close the camera; safe to call more than once."""
        picam2, self._picam2 = self._picam2, None
        if picam2 is None:
            self.finished.set()
            return
        try:
            picam2.stop()
            picam2.stop_encoder()
        finally:
            picam2.close()
            self.finished.set()


def _open_picamera2(picamera2_class: Any) -> Any:
    """``Picamera2()``, its failures turned into errors that say what to do."""
    try:
        return picamera2_class()
    except (RuntimeError, IndexError) as exc:
        causes = _causes(exc)
        if "busy" in causes.lower():
            raise CameraBusyError(f"the camera is in use by another program ({causes}); find it "
                                  "with: fuser /dev/media* /dev/video*") from exc
        if any(words in causes.lower() for words in ("not found", "no camera")) \
                or isinstance(exc, IndexError):
            raise NoCameraError("no camera found: check the ribbon cable and "
                                "`rpicam-hello --list-cameras`") from exc
        raise CameraError(f"cannot open the camera: {causes}") from exc


def _causes(exc: BaseException) -> str:
    """The messages of an exception and of what caused it, outermost first."""
    messages: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(messages) < 8:
        messages.append(str(current) or type(current).__name__)
        current = current.__cause__ or current.__context__
    return ": ".join(messages)


def _ring_output(output_base: type, camera: Picamera2Camera, forwarder: EncodedFrameForwarder,
                 encoder: Any) -> Any:
    """An instance of a picamera2 `Output` subclass that forwards video frames to ``forwarder``."""

    class RingOutput(output_base):  # type: ignore[misc]
        def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                        packet: Any = None, audio: bool = False) -> None:
            if audio or camera.error is not None:
                return
            try:
                # picamera2 keeps the first frame's SensorTimestamp (microseconds) here
                forwarder.forward(frame, keyframe, timestamp,
                                  getattr(encoder, "firsttimestamp", None))
            except BaseException as exc:  # kept for the controller, as on the other sources
                camera.error = exc
                camera.finished.set()
                return
            camera.frames_captured = forwarder.frames  # the service watchdog reads it

    return RingOutput()
