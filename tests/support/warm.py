"""`bwv ARGS` as a real process that does not pay for its imports: the suite runs a few hundred
commands, and a fresh interpreter spends about 0.45 s of CPU importing SQLAlchemy, the
cryptography bindings and the station before each does a few milliseconds of work.

``run`` behaves as ``subprocess.run([python, "-m", "recorder", *args], capture_output=True,
text=True, ...)``: the command runs in its own process (a fork of a warm process that imported
the modules and did nothing else: support/warm_zygote.py), on its own stdin/stdout/stderr,
with the environment and working directory given, and its exit status, output and any
traceback are what a fresh process would give. Only what the interpreter reads at start-up can
differ, so an environment that changes any of it (PYTHON*, the locale, RECORDER_NATIVE) gets a
warm process of its own. Tests whose subject is the process's start (signals during start-up,
an extra missing) use ``subprocess`` directly.
"""

from __future__ import annotations

import atexit
import json
import locale
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from collections.abc import Sequence
from typing import IO, Any, Literal, overload

ZYGOTE = Path(__file__).with_name("warm_zygote.py")
START_TIMEOUT_S = 60.0


def _startup_key(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """What an interpreter reads at start-up from ``env``: two environments with the same key
    start the same interpreter."""
    return tuple(sorted((name, value) for name, value in env.items()
                        if name.startswith(("PYTHON", "LC_")) or name in (
                            "LANG", "LANGUAGE", "RECORDER_NATIVE", "OPENBLAS_NUM_THREADS")))


class _Zygote:
    """One warm process, started on first use, stopped when the test process ends."""

    def __init__(self, env: dict[str, str]) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="bwv-warm-")
        self.path = os.path.join(self._directory.name, "socket")
        self.process = subprocess.Popen([sys.executable, str(ZYGOTE), self.path], env=env,
                                        cwd="/", stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        atexit.register(self.stop)

    def connect(self) -> socket.socket | None:
        """A connection to the warm process, waiting for it to be ready; None if it could not
        start."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                connection.connect(self.path)
                return connection
            except (FileNotFoundError, ConnectionRefusedError):
                connection.close()
                time.sleep(0.02)
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._directory.cleanup()


_zygotes: dict[tuple[tuple[str, str], ...], _Zygote] = {}
_lock = threading.Lock()


def _zygote(env: dict[str, str]) -> _Zygote:
    key = _startup_key(env)
    with _lock:
        if key not in _zygotes:
            _zygotes[key] = _Zygote(env)
        return _zygotes[key]


def _decode(data: bytes) -> str:
    """As subprocess decodes with text=True: the locale's encoding, universal newlines."""
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _receive(connection: socket.socket, deadline: float | None) -> dict[str, int] | None:
    connection.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.001))
    try:
        message = connection.recv(4096)
    except TimeoutError:
        return None
    if not message:
        raise RuntimeError("the warm bwv process went away")
    answer: dict[str, int] = json.loads(message)
    return answer


@overload
def run(args: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | Path = "/",
        timeout: float | None = 60, input: str | None = None, umask: int | None = None,
        text: Literal[True] = True) -> subprocess.CompletedProcess[str]: ...


@overload
def run(args: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | Path = "/",
        timeout: float | None = 60, input: str | None = None, umask: int | None = None,
        text: Literal[False]) -> subprocess.CompletedProcess[bytes]: ...


def run(args: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | Path = "/",
        timeout: float | None = 60, input: str | None = None, umask: int | None = None,
        text: bool = True) -> subprocess.CompletedProcess[Any]:
    """``python -m recorder ARGS`` with its output captured, decoded as text unless ``text`` is
    False (see the module docstring); under ``umask``, or this process's as a child inherits it."""
    environment = dict(os.environ if env is None else env)
    argv = [sys.executable, "-m", "recorder", *args]
    connection = _zygote(environment).connect()
    if connection is None:  # no warm process here: the plain way
        return subprocess.run(argv, env=environment, cwd=cwd, timeout=timeout, input=input,
                              capture_output=True, text=text,
                              preexec_fn=None if umask is None else lambda: os.umask(umask))
    with connection, tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout, \
            tempfile.TemporaryFile() as stderr:
        if input is not None:
            stdin.write(input.encode(locale.getpreferredencoding(False)))
            stdin.seek(0)
        request = {"args": list(args), "env": environment, "cwd": str(cwd),
                   "umask": _current_umask() if umask is None else umask}
        socket.send_fds(connection, [json.dumps(request).encode()],
                        [stdin.fileno(), stdout.fileno(), stderr.fileno()])
        deadline = None if timeout is None else time.monotonic() + timeout
        started = _receive(connection, None)
        assert started is not None
        finished = _receive(connection, deadline)
        if finished is None:
            os.kill(started["pid"], 9)
            _receive(connection, None)
            raise subprocess.TimeoutExpired(argv, timeout or 0, _output(stdout), _output(stderr))
        status = os.waitstatus_to_exitcode(finished["status"])
        out, err = _output(stdout), _output(stderr)
        if text:
            return subprocess.CompletedProcess(argv, status, _decode(out), _decode(err))
        return subprocess.CompletedProcess(argv, status, out, err)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _output(file: IO[bytes]) -> bytes:
    """What the child wrote into ``file``."""
    file.seek(0)
    return file.read()
