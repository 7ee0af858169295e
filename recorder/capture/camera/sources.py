"""Video sources: each captures frames on its own thread, stamps them on the monotonic clock,
encodes them to H.264 and hands every access unit to a sink (the pre-event ring's push).

`open_video_source(spec, ...)` understands "synthetic", "file:PATH" and "v4l2:DEVICE"; the
Raspberry Pi camera is in `recorder.capture.camera.picamera2_source`.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import av

from ..clock import ClockAnchor, monotonic_us
from .base import Sink, VideoFormat, VideoSource
from .errors import (
    CameraBusyError,
    CameraError,
    NoCameraError,
    VideoFileMissingError,
    VideoSourceSpecError,
)
from .picamera2_source import Picamera2Camera
from .test_pattern import TestPattern

__all__ = ["DecodedVideoSource", "FileCamera", "Picamera2Camera", "Sink", "SyntheticCamera",
           "V4l2Camera", "VideoFormat", "VideoSource", "open_video_source"]


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
        return Picamera2Camera(video)
    raise VideoSourceSpecError(
        f"camera source {spec!r} is not understood: use synthetic, picamera2, file:PATH or "
        "v4l2:/dev/videoN")
