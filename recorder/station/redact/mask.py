"""What replaces the pixels inside a box, on a yuv420p frame (the luma plane and both chroma
planes, so no colour is left either). Neither mask can be undone, because neither keeps the
original pixels: ``pixelate`` keeps only the mean of each block of a coarse grid (at most
``BLOCKS`` blocks across the box, whatever its size) with fresh random noise added to each mean;
``solid`` fills the box with one grey.
"""

from __future__ import annotations

import secrets

import numpy as np
import numpy.typing as npt

from .detect import Box

BLOCKS = 5  # across the box's longer side
NOISE = 24  # +- this much, in 8-bit levels
SOLID = (60, 128, 128)  # Y, U, V: dark grey


class Masker:
    """Applies one mask kind to frames; the noise comes from a generator seeded from the OS."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._random = np.random.default_rng(secrets.randbits(128))

    def apply(self, planes: npt.NDArray[np.uint8], width: int, height: int,
              boxes: list[Box]) -> None:
        """Mask ``boxes`` in place in a yuv420p frame as ``VideoFrame.to_ndarray()`` gives it
        (height * 3/2 rows of ``width``: Y, then U and V each as height/4 rows)."""
        luma = planes[:height]
        chroma = planes[height:].reshape(2, height // 2, width // 2)
        for box in boxes:
            left, top = max(0, int(box.x) & ~1), max(0, int(box.y) & ~1)
            right = min(width, (int(np.ceil(box.x + box.w)) + 1) & ~1)
            bottom = min(height, (int(np.ceil(box.y + box.h)) + 1) & ~1)
            if right <= left or bottom <= top:
                continue
            if self.kind == "solid":
                luma[top:bottom, left:right] = SOLID[0]
                chroma[0, top // 2:bottom // 2, left // 2:right // 2] = SOLID[1]
                chroma[1, top // 2:bottom // 2, left // 2:right // 2] = SOLID[2]
                continue
            block = max(2, -(-max(right - left, bottom - top) // BLOCKS))
            block += block & 1  # even: the chroma grid is the luma grid halved
            self._pixelate(luma[top:bottom, left:right], block, noise=True)
            for plane in chroma:
                self._pixelate(plane[top // 2:bottom // 2, left // 2:right // 2], block // 2,
                               noise=False)

    def _pixelate(self, region: npt.NDArray[np.uint8], block: int, noise: bool) -> None:
        """Each ``block`` x ``block`` cell becomes the mean of its pixels (OpenCV's area
        resampling down) plus fresh noise, one draw per cell, then is drawn back up as a flat
        cell (nearest neighbour). The noise is per cell, not per pixel: noise on each pixel
        averages out over a cell (the cell's mean comes back to within a level), noise on the
        cell's mean does not, and a flat cell costs the encoder next to nothing where a cell
        of pixel noise costs it most of its time and bits (docs/redaction.md, Figures)."""
        import cv2

        rows, cols = region.shape
        small = np.asarray(cv2.resize(region, (-(-cols // block), -(-rows // block)),
                                      interpolation=cv2.INTER_AREA), dtype=np.uint8)
        if noise:
            jitter = np.asarray(self._random.integers(-NOISE, NOISE + 1, size=small.shape),
                                dtype=np.int16)
            jitter += small
            small = np.clip(jitter, 0, 255).astype(np.uint8)
        region[...] = cv2.resize(small, (cols, rows), interpolation=cv2.INTER_NEAREST)
