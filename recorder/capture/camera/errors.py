"""Camera errors, each naming what is wrong and what to do about it."""

from __future__ import annotations

from ...errors import RecorderError


class CameraError(RecorderError):
    """Base class of the video sources' errors."""


class NoCameraError(CameraError):
    """No camera (or video device) is there to open."""


class CameraBusyError(CameraError):
    """The camera exists but another program holds it."""


class UnsupportedResolutionError(CameraError, ValueError):
    """The camera or encoder cannot produce the size or rate asked for."""


class VideoFileMissingError(CameraError, FileNotFoundError):
    """A file: source names a file that does not exist or holds no video."""


class VideoSourceSpecError(CameraError, ValueError):
    """A camera source specification that is not understood."""
