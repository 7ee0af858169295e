"""The base of every video source: the format it captures in and its capture thread.

Sources (`recorder.capture.camera.sources`, `recorder.capture.camera.picamera2_source`) subclass
`VideoSource`; it lives alone here so that every source module imports it and nothing imports back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av

from ..access_unit import AccessUnit
from ..clock import monotonic_us
from .errors import CameraError
from .h264_encoder import H264Encoder

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
