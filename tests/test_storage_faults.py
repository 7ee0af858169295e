"""Storage faults with real mechanisms, against `bwv record` and `bwv run` as real processes.

A full card is a small tmpfs (``mount -t tmpfs -o size=2m``). A card that goes read-only or
returns I/O errors mid-recording is a system-call shim (tests/support/storage_fault.c, compiled
here with gcc and LD_PRELOADed): while a switch file exists, every write, sync, rename, mkdir and
open-for-writing of a file under a given path fails with EROFS or EIO, as the kernel reports for
a card that went read-only after an error or is failing. (``mount -o remount,ro`` cannot stand in
for it: Linux refuses it with EBUSY while the recorder has a file open for writing, and the
recorder always has: its lock file.) A removed recording directory is ``rm -rf``.

Each test checks what the issue asked: no traceback, the exit status and a message saying which
fault it was, the recording sealed (``bwv verify`` passing, or failing only as the fault
explains), and that `bwv run` keeps running and records again once the fault is cleared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder import PreEventRing
from recorder.board import BoardEvent, BoardEventKind, BoardSettings, Condition, ScriptedBoard
from recorder.capture.clock import monotonic_us
from recorder.device.controller import Controller, State
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import MANIFEST_NAME
from recorder.settings import Settings
from recorder.storage.recording import RecordingFactory, recover_interrupted
from support import emulated
from test_camera_cli import BWV, Bwv, environment, last_manifest_line, verify, write_config

SHIM_SOURCE = Path(__file__).parent / "support" / "storage_fault.c"
EROFS, EIO = 30, 5


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a card that fills up after a few seconds of video."""
    mount = tmp_path / "card"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The storage-fault shim, compiled for this machine."""
    if emulated.active():
        pytest.skip(emulated.LD_PRELOAD_SHIM)
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the system-call fault shim")
    library = tmp_path_factory.mktemp("shim") / "storage_fault.so"
    subprocess.run(["gcc", "-Wall", "-Werror", "-shared", "-fPIC", "-O1", "-o", str(library),
                    str(SHIM_SOURCE), "-ldl"], check=True, timeout=60)
    return library


def faulty(shim: Path, path: str, switch: Path, error: int) -> dict[str, str]:
    """The environment of a recorder whose writes under ``path`` fail with ``error`` while
    ``switch`` exists."""
    return environment(LD_PRELOAD=str(shim), BWV_FAULT_PATH=path,
                       BWV_FAULT_SWITCH=str(switch), BWV_FAULT_ERRNO=str(error))


def record(config: Path, out: Path, *options: str, env: dict[str, str] | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BWV, "record", "--config", str(config), "--audio", "none",
                           "--trigger-after", "1", "--out", str(out), *options],
                          env=env or environment(), cwd="/", capture_output=True, text=True,
                          timeout=timeout)


def recordings(out: Path) -> list[Path]:
    return sorted(path for path in out.iterdir() if path.is_dir())


def message(stderr: str) -> str:
    """The last line of `bwv record`'s stderr: its verdict."""
    return stderr.strip().splitlines()[-1]


def fill(mount: Path, leave: int) -> None:
    """Fill the file system at ``mount`` to ``leave`` bytes free."""
    stat = os.statvfs(mount)
    (mount / "filler").write_bytes(b"\0" * (stat.f_bavail * stat.f_bsize - leave))


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


# -- a full card ---------------------------------------------------------------------------------

@pytest.mark.parametrize("min_free_mb", [1.0, 0.0])
def test_a_full_card_stops_bwv_record_at_once_sealed_and_exit_1(
        tmp_path: Path, tmpfs: Path, min_free_mb: float) -> None:
    """Finding 5: the recording stops when the card fills, not after --duration (120 s of media
    would need ~4 MB); exit 1 saying "storage full"; sealed and verifying. With min_free_mb 0 the
    kernel's ENOSPC is what stops it: still one line each, no traceback."""
    config = write_config(tmp_path, storage={"min_free_mb": min_free_mb})
    started = time.monotonic()
    result = record(config, tmpfs / "out", "--fast", "--duration", "120")
    assert time.monotonic() - started < 30
    assert result.returncode == 1, result.stderr
    assert_no_traceback(result.stderr)
    assert "stopped: storage full" in message(result.stderr)
    assert result.stdout == ""
    (recording,) = recordings(tmpfs / "out")
    assert "storage full" in str(last_manifest_line(recording)["reason"])
    report = verify(recording)
    assert report["ok"] is True


