"""Muxing throughput for one realistic stream: native, pure, and FFmpeg's mp4 muxer through PyAV;
and both twins encrypting ('cenc', AES-128-CTR) the same stream, the cost of encryption at rest.

The stream is 2 s of 1080p30 libx264 at about 10 Mbit/s (GOP 30, a noisy moving pattern so the
encoder spends its bitrate) with 48 kHz AAC: the camera's default. Each round muxes every access
unit into complete fragmented-MP4 bytes in memory (no disk): ours with FragmentedMp4Muxer, PyAV's
with ``movflags=frag_keyframe+empty_moov``, which is what a user would otherwise pick.
"""

from __future__ import annotations

import functools
import io
from fractions import Fraction
from typing import Any

import av
import numpy as np
import pytest

from recorder.capture.access_unit import AUDIO, VIDEO, AccessUnit
from recorder.integrity.content_key import ContentKey
from recorder.storage import _mux_cenc
from recorder.storage._mux_py import NAL_PPS, NAL_SPS, split_annexb

from support.twins import twin_module

KINDS = ["native", "pure", "pyav", "native-cenc", "pure-cenc"]
CONTENT_KEY = ContentKey(bytes(range(16)), bytes(range(16, 32)))  # key id, key: fixed, a bench


@functools.lru_cache(maxsize=None)
def stream_1080p30() -> tuple[bytes, tuple[AccessUnit, ...]]:
    """(AudioSpecificConfig, access units in push order) of the benchmark stream."""
    width, height, fps, frames = 1920, 1080, 30, 60
    video = av.CodecContext.create("libx264", "w")
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.time_base = Fraction(1, 1_000_000)
    video.framerate = Fraction(fps)
    video.bit_rate = 10_000_000
    video.options = {"preset": "ultrafast", "tune": "zerolatency",
                     "x264-params": "keyint=30:min-keyint=30:scenecut=0:bframes=0:"
                                    "vbv-maxrate=10000:vbv-bufsize=10000"}
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (height, width), dtype=np.uint8)
    units: list[AccessUnit] = []
    for index in range(frames):
        luma = np.roll(base, index * 8, axis=1)
        luma = luma + rng.integers(0, 12, luma.shape, dtype=np.uint8)
        planes = np.concatenate([luma, np.full((height // 2, width), 128, np.uint8)])
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = 1_000_000 + index * 1_000_000 // fps
        for packet in video.encode(frame):
            units.append(AccessUnit(VIDEO, packet.pts, bool(packet.is_keyframe), bytes(packet)))
    for packet in video.encode(None):
        units.append(AccessUnit(VIDEO, packet.pts, bool(packet.is_keyframe), bytes(packet)))
    audio = av.CodecContext.create("aac", "w")
    audio.sample_rate, audio.layout, audio.format = 48_000, "mono", "fltp"
    audio.time_base = Fraction(1, 48_000)
    packets = []
    for index in range(frames * 48_000 // fps // 1024):
        block = (0.2 * np.sin(np.arange(1024) / 9)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48_000, index * 1024
        packets += audio.encode(frame)
    packets += audio.encode(None)
    units += [AccessUnit(AUDIO, 1_000_000 + p.pts * 1_000_000 // 48_000, True, bytes(p))
              for p in packets if p.pts >= 0]
    units.sort(key=lambda u: (u.pts_us, u.stream))
    return bytes(audio.extradata), tuple(units)


def _mux_ours(module: Any, config: bytes, units: tuple[AccessUnit, ...],
              encrypted: bool = False) -> int:
    if encrypted:  # the pure module's encrypting muxer lives in _mux_cenc
        muxer_class = getattr(module, "EncryptingMp4Muxer", _mux_cenc.EncryptingMp4Muxer)
        muxer = muxer_class(config, content_key=CONTENT_KEY)
    else:
        muxer = module.FragmentedMp4Muxer(config)
    push = muxer.push
    size = 0
    for unit in units:
        fragment = push(unit.stream, unit.pts_us, unit.is_keyframe, unit.payload)
        if fragment is not None:
            size += len(fragment.data)
    last = muxer.close()
    return size + (len(last.data) if last is not None else 0)


def _mux_pyav(config: bytes, units: tuple[AccessUnit, ...], headers: bytes) -> int:
    out = io.BytesIO()
    container = av.open(out, "w", format="mp4",
                        options={"movflags": "frag_keyframe+empty_moov"})
    video = container.add_stream("h264", rate=30)
    video.width, video.height, video.pix_fmt = 1920, 1080, "yuv420p"
    video.codec_context.extradata = headers
    video.time_base = Fraction(1, 1_000_000)
    audio = container.add_stream("aac", rate=48_000)
    audio.codec_context.extradata = config
    audio.time_base = Fraction(1, 1_000_000)
    streams = (video, audio)
    for unit in units:
        packet = av.Packet(unit.payload)
        packet.stream = streams[unit.stream]
        packet.time_base = Fraction(1, 1_000_000)
        packet.pts = packet.dts = unit.pts_us
        packet.is_keyframe = unit.is_keyframe
        container.mux_one(packet)
    container.close()
    return len(out.getvalue())


@pytest.mark.parametrize("kind", KINDS)
def test_mux_1080p30(benchmark: Any, kind: str) -> None:
    config, units = stream_1080p30()
    video_bytes = sum(len(u.payload) for u in units if u.stream == VIDEO)
    benchmark.extra_info.update(piece="mux", op="mux", size="1080p30-10Mbit+aac", kind=kind,
                                units=len(units), video_mbit_s=video_bytes * 8 / 2 / 1e6)
    if kind == "pyav":
        first = units[0].payload
        headers = b"".join(b"\x00\x00\x00\x01" + first[s:e] for s, e in split_annexb(first, 0)
                           if first[s] & 0x1F in (NAL_SPS, NAL_PPS))
        size = benchmark(_mux_pyav, config, units, headers)
    else:
        twin, _, mode = kind.partition("-")
        size = benchmark(_mux_ours, twin_module("mux", twin), config, units, mode == "cenc")
    assert size > video_bytes
