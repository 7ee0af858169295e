"""Video sources: each captures frames on its own thread, stamps them on the monotonic clock,
encodes them to H.264 and hands every access unit to a sink (the pre-event ring's push).

`open_video_source(spec, ...)` understands "synthetic", "file:PATH" and "v4l2:DEVICE"; the
Raspberry Pi camera is in `recorder.camera.picamera2_source`.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av

from ..access_unit import AccessUnit
from ..clock import ClockAnchor, monotonic_us
from .errors import (
    CameraBusyError,
    CameraError,
    NoCameraError,
    VideoFileMissingError,
    VideoSourceSpecError,
)
from .h264_encoder import H264Encoder
from .test_pattern import TestPattern

Sink = Callable[[AccessUnit], None]


@dataclass(frozen=True)
class VideoFormat:
    width: int
    height: int
    fps: int
    bitrate_bps: int
    keyframe_interval_s: float = 1.0


class VideoSource:
    """Base of every video source: a capture thread from ``start(sink)`` to ``stop()``.

    Subclasses yield ``(frame, pts_us)`` from `_frames`; this class encodes and forwards. A failure
    on the capture thread ends it and is kept in ``error`` for the controller to report.
    """

    description = "video source"

    def __init__(self, video: VideoFormat) -> None:
        self.video = video
        self.frames_captured = 0
        self.units_sent = 0
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()  # set when the thread ends: stop, end of file, error

    def start(self, sink: Sink) -> None:
        if self._thread is not None:
            raise CameraError(f"{self.description} already started")
        self._prepare()
        self._thread = threading.Thread(target=self._run, args=(sink,), name="video-capture",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop capturing and wait for the thread; safe to call more than once."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _prepare(self) -> None:
        """Open the device or file on the caller's thread, so errors reach the caller."""

    def _frames(self) -> Iterator[tuple[av.VideoFrame, int]]:
        raise NotImplementedError

    def _run(self, sink: Sink) -> None:
        try:
            encoder = H264Encoder(self.video.width, self.video.height, self.video.fps,
                                  self.video.bitrate_bps, self.video.keyframe_interval_s)
            for frame, pts_us in self._frames():
                if self._stopping.is_set():
                    break
                self.frames_captured += 1
                for unit in encoder.encode(frame, pts_us):
                    sink(unit)
                    self.units_sent += 1
            for unit in encoder.flush():
                sink(unit)
                self.units_sent += 1
        except BaseException as exc:  # kept for the controller: a capture thread must not die silently
            self.error = exc
        finally:
            self.finished.set()

    def _wait_until(self, target_us: int) -> bool:
        """Sleep until ``target_us`` on the monotonic clock; False if asked to stop meanwhile."""
        delay = (target_us - monotonic_us()) / 1e6
        return not (delay > 0 and self._stopping.wait(delay))


class SyntheticCamera(VideoSource):
    """A moving test pattern with the UTC time and frame number burned in (no hardware).

    ``realtime=False`` produces frames as fast as the encoder allows, stamped as if captured at
    ``fps`` from ``start_us`` (tests and benches); ``frames`` limits how many (None: until stopped).
    """

    description = "synthetic camera"

    def __init__(self, video: VideoFormat, realtime: bool = True, frames: int | None = None,
                 start_us: int | None = None) -> None:
        super().__init__(video)
        self.realtime = realtime
        self.limit = frames
        self.start_us = start_us
        self.pattern = TestPattern(video.width, video.height)

    def _frames(self) -> Iterator[tuple[av.VideoFrame, int]]:
        anchor = ClockAnchor.now()
        start = anchor.monotonic_us if self.start_us is None else self.start_us
        number = 0
        while self.limit is None or number < self.limit:
            scheduled = start + round(number * 1_000_000 / self.video.fps)
            if self.realtime:
                if not self._wait_until(scheduled):
                    return
                pts = monotonic_us()
            else:
                pts = scheduled
            yield self.pattern.render(number, anchor.to_utc(pts)), pts
            number += 1


class DecodedVideoSource(VideoSource):
    """Frames decoded by PyAV from a file or a V4L2 device, re-encoded to the recorder's format."""

    def __init__(self, video: VideoFormat, url: str, av_format: str | None = None,
                 options: dict[str, str] | None = None, realtime: bool = True) -> None:
        super().__init__(video)
        self.url, self.av_format, self.options = url, av_format, options or {}
        self.realtime = realtime
        self._container: av.container.InputContainer | None = None

    def _prepare(self) -> None:
        try:
            container = av.open(self.url, format=self.av_format, options=self.options)
        except FileNotFoundError as exc:
            self._missing(exc)
        except av.error.FFmpegError as exc:
            if exc.errno == errno.EBUSY:
                raise CameraBusyError(f"{self.url} is in use by another program "
                                      f"(find it with: fuser {self.url})") from exc
            if exc.errno == errno.ENOENT:
                self._missing(exc)
            raise CameraError(f"cannot open {self.url}: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise VideoFileMissingError(f"{self.url} holds no video stream")
        self._container = container

    def _missing(self, exc: BaseException) -> None:
        raise VideoFileMissingError(f"{self.url} does not exist") from exc

    def _frames(self) -> Iterator[tuple[av.VideoFrame, int]]:
        assert self._container is not None
        container = self._container
        try:
            stream = container.streams.video[0]
            start = monotonic_us()
            first: float | None = None
            last_pts = -1
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                first = frame.time if first is None else first
                if self.av_format is None:  # a file: its own timing, in real time unless fast
                    pts = start + round((frame.time - first) * 1e6)
                    if self.realtime and not self._wait_until(pts):
                        return
                else:  # a live device: the frame was captured just now
                    pts = monotonic_us()
                if pts <= last_pts:
                    continue  # a repeated timestamp in the file: the ring would refuse it
                last_pts = pts
                yield frame, pts
        finally:
            container.close()


class FileCamera(DecodedVideoSource):
    """Any video file PyAV can read, re-timed to real time unless ``realtime=False`` (--fast)."""

    description = "video file"

    def __init__(self, video: VideoFormat, path: Path, realtime: bool = True) -> None:
        super().__init__(video, str(path), realtime=realtime)


class V4l2Camera(DecodedVideoSource):
    """A webcam through Video4Linux2."""

    description = "V4L2 camera"

    def __init__(self, video: VideoFormat, device: str) -> None:
        if not Path(device).exists():
            raise NoCameraError(f"no video device {device} (list them with: v4l2-ctl --list-devices)")
        super().__init__(video, device, "v4l2",
                         {"video_size": f"{video.width}x{video.height}",
                          "framerate": str(video.fps)})


def open_video_source(spec: str, video: VideoFormat, realtime: bool = True) -> VideoSource:
    """The source named by a ``camera.source`` value (other than "auto" and "picamera2")."""
    if spec == "synthetic":
        return SyntheticCamera(video, realtime=realtime)
    if spec.startswith("file:") and len(spec) > 5:
        return FileCamera(video, Path(spec[5:]), realtime=realtime)
    if spec.startswith("v4l2:") and len(spec) > 5:
        return V4l2Camera(video, spec[5:])
    if spec == "picamera2":
        from .picamera2_source import Picamera2Camera

        return Picamera2Camera(video)
    raise VideoSourceSpecError(
        f"camera source {spec!r} is not understood: use synthetic, picamera2, file:PATH or "
        "v4l2:/dev/videoN")
