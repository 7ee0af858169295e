"""Footage, manifests, keys and the station's catalogue are readable by their owner only:
directories 0700 and files 0600 whatever the umask (a umask of 000, or 022 as most systems have,
would otherwise leave evidence 0644 in 0755 directories for every local user to read).

The modes are set explicitly (``os.open(..., 0o600)`` then ``fchmod``, ``mkdir(mode=0o700)``
then ``chmod``): the mode argument alone is masked by the umask, and an existing directory keeps
the mode it was made with.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .durability import fsync_directory, write_all

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """``mkdir -p path``: every directory made here, and ``path`` itself, end up 0700 (the
    parents that already existed keep their mode: they may be /tmp or a mount point)."""
    missing = []
    walk = path
    while not walk.exists():
        missing.append(walk)
        walk = walk.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass  # made meanwhile by another thread or process: tightened below all the same
        os.chmod(directory, DIR_MODE)
    os.chmod(path, DIR_MODE)


def make_new_private_dir(path: Path) -> None:
    """``mkdir path`` that must not exist yet (FileExistsError otherwise), 0700, its missing
    parents made as by make_private_dir."""
    make_private_dir(path.parent)
    path.mkdir(mode=DIR_MODE)
    os.chmod(path, DIR_MODE)


def open_private(path: Path | str, flags: int) -> int:
    """``os.open(path, flags | O_CREAT, 0o600)``, the file 0600 even when it existed."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_private_file_once(path: Path, data: bytes) -> None:
    """Make ``path`` hold ``data`` (0600, fsynced) unless it exists already. The file is written
    whole under a temporary name and then linked into place, so a power cut never leaves half of
    it, and of two processes racing here exactly one wins (the other's data is dropped)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # the umask cannot widen 0600, but be explicit about intent
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # another process created it first: use theirs
    finally:
        os.unlink(temporary)
    fsync_directory(path.parent)


def link_into_place(partial: Path | str, path: Path) -> None:
    """Give the whole file ``partial`` the name ``path``, never replacing a file there
    (FileExistsError): a hard link, which is atomic and fails on an existing name; on a file
    system without hard links, a rename after checking that ``path`` is free. ``partial`` is
    left for the caller to remove."""
    try:
        os.link(partial, path)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP) or os.path.lexists(path):
            raise
        os.rename(partial, path)
