"""The warm process behind support.warm: it imports what `bwv` imports once, then forks a child
for each command. Run by support.warm as ``python warm_zygote.py SOCKET OWNER_PID`` (it ends
when OWNER_PID has); not a test helper to import.

Each connection to SOCKET (AF_UNIX, SOCK_SEQPACKET) carries one request: a JSON message
``{"args": [...], "env": {...}, "cwd": "...", "umask": N}`` with three file descriptors attached (the
child's stdin, stdout and stderr). The child takes those descriptors as 0, 1 and 2, the
environment, the working directory and the umask, and runs ``python -m recorder ARGS`` as the interpreter
would (``recorder/__main__.py`` through runpy, SystemExit and uncaught exceptions handled as the
interpreter handles them). Two messages answer: ``{"pid": N}`` at once and ``{"status": S}``
(a wait status) when the child has exited. This process never runs a command itself, so every
child starts from the same state: freshly imported modules, no threads, default signals.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import select
import signal
import socket
import sys
import threading
from typing import NoReturn

WARM_MODULES = ("recorder.cli", "recorder.cli.station", "recorder.cli.record",
                "recorder.integrity.verify", "recorder.uploader", "recorder.station.app",
                "recorder.station.evidence_store", "recorder.station.catalogue",
                "recorder.station.server", "sqlalchemy.dialects.sqlite",
                "sqlalchemy.dialects.postgresql", "psycopg", "numpy", "av",
                "recorder.device.assembly", "recorder.capture.camera.sources",
                "recorder.capture.camera.test_pattern", "recorder.capture.camera.h264_encoder",
                "recorder.capture.audio.aac_encoder")


def warm_up() -> None:
    """Import the modules every command would (one missing, as without an extra, is skipped:
    the child then imports, or fails to import, exactly as a fresh process would)."""
    for name in WARM_MODULES:
        try:
            __import__(name)
        except ImportError:
            pass


def exit_code(exc: SystemExit) -> int:
    """The status the interpreter gives SystemExit: None 0, an int itself, anything else is
    printed to stderr and gives 1."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def run_child(request: dict[str, object], fds: list[int]) -> NoReturn:
    """In the forked child: become ``python -m recorder ARGS`` on the given descriptors."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(str(request["cwd"]))
        os.umask(int(str(request["umask"])))
        sys.path[0] = os.getcwd()  # as `python -m` puts its working directory first
        environment = request["env"]
        assert isinstance(environment, dict)
        os.environ.clear()
        os.environ.update(environment)
        args = request["args"]
        assert isinstance(args, list)
        sys.argv = ["-m", *map(str, args)]
        try:
            runpy.run_module("recorder", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exit_code(exc)
        except KeyboardInterrupt:
            sys.excepthook(*sys.exc_info())
            code = -signal.SIGINT
        except BaseException:
            sys.excepthook(*sys.exc_info())
            code = 1
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    finally:
        if code == -signal.SIGINT:  # as the interpreter does: die of the signal, for the parent
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code & 0xFF)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def serve(path: str, owner: int) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    owners: dict[int, socket.socket] = {}  # child pid -> the connection that asked for it
    while True:
        # children to reap: look often; none: wake only to see whether the owner has gone
        readable, _, _ = select.select([listener], [], [], 0.01 if owners else 0.5)
        while owners:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            connection = owners.pop(pid)
            try:
                connection.send(json.dumps({"status": status}).encode())
            except OSError:
                pass
            connection.close()
        if not readable:
            if not owners and not alive(owner):  # the test session has ended: so do we
                return
            continue
        connection, _ = listener.accept()
        message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
        if len(fds) != 3:
            connection.close()
            continue
        pid = os.fork()
        if pid == 0:
            listener.close()
            connection.close()
            for other in owners.values():
                other.close()
            run_child(json.loads(message), fds)
        for fd in fds:
            os.close(fd)
        owners[pid] = connection
        connection.send(json.dumps({"pid": pid}).encode())


def main() -> None:
    # `python warm_zygote.py` put tests/support first on the path, where `python -m` puts the
    # working directory ("/", where support.warm starts this): imports must not see the helpers
    sys.path[0] = os.getcwd()
    warm_up()
    # OpenBLAS (numpy) keeps idle threads of its own, which it re-creates after a fork; a
    # Python thread could hold a lock a child would need
    if threading.active_count() != 1:
        sys.exit("warm_zygote: a thread started while importing; forking would not be safe")
    serve(sys.argv[1], int(sys.argv[2]))


if __name__ == "__main__":
    main()
