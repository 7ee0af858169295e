"""Decode, detect, mask, encode the clear footage with PyAV: the face detector runs on every
``stride``-th frame (the tracker fills the frames between); each frame's tracked boxes (minus
the excluded tracks) and the plan's manual boxes are masked, the audio operations applied, and
H.264 (libx264) and AAC encoded into one MP4 whose clock starts at the first video frame.

When the tracks must be known before rendering (the review page lists them first; a plan that
leaves tracks visible names them), that is two passes: ``detect_faces`` decodes the video and
runs the detector, then ``render`` decodes it again. Otherwise (``bwv station redact`` with the
defaults) it is one pass: the detector runs on its threads ahead of the encoder, and a frame is
masked once the detections of the ``Tracking.settled`` frames after it are in, by then its boxes
are those the two passes give.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from .audio import apply as apply_audio
from .detect import Box, FaceDetector
from .mask import Masker
from .plan import Plan
from .track import Linker, Track, Tracking

DETECT_EVERY = 3  # the detector runs on every 3rd frame; the tracker fills the others
DETECT_THREADS = 2
DETECT_BACKLOG = 8
# (phase, frames done, frames in all or None when not known yet)
Progress = Callable[[str, int, int | None], None]
# what detect_faces found: the tracks, the frame count, the duration, the first frame's time
Found = tuple[list[Track], int, float, Fraction]


@dataclass(frozen=True)
class Encoding:
    """The encoder's settings: libx264's preset and quality, AAC's bit rate. ``ultrafast``
    takes a third of ``veryfast``'s CPU for about twice its bit rate on redacted footage
    (docs/redaction.md, Figures), and its H.264 (no CABAC, no B-frames) plays everywhere."""

    preset: str = "ultrafast"
    crf: int = 23
    audio_bit_rate: int = 96_000


@dataclass(frozen=True)
class Rendered:
    frames: int
    duration_s: float
    width: int
    height: int
    tracks: list[Track]
    masked_boxes: int
    seconds_detecting: float
    seconds_rendering: float


def _quiet(phase: str, done: int, total: int | None) -> None:
    pass


def detect_faces(footage: Path, detector: FaceDetector, tracking: Tracking,
                 stride: int = DETECT_EVERY,
                 progress: Progress = _quiet) -> Found:
    """The face tracks of the footage, its frame count, duration and first video time. The
    detector runs on ``DETECT_THREADS`` threads while the decoder goes on (OpenCV releases
    the GIL), at most ``DETECT_BACKLOG`` frames behind."""
    pending: dict[int, Future[list[Box]]] = {}
    in_flight: deque[Future[list[Box]]] = deque()  # oldest first
    count, first, last = 0, None, Fraction(0)
    with av.open(str(footage)) as container, \
            ThreadPoolExecutor(DETECT_THREADS, thread_name_prefix="bwv-detect") as pool:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for number, frame in enumerate(container.decode(stream)):
            when = _time(frame)
            first = when if first is None else first
            last = when
            if number % stride == 0:
                pending[number] = future = pool.submit(detector.detect, _luma(frame))
                in_flight.append(future)
                while len(in_flight) > DETECT_BACKLOG:  # the decoder waits for the oldest
                    in_flight.popleft().exception()
            count = number + 1
            if count % 30 == 0:
                progress("detecting", count, None)
        detections = {number: future.result() for number, future in pending.items()}
    if first is None:
        raise av.error.InvalidDataError(0, "the footage has no video frame")
    return tracking.link(detections), count, _duration(count, first, last), first


def render(footage: Path, out: Path, plan: Plan, detector: FaceDetector,
           tracking: Tracking = Tracking(), encoding: Encoding = Encoding(),
           stride: int = DETECT_EVERY, progress: Progress = _quiet,
           found: Found | None = None) -> Rendered:
    """Write the redacted MP4 of ``footage`` to ``out``; ``found``: what ``detect_faces``
    found in this footage with this detector, tracking and stride (then it is not run again)."""
    started = time.perf_counter()
    with av.open(str(footage)) as probe:  # refuse a range past the end before the long work
        stream = probe.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        if probe.duration:
            plan.check(probe.duration / av.time_base, None, size)
    if found is None and not plan.exclude_tracks:  # nothing to check against the tracks
        return _one_pass(footage, out, plan, detector, tracking, encoding, stride, progress,
                         started)
    if found is None:
        found = detect_faces(footage, detector, tracking, stride, progress)
    tracks, total, duration, origin = found
    plan.check(duration, {track.id for track in tracks}, size)
    detected = time.perf_counter()
    masked_tracks = [track for track in tracks if track.id not in plan.exclude_tracks]
    masker = Masker(plan.mask)
    boxes = 0
    with av.open(str(footage)) as source, \
            av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as sink:
        video_in, audio_in, video_out, audio_out = _streams(source, sink, encoding)
        period = float(1 / (video_in.average_rate or Fraction(30)))
        streams = [video_in] if audio_in is None else [video_in, audio_in]
        number = 0
        for frame in source.decode(*streams):
            when = _time(frame) - origin
            if isinstance(frame, av.VideoFrame):
                manual = plan.boxes_at(float(when), float(when) + period)
                boxes += _mask_frame(frame, number, masked_tracks, manual, tracking, masker,
                                     video_out, sink, when)
                number += 1
                if number % 30 == 0:
                    progress("rendering", number, total)
            elif audio_out is not None and when >= 0:
                _audio_frame(frame, plan, when, audio_out, sink)
        sink.mux(video_out.encode(None))
        if audio_out is not None:
            sink.mux(audio_out.encode(None))
    progress("rendering", number, total)
    return Rendered(number, duration, video_in.width, video_in.height, tracks, boxes,
                    detected - started, time.perf_counter() - detected)


def _one_pass(footage: Path, out: Path, plan: Plan, detector: FaceDetector,
              tracking: Tracking, encoding: Encoding, stride: int, progress: Progress,
              started: float) -> Rendered:
    """``render`` in one decode: frames wait, decoded, until the detections of the
    ``tracking.settled(stride)`` frames after them are linked (and the detector has
    ``DETECT_BACKLOG`` more to work on), then are masked and encoded."""
    linker = Linker(tracking)
    ahead = tracking.settled(stride)
    masker = Masker(plan.mask)
    waiting: deque[tuple[int, Any, Fraction]] = deque()  # decoded, not yet encoded
    in_flight: deque[tuple[int, Future[list[Box]]]] = deque()  # oldest first
    early: list[Any] = []  # audio decoded before the first video frame's time is known
    count, boxes, origin, last = 0, 0, None, Fraction(0)
    with av.open(str(footage)) as source, \
            av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as sink, \
            ThreadPoolExecutor(DETECT_THREADS, thread_name_prefix="bwv-detect") as pool:
        video_in, audio_in, video_out, audio_out = _streams(source, sink, encoding)
        period = float(1 / (video_in.average_rate or Fraction(30)))
        total = video_in.frames or None

        def emit(upto: int | None) -> None:
            """Mask and encode the waiting frames up to ``upto`` (all when None)."""
            nonlocal boxes
            while waiting and (upto is None or waiting[0][0] <= upto):
                number, frame, when = waiting.popleft()
                settle = None if upto is None else number + ahead
                while in_flight and (settle is None or in_flight[0][0] <= settle):
                    at, future = in_flight.popleft()
                    linker.add(at, future.result())
                manual = plan.boxes_at(float(when), float(when) + period)
                boxes += _mask_frame(frame, number, linker.tracks, manual, tracking, masker,
                                     video_out, sink, when)
                if (number + 1) % 30 == 0:
                    progress("rendering", number + 1, total)

        streams = [video_in] if audio_in is None else [video_in, audio_in]
        for frame in source.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                last = _time(frame)
                if origin is None:
                    origin = last
                    for sound in early:
                        if _time(sound) >= origin:
                            _audio_frame(sound, plan, _time(sound) - origin, audio_out, sink)
                    early.clear()
                if count % stride == 0:
                    in_flight.append((count, pool.submit(detector.detect, _luma(frame))))
                waiting.append((count, frame, last - origin))
                count += 1
                emit(count - 1 - ahead - DETECT_BACKLOG * stride)
            elif audio_out is not None:
                if origin is None:
                    early.append(frame)
                elif _time(frame) >= origin:
                    _audio_frame(frame, plan, _time(frame) - origin, audio_out, sink)
        emit(None)
        if origin is None:
            raise av.error.InvalidDataError(0, "the footage has no video frame")
        sink.mux(video_out.encode(None))
        if audio_out is not None:
            sink.mux(audio_out.encode(None))
    progress("rendering", count, count)
    duration = _duration(count, origin, last)
    plan.check(duration, {track.id for track in linker.tracks}, None)
    return Rendered(count, duration, video_in.width, video_in.height, linker.tracks, boxes,
                    0.0, time.perf_counter() - started)


def _streams(source: Any, sink: Any, encoding: Encoding) -> tuple[Any, Any, Any, Any]:
    """The source's video and audio (None when it has none) and the sink's encoders for
    them."""
    video_in = source.streams.video[0]
    video_in.thread_type = "AUTO"
    audio_in = source.streams.audio[0] if source.streams.audio else None
    video_out: Any = sink.add_stream("libx264", rate=video_in.average_rate or Fraction(30))
    video_out.width, video_out.height = video_in.width, video_in.height
    video_out.pix_fmt = "yuv420p"
    video_out.options = {"preset": encoding.preset, "crf": str(encoding.crf)}
    video_out.codec_context.time_base = Fraction(1, 90_000)
    audio_out: Any = None
    if audio_in is not None:
        audio_out = sink.add_stream("aac", rate=audio_in.rate, layout=audio_in.layout.name)
        audio_out.bit_rate = encoding.audio_bit_rate
    return video_in, audio_in, video_out, audio_out


def _luma(frame: Any) -> npt.NDArray[np.uint8]:
    """A video frame's Y plane, height x width (a copy: the detector works on its thread)."""
    plane = frame.planes[0]
    return np.frombuffer(bytes(plane), np.uint8).reshape(
        frame.height, plane.line_size)[:, :frame.width]


