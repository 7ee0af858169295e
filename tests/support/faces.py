"""Footage with faces for the redaction tests and bench: the astronaut photograph that ships in
scikit-image (``skimage.data.astronaut()``, public domain, NASA), its head cut out and composited
at several sizes onto the recorder's moving synthetic scene (recorder.capture.camera.test_pattern),
moving across the frame, one of them partly out of the frame and one partly covered by a bar;
and a recording of that footage as the camera writes it (fragmented MP4 segments, signed
manifest), to ingest into a station.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

from recorder.capture.camera.test_pattern import TestPattern
from support.media import mux_mono_audio

FPS = 30
SAMPLE_RATE = 48_000
TONE_HZ = 440.0  # the recording's own audio: a steady tone, so silence is measurable
_HEAD = (slice(20, 230), slice(130, 320))  # the astronaut's head and shoulders, 210 x 190


@dataclass(frozen=True)
class Face:
    """One face's path across the footage: its height as a share of the frame's, where it
    starts and how far it moves each frame (in frame heights), and what covers it."""

    height: float
    start: tuple[float, float]
    step: tuple[float, float]
    covered: float = 0.0  # the share of the head's width hidden by a bar, from the left


FACES = (Face(0.55, (0.05, 0.1), (0.004, 0.001)),
         Face(0.35, (0.9, 0.45), (-0.006, 0.0)),
         Face(0.3, (0.55, 0.05), (0.002, 0.003), covered=0.25))


@functools.cache
def _head() -> npt.NDArray[np.uint8]:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[_HEAD])


@functools.cache
def _scaled_head(height: int) -> npt.NDArray[np.uint8]:
    import cv2

    head = _head()
    width = max(1, round(head.shape[1] * height / head.shape[0]))
    return np.asarray(cv2.resize(head, (width, height), interpolation=cv2.INTER_AREA))


def _paste(frame: npt.NDArray[np.uint8], image: npt.NDArray[np.uint8], x: int, y: int) -> None:
    height, width = frame.shape[:2]
    top, left = max(0, y), max(0, x)
    bottom, right = min(height, y + image.shape[0]), min(width, x + image.shape[1])
    if top < bottom and left < right:
        frame[top:bottom, left:right] = image[top - y:bottom - y, left - x:right - x]


def frames(width: int, height: int, count: int,
           faces: tuple[Face, ...] = FACES) -> Iterator[npt.NDArray[np.uint8]]:
    """``count`` RGB frames of the moving synthetic scene with ``faces`` on it."""
    pattern = TestPattern(width, height)
    start = datetime(2026, 11, 23, 7, tzinfo=timezone.utc)
    for number in range(count):
        frame = pattern.render(number, start).to_ndarray(format="rgb24")
        for face in faces:
            head = _scaled_head(round(face.height * height)).copy()
            if face.covered:
                head[:, :round(face.covered * head.shape[1])] = (40, 40, 40)
            x = round((face.start[0] + face.step[0] * number) * height)
            y = round((face.start[1] + face.step[1] * number) * height)
            _paste(frame, head, x % (width + head.shape[1]) - head.shape[1] // 2, y)
        yield frame


def _tone(start: int) -> npt.NDArray[np.float32]:
    """1024 samples of the 440 Hz tone from sample ``start``."""
    t = np.arange(start, start + 1024) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32).reshape(1, -1)


def encode(width: int, height: int, seconds: float, crf: int = 20) -> bytes:
    """An MP4 (H.264 with a keyframe each second, AAC mono 440 Hz tone) of the footage."""
    buffer = io.BytesIO()
    count = round(seconds * FPS)
    with av.open(buffer, "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"g": str(FPS), "bf": "0", "preset": "ultrafast", "crf": str(crf)}
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for number, rgb in enumerate(frames(width, height, count)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = number, Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        mux_mono_audio(out, sound, round(seconds * SAMPLE_RATE), _tone)
    return buffer.getvalue()
