"""AAC-LC encoding through PyAV: interleaved s16 PCM blocks stamped in microseconds in, one access
unit per raw AAC frame out, with the AudioSpecificConfig the muxer puts in ``esds``.

Priming: FFmpeg's AAC encoder delays its output by one frame (1024 samples) and gives the first
packet a negative pts: decoding that packet yields the 1024 samples *before* the first input
sample (silence). We keep that packet and stamp it where it belongs, one frame before the first
captured sample, so every decoded sample plays at the monotonic time it was captured: no priming
to drop or shift, and no edit list needed. Each AAC frame's ``pts_us`` is the capture time of the
first sample its decoding yields.

Coder: FFmpeg's ``fast`` quantiser, not its default ``twoloop``: measured here it costs a sixth of
the CPU (0.26% against 1.7% of one core for 48 kHz mono) for about 2 dB less signal-to-noise on
speech-like sound at 64 kbit/s, and a Pi has the video to encode too.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

from ..access_unit import AUDIO, AccessUnit
from .errors import UnsupportedAudioFormatError

LAYOUTS = {1: "mono", 2: "stereo"}


class AacEncoder:
    """FFmpeg's native AAC-LC encoder; ``encode(pcm, pts_us)`` returns the access units it produced.

    ``pcm`` is interleaved signed 16-bit little-endian samples of any whole number of frames;
    ``pts_us`` is the capture time of its first sample. Blocks need not be contiguous in time: a
    block whose ``pts_us`` is not where the previous one ended (lost samples, a re-anchored clock)
    starts a new anchor, and output frames are stamped from the anchor their first sample falls in.
    """

    def __init__(self, sample_rate: int = 48_000, channels: int = 1,
                 bitrate_bps: int = 64_000, coder: str = "fast") -> None:
        if channels not in LAYOUTS:
            raise UnsupportedAudioFormatError(f"AAC encoding takes 1 or 2 channels, not {channels}")
        context = av.CodecContext.create("aac", "w")
        context.sample_rate = sample_rate
        context.layout = LAYOUTS[channels]
        context.format = "fltp"
        context.bit_rate = bitrate_bps
        context.time_base = Fraction(1, sample_rate)
        context.options = {"aac_coder": coder}
        try:
            context.open()
        except (av.error.FFmpegError, ValueError) as exc:
            raise UnsupportedAudioFormatError(
                f"the AAC encoder refused {sample_rate} Hz, {channels} channel(s), "
                f"{bitrate_bps} bit/s, coder {coder!r}: {exc}") from exc
        self._context = context
        self.sample_rate = sample_rate
        self.channels = channels
        self.bitrate_bps = bitrate_bps
        self.frame_samples: int = context.frame_size  # 1024 for AAC-LC
        #: AudioSpecificConfig (ISO 14496-3), the DecoderSpecificInfo of the muxer's esds box.
        self.audio_specific_config = bytes(context.extradata or b"")
        self._pending = np.zeros((channels, 0), dtype=np.float32)  # samples not yet a whole frame
        self._samples_in = 0  # samples handed to the encoder (whole frames), its pts in samples
        self._received = 0  # samples received through encode()
        self._anchors: list[tuple[int, int]] = []  # (sample index, pts_us of that sample)
        #: One tick of the audio track's timescale (the sample rate), rounded up: frames closer
        #: than this share a tick, and the muxer refuses the second.
        self._min_step_us = -(-1_000_000 // sample_rate)
        self._last_pts_us: int | None = None
        self._flushed = False

    def encode(self, pcm: bytes, pts_us: int) -> list[AccessUnit]:
        """Encode interleaved s16 samples whose first was captured at ``pts_us``."""
        if self._flushed:
            raise RuntimeError("the AAC encoder was flushed: make a new one")
        width = 2 * self.channels
        if len(pcm) % width:
            raise ValueError(f"PCM block of {len(pcm)} bytes is not whole {self.channels}-channel "
                             "s16 frames")
        samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, self.channels).T
        if samples.shape[1] == 0:
            return []
        if not self._anchors or self._pts_at(self._received) != pts_us:
            self._anchors.append((self._received, pts_us))
        self._received += samples.shape[1]
        self._pending = np.concatenate(
            (self._pending, samples.astype(np.float32) / 32768.0), axis=1)
        units: list[AccessUnit] = []
        while self._pending.shape[1] >= self.frame_samples:
            block, self._pending = np.split(self._pending, [self.frame_samples], axis=1)
            units += self._encode_block(block)
        return units

    def flush(self) -> list[AccessUnit]:
        """The frames still inside the encoder; a last partial frame is padded with silence."""
        if self._flushed:
            return []
        units: list[AccessUnit] = []
        if self._pending.shape[1]:
            pad = self.frame_samples - self._pending.shape[1]
            block = np.pad(self._pending, ((0, 0), (0, pad)))
            self._pending = self._pending[:, :0]
            units += self._encode_block(block)
        self._flushed = True
        return units + self._units(self._context.encode(None))

    def _encode_block(self, block: npt.NDArray[np.float32]) -> list[AccessUnit]:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp",
                                           layout=LAYOUTS[self.channels])
        frame.sample_rate = self.sample_rate
        frame.time_base = self._context.time_base
        frame.pts = self._samples_in
        self._samples_in += self.frame_samples
        return self._units(self._context.encode(frame))

    def _pts_at(self, sample: int) -> int:
        """pts_us of a sample index, from the last anchor at or before it (priming: the first)."""
        index, anchor_us = self._anchors[0]
        for candidate in reversed(self._anchors):
            if candidate[0] <= sample:
                index, anchor_us = candidate
                break
        return anchor_us + (sample - index) * 1_000_000 // self.sample_rate

    def _units(self, packets: list[av.Packet]) -> list[AccessUnit]:  # type: ignore[type-arg]
        units = []
        for packet in packets:
            assert packet.pts is not None, "the AAC encoder returned a packet without a timestamp"
            pts_us = self._pts_at(packet.pts)
            if self._last_pts_us is not None:
                # A clock re-anchored to an earlier time (a starved capture thread catching up)
                # stamps its block one microsecond after the last: keep frames a tick apart.
                pts_us = max(pts_us, self._last_pts_us + self._min_step_us)
            self._last_pts_us = pts_us
            units.append(AccessUnit(AUDIO, pts_us, True, bytes(packet)))
            while len(self._anchors) > 1 and self._anchors[1][0] <= packet.pts:
                del self._anchors[0]  # no later packet starts before this anchor
        return units
