"""What picamera2 needs, beyond libcamera itself, to run on libcamera's virtual pipeline here.

The virtual pipeline handler needs no hardware, but the machine differs from a Raspberry Pi in
four ways that picamera2 meets; each shim below closes one of them, in the test harness only, so
that the recorder's picamera2 code runs as it would on a Pi:

- no dma-heap device (``/dev/dma_heap``): `MemfdAllocator` replaces picamera2's `DmaAllocator`
  with buffers from ``memfd_create``, NV12 described as two planes on one descriptor (as the Pi's
  allocator does), since libyuv fails on one plane;
- the virtual pipeline refuses the Raw stream role, which ``Picamera2()`` asks for to list the
  sensor modes: the viewfinder role's formats stand in for them;
- the virtual pipeline does not pace frames (it completes each request at once, hundreds a
  second) and stamps each request when it is queued: `FramePacer` queues requests no faster than
  the frame duration the caller set, as a sensor would deliver them, so the SensorTimestamps are
  spaced by the frame duration;
- no pykms (the ``pykms`` stand-in beside this module).

`install()` arms the shims; they are applied when picamera2's main module is first imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import mmap
import os
import sys
import threading
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

DEFAULT_FRAME_DURATION_US = 33_333  # 30 fps, when the caller sets no FrameDurationLimits


def install() -> None:
    """Apply the shims when ``picamera2.picamera2`` is imported (at once if it already is)."""
    module = sys.modules.get("picamera2.picamera2")
    if module is not None:
        _apply(module)
    elif not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds ``picamera2.picamera2`` as Python would, and patches it once it has run."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "picamera2.picamera2":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run_module = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            _apply(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _apply(picamera2_module: ModuleType) -> None:
    if getattr(picamera2_module, "_virtual_camera_shims", False):
        return
    import libcamera  # type: ignore[import-not-found]
    from picamera2.allocators.allocator import Allocator, Sync  # type: ignore[import-not-found]

    picamera2_module.DmaAllocator = _memfd_allocator_class(Allocator, Sync, libcamera)
    picamera2_class = picamera2_module.Picamera2
    picamera2_class._get_raw_modes = _raw_modes_or_viewfinder(picamera2_class._get_raw_modes,
                                                              libcamera)
    FramePacer().attach(libcamera.Camera)
    picamera2_module._virtual_camera_shims = True


# --- buffers from memfd_create instead of a dma-heap --------------------------------------------


def _plane_layout(pixel_format: str, stride: int, height: int,
                  frame_size: int) -> list[tuple[int, int]]:
    """(offset, length) of each plane in one buffer: NV12 has its chroma after the luma."""
    if pixel_format == "NV12":
        luma = stride * height
        return [(0, luma), (luma, frame_size - luma)]
    return [(0, frame_size)]


def _memfd_allocator_class(allocator_base: type, sync_base: type, libcamera: Any) -> type:
    class MemfdSync(sync_base):  # type: ignore[misc, valid-type]
        """Memory from memfd needs no cache sync: the mapping is the buffer."""

        def __init__(self, allocator: Any, framebuffer: Any, write: bool) -> None:
            self.allocator, self.framebuffer = allocator, framebuffer

        def __enter__(self) -> mmap.mmap | None:
            mapping: mmap.mmap | None = self.allocator.mapped_buffers.get(self.framebuffer)
            return mapping

        def __exit__(self, *exc: object) -> None:
            pass

    class MemfdAllocator(allocator_base):  # type: ignore[misc, valid-type]
        """picamera2's allocator interface, with buffers from memfd_create (no /dev/dma_heap)."""

        def __init__(self) -> None:
            super().__init__()
            self.sync = MemfdSync
            self.frame_buffers: dict[Any, list[Any]] = {}
            self.mapped_buffers: dict[Any, mmap.mmap] = {}
            self.fds: list[int] = []

        def allocate(self, libcamera_config: Any, use_case: Any) -> None:
            self.close()
            for stream_config in libcamera_config:
                buffers = []
                for index in range(stream_config.buffer_count):
                    fd = os.memfd_create(f"picamera2-{index}", os.MFD_CLOEXEC)
                    self.fds.append(fd)
                    os.ftruncate(fd, stream_config.frame_size)
                    planes = []
                    for offset, length in _plane_layout(str(stream_config.pixel_format),
                                                        stream_config.stride,
                                                        stream_config.size.height,
                                                        stream_config.frame_size):
                        plane = libcamera.FrameBuffer.Plane()
                        plane.fd, plane.offset, plane.length = fd, offset, length
                        planes.append(plane)
                    buffer = libcamera.FrameBuffer(planes)
                    buffers.append(buffer)
                    self.mapped_buffers[buffer] = mmap.mmap(fd, stream_config.frame_size)
                self.frame_buffers[stream_config.stream] = buffers

        def buffers(self, stream: Any) -> list[Any]:
            return self.frame_buffers[stream]

        def close(self) -> None:
            for mapping in self.mapped_buffers.values():
                try:
                    mapping.close()
                except BufferError:
                    pass  # a frame still viewed (an encoder's queue): unmapped when it is freed
            for fd in self.fds:
                os.close(fd)
            self.frame_buffers, self.mapped_buffers, self.fds = {}, {}, []

        def __del__(self) -> None:
            self.close()

    return MemfdAllocator


