"""Real fragmented MP4 segments from PyAV, the source of test recordings where the bytes must be a
real encoder's: the BMFF reader's tests, `bwv verify`'s, the station's and the upload bench.

PyAV (libx264 + AAC, movflags frag_keyframe+empty_moov+default_base_moof) makes real fragmented
segments whose ``tfdt`` continue across files.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from support.media import mux_mono_audio

FPS = 30
SAMPLE_RATE = 48000
# frag_discont makes the mov muxer write each packet's own dts as tfdt instead of restarting
# every file at 0; avoid_negative_ts=disabled stops it shifting timestamps to start at zero.
SEGMENT_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof+frag_discont",
                   "avoid_negative_ts": "disabled"}


@dataclass(frozen=True)
class WrittenSegment:
    """A segment file written by PyAV, with the pts span of the packets in it (microseconds)."""

    path: Path
    first_pts_us: int
    last_pts_us: int
    video_keyframes: int


@functools.cache  # the same bytes for the same arguments: encoded once per process
def _encode_recording(seconds: int, b_frames: int, audio: bool) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"g": str(FPS), "bf": str(b_frames), "preset": "ultrafast"}
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if audio else None
        for number in range(seconds * FPS):
            frame = av.VideoFrame.from_ndarray(
                np.full((48, 64, 3), (number * 7) % 256, np.uint8), format="rgb24")
            frame.pts, frame.time_base = number, Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            tone = np.sin(np.arange(1024, dtype=np.float32) / 5).reshape(1, -1)
            mux_mono_audio(out, sound, seconds * SAMPLE_RATE, lambda start: tone)
    return buffer.getvalue()


def write_segments(directory: Path, seconds: int = 4, segment_seconds: int = 2,
                   b_frames: int = 0, audio: bool = True) -> list[WrittenSegment]:
    """Encode ``seconds`` of test video (and AAC audio) and cut it into fragmented MP4 segments
    000001.mp4 ... at video keyframes every ``segment_seconds``; one fragment per second (GOP)."""
    return cut_segments(directory, _encode_recording(seconds, b_frames, audio), segment_seconds)


def cut_segments(directory: Path, encoded: bytes, segment_seconds: int = 2) -> list[WrittenSegment]:
    """Cut an encoded MP4 (a keyframe each second) into fragmented MP4 segments 000001.mp4 ...
    at video keyframes every ``segment_seconds``."""
    directory.mkdir(parents=True, exist_ok=True)
    with av.open(io.BytesIO(encoded)) as source:
        streams = list(source.streams)
        packets = [packet for packet in source.demux() if packet.size]
        keyframe_times = sorted(packet.pts * packet.time_base for packet in packets
                                if packet.stream.type == "video" and packet.is_keyframe)
        cuts = keyframe_times[::segment_seconds] + [Fraction(10**9)]
        written = []
        for number in range(len(cuts) - 1):
            chosen = [packet for packet in packets
                      if cuts[number] <= packet.pts * packet.time_base < cuts[number + 1]]
            path = directory / f"{number + 1:06d}.mp4"
            with av.open(str(path), "w", format="mp4", options=SEGMENT_OPTIONS) as out:
                mapping = {stream.index: out.add_stream_from_template(stream)
                           for stream in streams}
                for packet in chosen:
                    packet.stream = mapping[packet.stream.index]
                    out.mux(packet)
            times = [int(packet.pts * packet.time_base * 1_000_000) for packet in chosen]
            keyframes = sum(1 for packet in chosen
                            if packet.stream.type == "video" and packet.is_keyframe)
            written.append(WrittenSegment(path, min(times), max(times), keyframes))
    return written
