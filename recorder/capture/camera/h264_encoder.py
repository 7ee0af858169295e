"""H.264 encoding with libx264 through PyAV: frames in, Annex B access units out.

The encoder is set up for a body camera: no B-frames and no look-ahead (one frame in, one access
unit out, so the pts of an AU is its capture time), a fixed GOP of ``keyframe_interval_s`` (no
scene-cut keyframes, so a fragment never exceeds it), and SPS/PPS repeated on every keyframe so
each GOP decodes on its own.
"""

from __future__ import annotations

from fractions import Fraction

import av

from ..access_unit import VIDEO, AccessUnit
from .errors import UnsupportedResolutionError

MICROSECONDS = Fraction(1, 1_000_000)


class H264Encoder:
    """libx264 encoder; ``encode(frame, pts_us)`` returns the access units it produced."""

    def __init__(self, width: int, height: int, fps: int, bitrate_bps: int,
                 keyframe_interval_s: float = 1.0, preset: str = "ultrafast") -> None:
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise UnsupportedResolutionError(
                f"cannot encode {width}x{height}: H.264 4:2:0 needs even sizes of 16 or more")
        self.width, self.height, self.fps = width, height, fps
        self.gop = max(1, round(fps * keyframe_interval_s))
        context = av.CodecContext.create("libx264", "w")
        context.width = width
        context.height = height
        context.pix_fmt = "yuv420p"
        context.time_base = MICROSECONDS
        context.framerate = Fraction(fps, 1)
        context.bit_rate = bitrate_bps
        context.gop_size = self.gop
        context.options = {
            "preset": preset,
            "tune": "zerolatency",
            "x264-params": (f"keyint={self.gop}:min-keyint={self.gop}:scenecut=0:bframes=0:"
                            f"repeat-headers=1:vbv-maxrate={bitrate_bps // 1000}:"
                            f"vbv-bufsize={bitrate_bps // 1000}"),
        }
        try:
            context.open()
        except av.error.FFmpegError as exc:
            raise UnsupportedResolutionError(
                f"libx264 refused {width}x{height} at {fps} fps, {bitrate_bps} bit/s: {exc}") from exc
        self._context = context
        self.frames_in = 0

    def encode(self, frame: av.VideoFrame, pts_us: int) -> list[AccessUnit]:
        """Encode one frame captured at ``pts_us``; returns 0 or more access units."""
        if frame.format.name != "yuv420p" or frame.width != self.width or frame.height != self.height:
            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        frame.pts = pts_us
        frame.time_base = MICROSECONDS
        self.frames_in += 1
        return self._units(self._context.encode(frame))

    def flush(self) -> list[AccessUnit]:
        """Access units still inside the encoder (none with zerolatency, but be exact)."""
        return self._units(self._context.encode(None))

    @staticmethod
    def _units(packets: list[av.Packet]) -> list[AccessUnit]:  # type: ignore[type-arg]
        units = []
        for packet in packets:
            assert packet.pts is not None, "libx264 returned a packet without a timestamp"
            units.append(AccessUnit(VIDEO, packet.pts, bool(packet.is_keyframe), bytes(packet)))
        return units
