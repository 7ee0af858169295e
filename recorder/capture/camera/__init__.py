"""Video capture: sources (Raspberry Pi camera, synthetic test pattern, file, webcam) that stamp
frames on the monotonic clock, encode them to H.264 and hand access units to a sink."""

from .errors import (
    CameraBusyError,
    CameraError,
    NoCameraError,
    UnsupportedResolutionError,
    VideoFileMissingError,
    VideoSourceSpecError,
)
from .sources import FileCamera, SyntheticCamera, V4l2Camera, VideoFormat, VideoSource, open_video_source

__all__ = [
    "CameraBusyError", "CameraError", "FileCamera", "NoCameraError", "SyntheticCamera",
    "UnsupportedResolutionError", "V4l2Camera", "VideoFileMissingError", "VideoFormat",
    "VideoSource", "VideoSourceSpecError", "open_video_source",
]