# --- sensor modes when the Raw role is refused --------------------------------------------------


def _raw_modes_or_viewfinder(get_raw_modes: Any, libcamera: Any) -> Any:
    def _get_raw_modes(self: Any) -> list[dict[str, Any]]:
        if self.camera.generate_configuration([libcamera.StreamRole.Raw]) is not None:
            modes: list[dict[str, Any]] = get_raw_modes(self)
            return modes
        viewfinder = self.camera.generate_configuration([libcamera.StreamRole.Viewfinder])
        formats = viewfinder.at(0).formats
        return [{"format": str(pixel_format), "size": (size.width, size.height)}
                for pixel_format in formats.pixel_formats for size in formats.sizes(pixel_format)]

    return _get_raw_modes


# --- frames at the camera's rate, not as fast as the pipeline can go ----------------------------


class FramePacer:
    """Queues libcamera requests no closer together than the frame duration, like a sensor.

    The frame duration is the minimum of the FrameDurationLimits given to ``Camera.start`` (the
    recorder sets it from its fps). A request queued while the camera stops is dropped, as a
    stopping camera cancels it.
    """

    def __init__(self) -> None:
        self.frame_duration_ns = DEFAULT_FRAME_DURATION_US * 1000
        self.next_slot_ns: int | None = None
        self.generation = 0
        self.lock = threading.Lock()
        self.stopped = threading.Condition(self.lock)

    def attach(self, camera_class: Any) -> None:
        pacer = self
        start, stop = camera_class.start, camera_class.stop
        queue_request = camera_class.queue_request

        def paced_start(camera: Any, controls: Any = None, *args: Any) -> Any:
            pacer.started(_frame_duration_us(controls))
            return start(camera, controls, *args) if controls is not None else start(camera)

        def paced_stop(camera: Any) -> Any:
            pacer.stopping()
            return stop(camera)

        def paced_queue_request(camera: Any, request: Any) -> Any:
            if not pacer.wait_for_slot():
                return 0  # the camera stopped meanwhile: the request is cancelled
            return queue_request(camera, request)

        camera_class.start, camera_class.stop = paced_start, paced_stop
        camera_class.queue_request = paced_queue_request

    def started(self, frame_duration_us: int | None) -> None:
        with self.lock:
            self.frame_duration_ns = (frame_duration_us or DEFAULT_FRAME_DURATION_US) * 1000
            self.next_slot_ns = None

    def stopping(self) -> None:
        with self.lock:
            self.generation += 1
            self.stopped.notify_all()

    def wait_for_slot(self) -> bool:
        """Wait for the next frame's time; False if the camera stopped meanwhile."""
        with self.lock:
            generation = self.generation
            now = time.monotonic_ns()
            slot = now if self.next_slot_ns is None else max(now, self.next_slot_ns)
            self.next_slot_ns = slot + self.frame_duration_ns
            while self.generation == generation:
                delay = (slot - time.monotonic_ns()) / 1e9
                if delay <= 0:
                    return True
                self.stopped.wait(delay)
            return False


def _frame_duration_us(controls: Any) -> int | None:
    for control, value in dict(controls or {}).items():
        if getattr(control, "name", control) == "FrameDurationLimits":
            return int(value[0])
    return None
