"""A stand-in for pykms (the kms++ bindings), which picamera2 imports for its DRM preview.

Debian 12 packages no kms++ bindings, and the recorder never shows a preview; any use of this
stand-in is an error, said plainly.
"""

from __future__ import annotations

from typing import Any


class _Unavailable:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("pykms is a stand-in under the virtual camera: there is no display")


Card = ResourceManager = DumbFramebuffer = DmabufFramebuffer = AtomicReq = _Unavailable


class PixelFormat:
    """The names picamera2's DRM preview reads when its class is defined."""

    RGB888 = "RGB888"
    BGR888 = "BGR888"
    XRGB8888 = "XRGB8888"
    XBGR8888 = "XBGR8888"
    ABGR8888 = "ABGR8888"
    YUV420 = "YUV420"
    YVU420 = "YVU420"
    NV12 = "NV12"


class PlaneType:
    Primary = 1
    Overlay = 0
    Cursor = 2
