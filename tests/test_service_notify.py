"""systemd notification: READY, WATCHDOG while frames flow, STOPPING; nothing outside systemd."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.recording import settings

from recorder.board import BoardSettings, ScriptedBoard
from recorder.cli.record import run
from recorder.device.service_notify import ServiceNotifier


@pytest.fixture()
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A socket standing in for systemd's notify socket, and its path."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(0.2)
        yield sock, path


def received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            return messages


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = ServiceNotifier({})
    assert not notifier.enabled and notifier.notify("READY=1") is False
    notifier.alive()


def test_watchdog_is_sent_at_half_the_period(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = ServiceNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    assert notifier.watchdog_interval_s == 0.1
    notifier.ready()
    for _ in range(5):
        notifier.alive()  # only the first of a burst goes out
    time.sleep(0.12)
    notifier.alive()
    assert received(sock) == ["READY=1\nSTATUS=buffering", "WATCHDOG=1", "WATCHDOG=1"]


def test_bwv_run_is_ready_pets_the_watchdog_and_says_when_it_stops(
        tmp_path: Path, listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = ServiceNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    stop = threading.Event()
    threading.Timer(1.5, stop.set).start()
    with ScriptedBoard(BoardSettings()) as board:
        assert run(settings(tmp_path, audio_source="none"), board, stop, notifier) == 0
    messages = received(sock)
    assert messages[0].startswith("READY=1") and messages[-1] == "STOPPING=1"
    assert messages.count("WATCHDOG=1") >= 5


def test_a_camera_that_stops_delivering_frames_stops_the_watchdog(
        tmp_path: Path, listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = ServiceNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    stop = threading.Event()
    threading.Timer(2.0, stop.set).start()
    clip = tmp_path / "short.mp4"
    from support.recording import make_video_file

    make_video_file(clip, frames=5, fps=25)  # the "camera" runs dry after 0.2 s
    with ScriptedBoard(BoardSettings()) as board:
        run(settings(tmp_path, camera_source=f"file:{clip}", audio_source="none"), board, stop,
            notifier, stall_s=0.5)
    watchdogs = received(sock).count("WATCHDOG=1")
    assert 1 <= watchdogs <= 12  # petted while frames came, then not for the remaining ~1.3 s
