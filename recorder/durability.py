"""The two steps that make a write survive a power cut, in one place for every writer (segments,
manifest, station blobs): writing every byte, and fsyncing the directory that names a new file."""

from __future__ import annotations

import os
from pathlib import Path


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd``, however many short writes that takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_directory(directory: Path) -> None:
    """Make a file's creation or rename in ``directory`` durable (the file's own fsync is not)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
