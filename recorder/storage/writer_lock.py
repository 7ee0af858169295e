"""One writer per recordings directory: an advisory lock that `bwv run` and `bwv record` hold.

A second recorder on the same directory would run start-up recovery over the first one's open
recording and seal it while it is still being written, which breaks that recording for good (its
sealed line would count fewer segments than it goes on to list). So a recorder takes
``.bwv-writer.lock`` in the recordings directory (``flock``, exclusive, non-blocking) before
recovery and holds it until it has sealed and stopped; a second recorder is refused at once, with
the holder's pid, which the holder writes into the file.

The kernel drops the lock when its holder dies, however it dies (SIGKILL, power cut), so a lock is
never stale; the file itself is removed on a clean release. Removing it is safe because a taker
checks, once locked, that the path still names the file it locked (else it locked a file a
releaser had just unlinked, and tries again).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from ..errors import RecorderError
from ..private_files import open_private

LOCK_NAME = ".bwv-writer.lock"


class RecordingsBusyError(RecorderError):
    """Another recorder, still running, writes to this recordings directory."""


class WriterLock:
    """The lock on one recordings directory; `acquire` it, `release` it (also on exit)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: Path) -> WriterLock:
        """Lock ``directory`` (which exists) for this process, or raise RecordingsBusyError
        naming the pid of the recorder that holds it. OSError if the lock file cannot be made."""
        path = directory / LOCK_NAME
        while True:
            fd = open_private(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _holder(fd) if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                raise RecordingsBusyError(
                    f"{directory} is in use by another recorder ({holder}): one recorder writes "
                    "to a recordings directory at a time; stop that one first, or record "
                    "elsewhere") from None
            if _still_names(path, fd):
                break
            os.close(fd)  # locked a lock file its releaser had just removed: take the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            self.path.unlink(missing_ok=True)  # while still locked: see the module's docstring
        finally:
            os.close(fd)

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _still_names(path: Path, fd: int) -> bool:
    """Whether ``path`` is still the file open as ``fd`` (not unlinked or replaced meanwhile)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _holder(fd: int) -> str:
    """``"pid N"`` from the lock file the holder wrote, or ``"pid unknown"`` when it has not
    written it yet (it writes just after locking: wait a moment for it)."""
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return f"pid {text}"
        time.sleep(0.01)
    return "pid unknown"
