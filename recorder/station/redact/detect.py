"""Faces in a frame: OpenCV's frontal-face Haar cascade (haarcascade_frontalface_default.xml,
Viola-Jones, trained by Rainer Lienhart; Intel's licence), which the opencv-python-headless 4.x
wheel ships in ``cv2.data`` (the 5.x wheels ship no cascade and no face model at all). Nothing
is downloaded at run time.

The cascade runs on the frame's luma (the decoder's Y plane: no colour conversion), scaled down
to ``detect_height`` lines: a face smaller than ``min_face`` of those lines is not found (20 of
240 lines is 60 pixels of a 720p frame). docs/redaction.md has the measurements behind the
choice and the defaults.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import StationError

CASCADE = "haarcascade_frontalface_default.xml"


class DetectorUnavailableError(StationError):
    """The face model is not where the OpenCV wheel puts it."""

    code = "detector_unavailable"


@dataclass(frozen=True)
class Box:
    """A rectangle in a frame's pixels: left, top, width, height."""

    x: float
    y: float
    w: float
    h: float

    def iou(self, other: Box) -> float:
        left, top = max(self.x, other.x), max(self.y, other.y)
        right = min(self.x + self.w, other.x + other.w)
        bottom = min(self.y + self.h, other.y + other.h)
        inter = max(0.0, right - left) * max(0.0, bottom - top)
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0

    def centre_distance(self, other: Box) -> float:
        """The distance between the centres, in units of the larger box's side."""
        dx = (self.x + self.w / 2) - (other.x + other.w / 2)
        dy = (self.y + self.h / 2) - (other.y + other.h / 2)
        return float(np.hypot(dx, dy)) / max(self.w, self.h, other.w, other.h, 1.0)


class FaceDetector:
    """The Haar cascade at a fixed working height; ``detect`` takes a frame's luma plane."""

    def __init__(self, detect_height: int = 240, min_face: int = 20,
                 scale_factor: float = 1.15, min_neighbours: int = 3) -> None:
        import cv2

        self._cv2: Any = cv2
        self._path = Path(self._cv2.data.haarcascades) / CASCADE
        self._local = threading.local()  # a classifier is not safe to share between threads
        self._cascade()
        self.detect_height = detect_height
        self.min_face = min_face
        self.scale_factor = scale_factor
        self.min_neighbours = min_neighbours

    def _cascade(self) -> Any:
        """This thread's classifier."""
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            if self._path.is_file():
                cascade = self._cv2.CascadeClassifier(str(self._path))
            if cascade is None or cascade.empty():
                raise DetectorUnavailableError(
                    f"the face model {self._path} is missing: install opencv-python-headless "
                    "4.x (the station extra), whose wheel ships it")
            self._local.cascade = cascade
        return cascade

    def describe(self) -> dict[str, Any]:
        """What found the faces, for the plan and the audit log."""
        return {"model": f"opencv {self._cv2.__version__} {CASCADE}",
                "detect_height": self.detect_height, "min_face": self.min_face,
                "scale_factor": f"{self.scale_factor:g}", "min_neighbours": self.min_neighbours}

    def detect(self, luma: npt.NDArray[np.uint8]) -> list[Box]:
        """The faces in a frame's luma plane (height x width), in its pixels."""
        height, width = luma.shape
        scale = min(1.0, self.detect_height / height)
        small = luma
        if scale < 1.0:
            small = self._cv2.resize(luma, (max(1, round(width * scale)), self.detect_height),
                                     interpolation=self._cv2.INTER_AREA)
        found = self._cascade().detectMultiScale(
            small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbours,
            minSize=(self.min_face, self.min_face))
        return [Box(x / scale, y / scale, w / scale, h / scale)
                for x, y, w, h in np.asarray(found, dtype=np.float64).reshape(-1, 4)]
