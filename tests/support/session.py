"""What the test workers of one session share: warm `bwv` processes (support.warm) and the
PostgreSQL cluster (support.station), each started once by whichever worker needs it first, and
stopped by the pytest controller at the end (tests/conftest.py calls ``start`` and ``end``).

Each costs a second or more of CPU to start; pytest-xdist runs several workers, and each used to
start its own.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

DIR_ENV = "BWV_TEST_SESSION"  # the session's directory, inherited by the workers
OWNER_ENV = "BWV_TEST_SESSION_OWNER"  # the controller's pid: what is shared ends with it
CLEANUP = "cleanup.jsonl"  # one command (argv) per line, run at the end


def start() -> None:
    """In the controller, before the workers start."""
    os.environ[DIR_ENV] = tempfile.mkdtemp(prefix="bwv-session-")
    os.environ[OWNER_ENV] = str(os.getpid())


def end() -> None:
    """In the controller at the end: stop what was started, remove the directory."""
    path = os.environ.pop(DIR_ENV, None)
    os.environ.pop(OWNER_ENV, None)
    if path is None:
        return
    root = Path(path)
    for pid_file in root.glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass
    if (root / CLEANUP).exists():
        for line in (root / CLEANUP).read_text().splitlines():
            subprocess.run(json.loads(line), capture_output=True, timeout=60)
    shutil.rmtree(root, ignore_errors=True)


def directory() -> Path:
    """The session's directory (one of this process's own outside a pytest session)."""
    if DIR_ENV not in os.environ:
        start()
        atexit.register(end)
    return Path(os.environ[DIR_ENV])


def owner() -> int:
    directory()
    return int(os.environ[OWNER_ENV])


def locked(name: str) -> Any:
    """An exclusive lock on ``name`` for every worker (a context manager)."""
    return _Lock(directory() / f"{name}.lock")


def shared(name: str, make: Callable[[], dict[str, Any]],
           cleanup: Callable[[dict[str, Any]], list[list[str]]]) -> dict[str, Any]:
    """What ``make`` returned in the first worker to ask for ``name``; ``cleanup`` gives the
    commands that undo it at the end of the session."""
    record = directory() / f"{name}.json"
    with locked(name):
        if record.exists():
            value: dict[str, Any] = json.loads(record.read_text())
            return value
        value = make()
        with open(directory() / CLEANUP, "a") as commands:
            for command in cleanup(value):
                commands.write(json.dumps(command) + "\n")
        record.write_text(json.dumps(value))
        return value


class _Lock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self._file = open(self.path, "w")
        fcntl.flock(self._file, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        self._file.close()