def _duration(count: int, first: Fraction, last: Fraction) -> float:
    """The footage's duration from its frame count and its first and last frame's times."""
    fps = Fraction(count - 1, 1) / (last - first) if count > 1 and last > first else Fraction(30)
    return float(count / fps)


def _time(frame: Any) -> Fraction:
    """A decoded frame's time in seconds."""
    if frame.pts is None or frame.time_base is None:
        raise av.error.InvalidDataError(0, "a frame without a time")
    return Fraction(frame.pts) * Fraction(frame.time_base)


def _mask_frame(frame: Any, number: int, tracks: list[Track], manual: list[Box],
                tracking: Tracking, masker: Masker, stream: Any, sink: Any,
                when: Fraction) -> int:
    found = [box for track in tracks if (box := tracking.box_at(track, number)) is not None]
    found += manual
    if found:
        planes = frame.to_ndarray(format="yuv420p")
        masker.apply(planes, frame.width, frame.height, found)
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.pts = round(when * 90_000)
    frame.time_base = Fraction(1, 90_000)
    frame.pict_type = av.video.frame.PictureType.NONE
    sink.mux(stream.encode(frame))
    return len(found)


def _audio_frame(frame: Any, plan: Plan, when: Fraction, stream: Any, sink: Any) -> None:
    if frame.format.name != "fltp":  # AAC decodes to fltp; anything else is converted first
        for converted in av.AudioResampler(format="fltp", layout=frame.layout.name,
                                           rate=frame.sample_rate).resample(frame):
            _audio_frame(converted, plan, when, stream, sink)
        return
    changed = apply_audio(plan, frame.to_ndarray(), float(when), frame.sample_rate)
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(changed), format="fltp",
                                     layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    out.pts = round(when * frame.sample_rate)
    out.time_base = Fraction(1, frame.sample_rate)
    sink.mux(stream.encode(out))
