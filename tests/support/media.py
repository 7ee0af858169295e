"""Real encoder output for the muxer and writer tests: libx264 video and AAC audio through PyAV.

Small pictures and a few seconds keep the tests quick; every stream is cached per process.
"""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import av
import numpy as np

from recorder.capture.access_unit import AUDIO, VIDEO


class Unit(NamedTuple):
    """An access unit as the muxer takes it, with the encoder's decode time."""

    stream: int
    pts_us: int
    is_keyframe: bool
    payload: bytes
    dts_us: int | None


@functools.lru_cache(maxsize=None)
def h264(width: int = 160, height: int = 120, fps: float = 30.0, frames: int = 90,
         gop: int = 30, bframes: int = 0, start_us: int = 1_000_000,
         jitter_us: int = 0) -> tuple[Unit, ...]:
    """libx264 access units of a moving pattern; ``jitter_us`` makes the frame rate variable."""
    context = av.CodecContext.create("libx264", "w")
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    context.time_base = Fraction(1, 1_000_000)
    context.framerate = Fraction(fps).limit_denominator(1001)
    context.gop_size = gop
    context.options = {"preset": "ultrafast",
                       "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"}
    rng = np.random.default_rng(width * 7 + gop)
    units = []
    pts = start_us
    packets = []
    for index in range(frames):
        picture = np.zeros((height, width, 3), np.uint8)
        picture[:, (index * 3) % width] = 255
        picture[(index * 2) % height, :, 1] = 200
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = pts
        packets += context.encode(frame)
        step = round(1_000_000 / fps)
        pts += step + (int(rng.integers(-jitter_us, jitter_us + 1)) if jitter_us else 0)
    packets += context.encode(None)
    for packet in packets:
        dts = packet.dts if bframes else None
        units.append(Unit(VIDEO, packet.pts, bool(packet.is_keyframe), bytes(packet), dts))
    return tuple(units)


@functools.lru_cache(maxsize=None)
def aac(seconds: float = 3.0, sample_rate: int = 48_000, channels: int = 1,
        start_us: int = 1_000_000) -> tuple[bytes, tuple[Unit, ...]]:
    """(AudioSpecificConfig, AAC-LC access units) of a tone, pts on the sample clock."""
    context = av.CodecContext.create("aac", "w")
    context.sample_rate = sample_rate
    context.layout = "mono" if channels == 1 else "stereo"
    context.format = "fltp"
    context.time_base = Fraction(1, sample_rate)
    packets = []
    total = int(seconds * sample_rate) // 1024
    for index in range(total):
        t = np.arange(index * 1024, (index + 1) * 1024) / sample_rate
        block = np.repeat((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :],
                          channels, axis=0)
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=context.layout.name)
        frame.sample_rate = sample_rate
        frame.pts = index * 1024
        packets += context.encode(frame)
    packets += context.encode(None)
    units = tuple(Unit(AUDIO, start_us + packet.pts * 1_000_000 // sample_rate, True,
                       bytes(packet), None) for packet in packets)
    return bytes(context.extradata), units


def mux_mono_audio(out: Any, stream: Any, samples: int,
                   chunk_at: Callable[[int], np.ndarray]) -> None:
    """Encode ``samples`` of mono audio into ``stream`` of the open container ``out``, 1024
    samples a frame, each frame's float32 samples (shape (1, 1024)) from ``chunk_at(start)``;
    then flush the encoder."""
    for start in range(0, samples, 1024):
        chunk = av.AudioFrame.from_ndarray(chunk_at(start), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = stream.rate, start
        chunk.time_base = Fraction(1, stream.rate)
        out.mux(stream.encode(chunk))
    out.mux(stream.encode(None))


def interleave(*streams: tuple[Unit, ...]) -> list[Unit]:
    """Push order as capture threads produce it: by decode time, video before audio on ties."""
    units = [u for stream in streams for u in stream]
    return sorted(units, key=lambda u: (u.pts_us if u.dts_us is None else u.dts_us, u.stream))


def mux_all(module: Any, units: list[Unit], audio_config: bytes | None,
            **options: float) -> list[bytes]:
    """Every segment file's bytes, muxed by ``module``'s FragmentedMp4Muxer."""
    muxer = module.FragmentedMp4Muxer(audio_config, **options)
    segments: dict[int, list[bytes]] = {}
    for unit in units:
        fragment = muxer.push(unit.stream, unit.pts_us, unit.is_keyframe, unit.payload,
                              unit.dts_us)
        if fragment is not None:
            segments.setdefault(fragment.segment, []).append(fragment.data)
    last = muxer.close()
    if last is not None:
        segments.setdefault(last.segment, []).append(last.data)
    return [b"".join(parts) for _, parts in sorted(segments.items())]


def ffprobe(path: Path, *entries: str) -> list[dict[str, Any]]:
    """ffprobe's counted streams of ``path`` (codec, size, frame count, start and duration)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_name,width,height,nb_read_frames,start_time,duration,sample_rate"
         + "".join("," + e for e in entries), "-of", "json", str(path)],
        check=True, capture_output=True, text=True).stdout
    streams: list[dict[str, Any]] = json.loads(out)["streams"]
    return streams


def ffmpeg_decode_errors(path: Path) -> str:
    """What ``ffmpeg -v error -i PATH -fps_mode vfr -f null -`` prints: nothing for a clean file.
    (Variable frame rate is kept by the recorder; passed through, two frames closer than the
    null output's frame duration would collide there, which says nothing about the file.)"""
    result = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-fps_mode",
                             "vfr", "-f", "null", "-"], capture_output=True, text=True)
    return result.stdout + result.stderr + ("" if result.returncode == 0 else
                                            f"exit {result.returncode}")


def frame_pts(path: Path, stream: str = "v:0") -> list[float]:
    """Presentation times in seconds of every decoded frame of one stream, in display order."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries",
                          "frame=pts_time", "-of", "csv=p=0", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return [float(line.strip().rstrip(",")) for line in out.split() if line.strip()]


def boxes(data: bytes) -> list[tuple[str, int, int]]:
    """Top-level boxes (type, offset, size) of a segment."""
    result = []
    position = 0
    while position < len(data):
        size = int.from_bytes(data[position:position + 4], "big")
        result.append((data[position + 4:position + 8].decode("latin-1"), position, size))
        if size < 8:
            raise ValueError(f"bad box size {size} at {position}")
        position += size
    return result
