"""One writer per recordings directory (issue 13, finding 1), with real `bwv` processes.

Without the lock, a second recorder's start-up recovery sealed the first one's open recording
while it went on writing, and that recording failed verify for good. Each test here performs
that attack (a second `bwv record`, or `bwv record` beside a live `bwv run`) and shows it refused,
at once, naming the holder's pid, with the first recording intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from recorder.integrity.manifest import MANIFEST_NAME
from recorder.storage.writer_lock import LOCK_NAME, RecordingsBusyError, WriterLock
from test_camera_cli import Bwv, environment, last_manifest_line, verify, write_config
from support import warm



def second_record(config: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """`bwv record --fast` on ``out``: what an officer or a script might start by mistake."""
    return warm.run(["record", "--config", str(config), "--fast", "--duration", "2",
                           "--trigger-after", "0", "--out", str(out)],
                          env=environment(), cwd="/", timeout=120)


def assert_refused(result: subprocess.CompletedProcess[str], out: Path, pid: int) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"bwv record: {out} is in use by another recorder (pid {pid}): one "
                             "recorder writes to a recordings directory at a time; stop that "
                             "one first, or record elsewhere\n")
    assert result.stdout == ""


def manifest_types(recording: Path) -> list[str]:
    lines = (recording / MANIFEST_NAME).read_text().splitlines()
    return [json.loads(line)["type"] for line in lines]


def test_a_second_bwv_record_on_the_same_out_is_refused_and_the_first_verifies(
        tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = tmp_path / "out"
    first = Bwv(["record", "--config", str(config), "--duration", "4", "--trigger-after", "0.5",
                 "--out", str(out)], environment())
    try:
        first.log.wait_for("bwv record: recording 4 s into")
        time.sleep(0.5)  # a segment line or two in its manifest, the rest still being written
        live = [path for path in out.iterdir() if path.is_dir()]
        assert len(live) == 1 and "sealed" not in manifest_types(live[0])
        assert_refused(second_record(config, out), out, first.process.pid)
        assert "sealed" not in manifest_types(live[0])  # the attack sealed it here, before
        first.process.wait(timeout=60)  # records its 4 s to the end
    finally:
        assert first.stop() == 0, first.log.text
    recording = Path(first.board.text.strip())
    assert [path for path in out.iterdir()] == [recording]  # nothing of the second, no lock
    assert last_manifest_line(recording)["reason"] == "bwv record: duration reached"
    assert verify(recording)["ok"] is True


def test_bwv_record_is_refused_while_bwv_run_records_in_the_directory(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    recordings = tmp_path / "data" / "recordings"
    run = Bwv(["run", "--board", "terminal", "--config", str(config)], environment())
    try:
        run.board.wait_for("buffering: ok")
        run.type(b"  ")  # a double press: recording
        run.board.wait_for("recording: ok")
        time.sleep(1.0)
        assert_refused(second_record(config, recordings), recordings, run.process.pid)
        time.sleep(1.0)  # still recording, into the same manifest
    finally:
        assert run.stop() == 0, run.log.text
    [recording] = [path for path in recordings.iterdir()]
    assert last_manifest_line(recording)["reason"] == "recorder shutting down"
    assert verify(recording)["ok"] is True


def test_a_killed_recorder_leaves_no_stale_lock_and_the_next_recovers_its_recording(
        tmp_path: Path) -> None:
    """The kernel drops the lock of a process that dies (SIGKILL, like a crash): the next
    recorder is not refused, and its recovery seals what the dead one left open."""
    config = write_config(tmp_path)
    out = tmp_path / "out"
    first = Bwv(["record", "--config", str(config), "--duration", "30", "--trigger-after", "0.5",
                 "--out", str(out)], environment())
    try:
        first.log.wait_for("bwv record: recording 30 s into")
        time.sleep(2.5)
    finally:
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    [killed] = [path for path in out.iterdir() if path.is_dir()]
    assert "sealed" not in manifest_types(killed) and (out / LOCK_NAME).exists()
    result = second_record(config, out)
    assert result.returncode == 0, result.stderr
    assert last_manifest_line(killed)["reason"] == "recovered after an interruption"
    assert verify(killed)["ok"] is True and verify(Path(result.stdout.strip()))["ok"] is True
    assert not (out / LOCK_NAME).exists()  # removed on a clean release


def test_the_lock_names_its_holder_and_is_free_again_once_released(tmp_path: Path) -> None:
    with WriterLock.acquire(tmp_path) as held:
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        assert oct((tmp_path / LOCK_NAME).stat().st_mode & 0o777) == "0o600"
        # a second open file description is a second taker, even in this process (flock)
        with pytest.raises(RecordingsBusyError, match=f"pid {os.getpid()}"):
            WriterLock.acquire(tmp_path)
        held.release()
        assert not (tmp_path / LOCK_NAME).exists()
        with WriterLock.acquire(tmp_path):
            pass