def test_a_start_on_a_full_card_leaves_no_empty_recording(tmp_path: Path, tmpfs: Path) -> None:
    """Finding 5: one page free: the lock file takes it and the manifest's header does not fit.
    Before, a directory with a 0-byte manifest.jsonl stayed, failing verify forever."""
    config = write_config(tmp_path, storage={"min_free_mb": 0.0})
    out = tmpfs / "out"
    out.mkdir(mode=0o700)
    fill(tmpfs, leave=4096)
    result = record(config, out, "--fast", "--duration", "2")
    assert result.returncode == 1, result.stderr
    assert_no_traceback(result.stderr)
    assert "recording refused" in message(result.stderr)
    assert "storage full (No space left on device)" in message(result.stderr)
    assert list(out.iterdir()) == []


# -- a card that goes read-only, or fails, mid-recording -----------------------------------------

def record_until_fault(tmp_path: Path, shim: Path, path: str, error: int
                       ) -> tuple[Bwv, Path, float]:
    """`bwv record` for 60 s with the fault switched on 2 s into the recording; returns it
    finished, its output directory, and how long it ran after the fault."""
    config = write_config(tmp_path)
    out = tmp_path / "out"
    switch = tmp_path / "fault-on"
    env = faulty(shim, path or str(out), switch, error)
    bwv = Bwv(["record", "--config", str(config), "--audio", "none", "--duration", "60",
               "--trigger-after", "1", "--out", str(out)], env)
    try:
        bwv.log.wait_for("bwv record: recording 60 s into")
        time.sleep(2.0)
        switch.touch()
        faulted = time.monotonic()
        bwv.process.wait(timeout=30)
        after = time.monotonic() - faulted
    finally:
        bwv.stop()
        switch.unlink(missing_ok=True)
    return bwv, out, after


def test_a_card_gone_read_only_stops_bwv_record_saying_so(tmp_path: Path, shim: Path) -> None:
    """Finding 5: on a read-only card the message says read-only, never "storage full"; the
    recording cannot be sealed on the card, and the next recorder on the directory seals it."""
    bwv, out, after = record_until_fault(tmp_path, shim, "", EROFS)
    assert bwv.process.returncode == 1, bwv.log.text
    assert after < 10
    assert_no_traceback(bwv.log.text)
    verdict = message(bwv.log.text)
    assert "stopped: storage read-only (Read-only file system)" in verdict
    assert "storage full" not in bwv.log.text
    assert "the next recorder started on its directory seals it" in verdict
    (recording,) = recordings(out)
    assert last_manifest_line(recording)["type"] != "sealed"
    # The card is writable again: the next recorder's start-up seals it, and it verifies.
    again = record(write_config(tmp_path), out, "--fast", "--duration", "1")
    assert again.returncode == 0, again.stderr
    assert verify(recording)["ok"] is True
    assert last_manifest_line(recording)["reason"] == "recovered after an interruption"


