"""The synthetic camera's picture: a moving test pattern with the UTC time and frame number burned in.

The frame number is drawn twice: as text for people, and as a barcode strip across the top (32
blocks: a 24-bit frame number and an 8-bit check) that `read_frame_number` recovers from a
*decoded* picture, so tests can prove that no frame is missing or repeated after encoding, muxing
and segmenting.
"""

from __future__ import annotations

from datetime import datetime

import av
import numpy as np
import numpy.typing as npt

BITS = 32
BLACK, WHITE = 16, 235  # video-range luma

# 5x7 glyphs, one string per row; "#" marks a lit pixel.
_FONT = {
    "0": (" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "),
    "1": ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "2": (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    "3": ("#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "),
    "4": ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    "5": ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    "6": ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    "7": ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    "8": (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
    "9": (" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "),
    "-": ("     ", "     ", "     ", "#####", "     ", "     ", "     "),
    ":": ("     ", "  #  ", "  #  ", "     ", "  #  ", "  #  ", "     "),
    ".": ("     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "),
    "#": (" # # ", "#####", " # # ", " # # ", "#####", " # # ", "     "),
    "Z": ("#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####"),
    "T": ("#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "),
    " ": ("     ",) * 7,
}
_GLYPHS = {char: np.array([[c == "#" for c in row] for row in rows], dtype=bool)
           for char, rows in _FONT.items()}


def _check(number: int) -> int:
    return (number ^ (number >> 8) ^ (number >> 16) ^ 0xA5) & 0xFF


class TestPattern:
    """Renders frames of one size; ``render(n, utc)`` returns a yuv420p `av.VideoFrame`."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, width: int, height: int) -> None:
        if width < 4 * BITS or height < 32:
            raise ValueError(f"the test pattern needs at least {4 * BITS}x32 pixels, "
                             f"not {width}x{height}")
        self.width, self.height = width, height
        self.block = width // BITS
        self.strip = max(8, height // 12)
        self.scale = max(1, height // 90)
        ramp = np.linspace(40, 200, width, dtype=np.float32)
        self._background = np.broadcast_to(ramp, (height, width)).astype(np.uint8)
        half_w, half_h = width // 2, height // 2
        self._u = np.tile(np.linspace(64, 192, half_w, dtype=np.uint8), (half_h, 1))
        self._v = np.tile(np.linspace(192, 64, half_h, dtype=np.uint8)[:, None], (1, half_w))

    def render(self, number: int, utc: datetime) -> av.VideoFrame:
        y = self._background.copy()
        bar = (number * 4) % self.width
        y[self.strip:, bar:bar + max(2, self.width // 40)] = WHITE
        self._barcode(y, number)
        text_top = self.strip + 2 * self.scale
        stamp = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
        self._text(y, stamp, 2 * self.scale, text_top)
        self._text(y, f"#{number:07d}", 2 * self.scale, text_top + 9 * self.scale)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, data in zip(frame.planes, (y, self._u, self._v)):
            _write_plane(plane, data)
        return frame

    def _barcode(self, y: npt.NDArray[np.uint8], number: int) -> None:
        word = ((number & 0xFFFFFF) << 8) | _check(number & 0xFFFFFF)
        for bit in range(BITS):
            lit = (word >> (BITS - 1 - bit)) & 1
            y[:self.strip, bit * self.block:(bit + 1) * self.block] = WHITE if lit else BLACK

    def _text(self, y: npt.NDArray[np.uint8], text: str, left: int, top: int) -> None:
        s = self.scale
        for index, char in enumerate(text):
            glyph = _GLYPHS.get(char, _GLYPHS[" "])
            x = left + index * 6 * s
            if x + 5 * s > self.width or top + 7 * s > self.height:
                return
            cell = y[top:top + 7 * s, x:x + 5 * s]
            cell[np.kron(glyph, np.ones((s, s), dtype=bool))] = WHITE


def _write_plane(plane: av.video.plane.VideoPlane, data: npt.NDArray[np.uint8]) -> None:
    height, width = data.shape
    if plane.line_size == width:
        plane.update(np.ascontiguousarray(data).tobytes())
        return
    padded = np.zeros((height, plane.line_size), dtype=np.uint8)
    padded[:, :width] = data
    plane.update(padded.tobytes())


def read_frame_number(frame: av.VideoFrame) -> int | None:
    """The frame number from a decoded picture's barcode, or None if it does not check out."""
    y = frame.to_ndarray(format="gray")
    width = y.shape[1]
    block = width // BITS
    strip = max(8, y.shape[0] // 12)
    row = y[strip // 2]
    word = 0
    for bit in range(BITS):
        centre = int(row[bit * block + block // 4:(bit + 1) * block - block // 4].mean())
        word = (word << 1) | (1 if centre > 128 else 0)
    number, check = word >> 8, word & 0xFF
    return number if _check(number) == check else None
