"""`bwv run` on a card that is read-only as it starts: it runs, buffers, shows the fault,
refuses recordings, retries the card while buffering, and records once the card is writable.

The card is a small tmpfs remounted read-only before `bwv run` starts (Linux refuses the remount
while a file on it is open for writing, so it is done while no recorder runs) and remounted
read-write while `bwv run` is buffering: nobody presses the button until the board says the card
is usable again. Unit tests of the controller's part are in test_controller_stop.py.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.integrity.keys import DeviceKey
from test_camera_cli import Bwv, environment, last_manifest_line, verify, write_config


def remount(mount: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], check=True, timeout=30)


@pytest.fixture
def read_only_card(tmp_path: Path) -> Iterator[Path]:
    """A provisioned camera's data directory (the device key, no recordings yet) on a 4 MiB
    tmpfs, remounted read-only."""
    mount = tmp_path / "card"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True, check=False, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.strip()}")
    try:
        DeviceKey.load_or_create(mount)
        remount(mount, "ro")
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def start_run(tmp_path: Path, card: Path) -> Bwv:
    config = write_config(tmp_path, storage={"data_dir": str(card), "min_free_mb": 0.0})
    run = Bwv(["run", "--board", "terminal", "--config", str(config)], environment())
    run.board.wait_for("buffering: error", timeout=30)
    return run


def test_bwv_run_starts_on_a_read_only_card_and_refuses_recordings(
        tmp_path: Path, read_only_card: Path) -> None:
    """It exited 2 ("cannot write there"): a camera whose card went read-only was dead until
    someone found it. Now it buffers with the fault shown and refuses a start with a line."""
    run = start_run(tmp_path, read_only_card)
    try:
        run.log.wait_for("the data directory cannot be written now: storage read-only")
        run.type(b"  ")  # a double press: start
        run.log.wait_for("no new recording could be made: storage read-only", timeout=30)
        assert run.process.poll() is None
    finally:
        code = run.stop()
    assert code == 0, run.log.text
    assert "Traceback" not in run.log.text
    assert not (read_only_card / "recordings").exists()


@pytest.mark.slow
def test_bwv_run_clears_the_fault_when_the_card_is_back_and_then_records(
        tmp_path: Path, read_only_card: Path) -> None:
    """Before anyone presses the button, the retry finds the card writable and the board says
    "ok"; the next start records, and the recording verifies."""
    run = start_run(tmp_path, read_only_card)
    try:
        run.log.wait_for("the data directory cannot be written now")
        remount(read_only_card, "rw")
        run.log.wait_for("storage usable again", timeout=30)
        deadline = time.monotonic() + 10
        while not run.board.text.endswith("buffering: ok\x1b[K"):  # the status now, not before
            assert time.monotonic() < deadline, run.board.text[-200:]
            time.sleep(0.05)
        run.type(b"  ")
        run.log.wait_for("recording started", timeout=30)
        time.sleep(1.5)
    finally:
        code = run.stop()
    assert code == 0, run.log.text
    assert "Traceback" not in run.log.text
    (recording,) = [path for path in (read_only_card / "recordings").iterdir() if path.is_dir()]
    assert verify(recording)["ok"] is True
    assert last_manifest_line(recording)["reason"] == "recorder shutting down"
