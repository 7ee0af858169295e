"""`bwv ARGS` as a real process that does not pay for its imports: the suite runs a few hundred
commands, and a fresh interpreter spends about 0.45 s of CPU importing SQLAlchemy, the
cryptography bindings and the station before each does a few milliseconds of work.

``run`` behaves as ``subprocess.run([python, "-m", "recorder", *args], capture_output=True,
text=True, ...)``: the command runs in its own process (a fork of a warm process that imported
the modules and did nothing else: support/warm_zygote.py), on its own stdin/stdout/stderr,
with the environment and working directory given, and its exit status, output and any
traceback are what a fresh process would give. Only what the interpreter reads at start-up can
differ, so an environment that changes any of it (PYTHON*, the locale, RECORDER_NATIVE) gets a
warm process of its own, and one with LD_PRELOAD a fresh process. ``spawn`` does the same for a
process a test talks to while it runs (``subprocess.Popen`` with pipes). Tests whose subject is
the process's start (signals during start-up, an extra missing) use ``subprocess`` directly.
"""

from __future__ import annotations

import hashlib
import json
import locale
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Sequence
from typing import IO, Any, Literal, overload

from support import session

ZYGOTE = Path(__file__).with_name("warm_zygote.py")
START_TIMEOUT_S = 60.0


def _startup_key(env: dict[str, str]) -> str:
    """What an interpreter reads at start-up from ``env``, as a digest: two environments with
    the same key start the same interpreter. (An empty PYTHONPATH is no PYTHONPATH.)"""
    read = sorted((name, value) for name, value in env.items()
                  if (name.startswith(("PYTHON", "LC_")) or name in (
                      "LANG", "LANGUAGE", "RECORDER_NATIVE", "OPENBLAS_NUM_THREADS"))
                  and not (name == "PYTHONPATH" and value == ""))
    return hashlib.sha256(json.dumps(read).encode()).hexdigest()[:16]


def _connect(path: Path) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        connection.connect(str(path))
    except OSError:
        connection.close()
        return None
    return connection


_started: list[subprocess.Popen[bytes]] = []


def _zygote_connection(env: dict[str, str]) -> socket.socket | None:
    """A connection to the warm process for ``env``, started (under a lock every worker
    respects) if none runs yet; None if it could not start, or ``env`` has LD_PRELOAD (a
    library loaded at exec, which may read its environment only then): then run the plain way."""
    if "LD_PRELOAD" in env:
        return None
    directory = session.directory()
    key = _startup_key(env)
    path = directory / f"{key}.socket"
    connection = _connect(path)
    if connection is not None:
        return connection
    with session.locked(key):
        connection = _connect(path)
        if connection is not None or (directory / f"{key}.failed").exists():
            return connection
        process = subprocess.Popen(
            [sys.executable, str(ZYGOTE), str(path), str(session.owner())], env=env, cwd="/",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        _started.append(process)  # kept: session.end stops it (the controller knows when)
        (directory / f"{key}.pid").write_text(str(process.pid))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            connection = _connect(path)
            if connection is not None:
                return connection
            time.sleep(0.02)
        (directory / f"{key}.failed").touch()
        return None


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
    connection = _zygote_connection(environment)
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


class Process:
    """A running ``python -m recorder ARGS`` forked from a warm process, used as a
    ``subprocess.Popen`` with pipes is (``pid``, ``stdin``/``stdout``/``stderr``, ``poll``,
    ``wait``, ``send_signal``, ``terminate``, ``kill``, ``returncode``). Signals go straight to
    the child's pid; its exit status comes from the warm process, its parent."""

    def __init__(self, connection: socket.socket, args: Sequence[str], environment: dict[str, str],
                 cwd: str | Path, stderr: IO[bytes] | None) -> None:
        self.args = [sys.executable, "-m", "recorder", *args]
        self.returncode: int | None = None
        self._connection = connection
        stdin_read, stdin_write = os.pipe()
        stdout_read, stdout_write = os.pipe()
        if stderr is None:
            stderr_read, stderr_write = os.pipe()
        else:
            stderr_read, stderr_write = -1, os.dup(stderr.fileno())
        request = {"args": list(args), "env": environment, "cwd": str(cwd),
                   "umask": _current_umask()}
        try:
            socket.send_fds(connection, [json.dumps(request).encode()],
                            [stdin_read, stdout_write, stderr_write])
        finally:
            for fd in (stdin_read, stdout_write, stderr_write):
                os.close(fd)
        started = _receive(connection, None)
        assert started is not None
        self.pid = started["pid"]
        self.stdin: IO[bytes] | None = open(stdin_write, "wb")
        self.stdout: IO[bytes] | None = open(stdout_read, "rb")
        self.stderr: IO[bytes] | None = None if stderr_read < 0 else open(stderr_read, "rb")

    def poll(self) -> int | None:
        if self.returncode is None:
            self._collect(0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and not self._collect(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, number: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, number)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __del__(self) -> None:
        self._connection.close()  # a test that never waited: the warm process reaps the child

    def _collect(self, timeout: float | None) -> bool:
        """Take the exit status if it comes within ``timeout``; whether it came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        finished = _receive(self._connection, deadline)
        if finished is None:
            return False
        self.returncode = os.waitstatus_to_exitcode(finished["status"])
        self._connection.close()
        return True


def spawn(args: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | Path = "/",
          stderr: IO[bytes] | None = None) -> Process | subprocess.Popen[bytes]:
    """``python -m recorder ARGS`` running, with pipes to its stdin and stdout and, unless
    ``stderr`` is given, its stderr: forked from a warm process where there is one."""
    environment = dict(os.environ if env is None else env)
    connection = _zygote_connection(environment)
    if connection is None:
        return subprocess.Popen(
            [sys.executable, "-m", "recorder", *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE if stderr is None else stderr,
            env=environment, cwd=cwd)
    return Process(connection, args, environment, cwd, stderr)