def test_io_errors_on_the_segments_stop_bwv_record_sealed(tmp_path: Path, shim: Path) -> None:
    """EIO on the segment files only: the manifest is sealed, with an error event naming the
    segment that could not be written; verify fails only for that segment's file."""
    bwv, out, after = record_until_fault(tmp_path, shim, ".mp4.partial", EIO)
    assert bwv.process.returncode == 1, bwv.log.text
    assert after < 10
    assert_no_traceback(bwv.log.text)
    assert "stopped: storage I/O error (Input/output error); sealed" in message(bwv.log.text)
    (recording,) = recordings(out)
    lines = [json.loads(line) for line in (recording / MANIFEST_NAME).read_text().splitlines()]
    assert lines[-1]["type"] == "sealed"
    errors = [line for line in lines if line.get("event") == "error"]
    unwritten = [path.name for path in recording.glob("*.mp4.partial")]
    assert len(unwritten) == 1
    assert any(unwritten[0] in json.dumps(line) and "sealing the unsealed segment failed"
               in json.dumps(line) for line in errors), errors
    checked = subprocess.run([*BWV, "verify", str(recording)], env=environment(), cwd="/",
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 1
    problems = [line for line in checked.stdout.splitlines() if line.startswith("  0")]
    assert problems and all(unwritten[0] in line for line in problems), checked.stdout


# -- the recording's directory removed -----------------------------------------------------------

def test_a_removed_recording_directory_is_reported_truthfully(tmp_path: Path) -> None:
    """Finding 7: no claim that "every whole fragment written is kept" (it went with the
    directory), no traceback, exit 1."""
    config = write_config(tmp_path)
    out = tmp_path / "out"
    bwv = Bwv(["record", "--config", str(config), "--audio", "none", "--duration", "60",
               "--trigger-after", "1", "--out", str(out)], environment())
    try:
        bwv.log.wait_for("bwv record: recording 60 s into")
        time.sleep(2.0)
        for recording in recordings(out):
            shutil.rmtree(recording)
        assert bwv.process.wait(timeout=30) == 1
    finally:
        bwv.stop()
    assert_no_traceback(bwv.log.text)
    assert "kept" not in bwv.log.text
    assert message(bwv.log.text).endswith(
        "stopped: its directory was removed while recording; what was written to it is gone")


# -- bwv run keeps running ------------------------------------------------------------------------

@pytest.mark.slow
def test_bwv_run_survives_a_read_only_card_and_records_once_it_is_back(
        tmp_path: Path, shim: Path) -> None:
    """Finding 4: the card goes read-only while recording, and a start is asked for while it
    still is: `bwv run` shows the fault and keeps running; with the card back, the next start
    seals the recording the fault left open and records."""
    config = write_config(tmp_path)
    recordings_dir = tmp_path / "data" / "recordings"
    switch = tmp_path / "fault-on"
    run = Bwv(["run", "--board", "terminal", "--config", str(config)],
              faulty(shim, str(recordings_dir), switch, EROFS))
    try:
        run.board.wait_for("buffering: ok")
        run.type(b"  ")  # a double press: start
        run.board.wait_for("recording: ok")
        time.sleep(2.0)
        switch.touch()
        run.log.wait_for("stopped: storage read-only", timeout=30)
        run.board.wait_for("buffering: error")
        run.type(b"  ")  # start while the card is still read-only: refused, still running
        run.log.wait_for("no new recording could be made: storage read-only", timeout=30)
        assert run.process.poll() is None
        first = recordings(recordings_dir)
        assert len(first) == 1
        switch.unlink()
        time.sleep(1.0)
        run.type(b"  ")
        run.log.wait_for("recovered interrupted recording", timeout=30)
        run.log.wait_for("recording started", timeout=30)
        time.sleep(2.5)
    finally:
        switch.unlink(missing_ok=True)
        code = run.stop()
    assert code == 0, run.log.text
    assert_no_traceback(run.log.text)
    both = recordings(recordings_dir)
    assert len(both) == 2
    for recording in both:
        assert verify(recording)["ok"] is True
    assert last_manifest_line(both[0])["reason"] == "recovered after an interruption"
    assert last_manifest_line(both[1])["reason"] == "recorder shutting down"


def test_markers_and_stealth_on_a_full_card_leave_the_controller_running(
        tmp_path: Path, tmpfs: Path) -> None:
    """Finding 4: a manifest line that cannot be written on the controller's thread (a marker,
    stealth) raised out of `Controller.handle` and ended `bwv run`. Now the fault is shown and
    reported, and the recording, sealed later by recovery, verifies."""
    settings = Settings.load(write_config(tmp_path))
    key = DeviceKey.load_or_create(tmp_path / "data")
    factory = RecordingFactory(tmpfs, key, settings, None)
    board = ScriptedBoard(BoardSettings(), run_thread=False)
    controller = Controller(PreEventRing(1.0, 1 << 20), board, factory.open, min_free_bytes=0,
                            storage=lambda: 1 << 40, clock_us=monotonic_us)
    path = controller.start_recording("test")
    assert path is not None
    fill(tmpfs, leave=0)
    for press in range(40):  # the manifest's last page fills after a few lines
        controller.handle(BoardEvent(BoardEventKind.MARKER, float(press), "button"))
    controller.handle(BoardEvent(BoardEventKind.STEALTH_TOGGLE, 41.0, "button"))
    assert any("marker not entered" in error and "storage full (No space left on device)"
               in error for error in controller.errors), controller.errors
    assert Condition.STORAGE_FULL in controller.conditions
    controller.stop_recording("test over")
    assert controller.state is State.BUFFERING
    (tmpfs / "filler").unlink()
    recover_interrupted(tmpfs, key)
    assert verify(path)["ok"] is True
