"""The camera's commands as a newcomer runs them, as real subprocesses: `bwv run` says where
recordings go and logs; SIGHUP and SIGTERM seal the recording; `bwv record --fast` with audio
verifies; bad options are usage errors (exit 2, one line); `bwv doctor` prints the command that
enrolls the camera at the station, and that command works."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shlex
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import MANIFEST_NAME
from support import warm


BWV = [sys.executable, "-m", "recorder"]  # run from "/": the installed package, not ./recorder


def write_config(tmp_path: Path, device_id: str = "cam7", **tables: dict[str, object]) -> Path:
    """A settings file for small, quick recordings with a data directory under ``tmp_path``."""
    document: dict[str, dict[str, object]] = {
        "device": {"device_id": device_id},
        "camera": {"source": "synthetic", "width": 320, "height": 240, "fps": 15,
                   "bitrate_bps": 300_000, "keyframe_interval_s": 0.5},
        "audio": {"source": "synthetic"},
        "recording": {"pre_event_s": 1.0, "segment_s": 2.0},
        "storage": {"data_dir": str(tmp_path / "data"), "min_free_mb": 1.0},
    }
    for table, values in tables.items():
        document.setdefault(table, {}).update(values)
    lines = []
    for table, values in document.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    config = tmp_path / "recorder.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "JOURNAL_STREAM"}
    return {**env, **extra}


def verify(recording: Path) -> dict[str, object]:
    checked = warm.run(["verify", "--json", str(recording)], env=environment(),
                             cwd="/", timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report: dict[str, object] = json.loads(checked.stdout)
    return report


def last_manifest_line(recording: Path) -> dict[str, object]:
    last: dict[str, object] = json.loads(
        (recording / MANIFEST_NAME).read_text().splitlines()[-1])
    return last


class Output:
    """Everything a subprocess writes to one stream, collected by a thread."""

    def __init__(self, read: Callable[[], bytes]) -> None:
        self._read = read
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while True:
            try:
                chunk = self._read()
            except OSError:
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    @property
    def text(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")

    def wait_for(self, words: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while words not in self.text:
            # the stream has ended (the process exited): what it said is all it will say
            ended = not self._thread.is_alive()
            assert not ended or words in self.text, f"no {words!r} before the end of:\n{self.text}"
            assert time.monotonic() < deadline, f"no {words!r} in:\n{self.text}"
            time.sleep(0.05)

    def join(self) -> None:
        self._thread.join(timeout=10)


class Bwv:
    """`bwv ...` as a subprocess: keys go to its stdin (the terminal board of `bwv run`),
    ``board`` is its stdout (the status line), ``log`` its stderr unless that goes to ``stderr``."""

    def __init__(self, args: list[str], env: dict[str, str],
                 stderr: IO[bytes] | None = None) -> None:
        self.process = warm.spawn(args, env=env, cwd="/", stderr=stderr)
        self.board = self._collect(self.process.stdout)
        self.log = self._collect(self.process.stderr)

    @staticmethod
    def _collect(stream: IO[bytes] | None) -> Output:
        if stream is None:
            return Output(lambda: b"")
        return Output(lambda: os.read(stream.fileno(), 4096))

    def type(self, keys: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(keys)
        self.process.stdin.flush()

    def stop(self, number: signal.Signals = signal.SIGTERM) -> int:
        """Send ``number``; the exit status, once every stream is read and closed."""
        if self.process.poll() is None:
            self.process.send_signal(number)
        code = self.process.wait(timeout=60)
        self.board.join()
        self.log.join()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code


def test_bwv_run_says_where_recordings_go_and_logs_at_info(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    run = Bwv(["run", "--board", "terminal", "--config", str(config)], environment())
    try:
        run.board.wait_for("buffering: ok")
        run.type(b"d")  # dock: there is no station
        run.board.wait_for("docked: no station configured")
        run.type(b"d")
        run.log.wait_for("undocked")
    finally:
        assert run.stop() == 0
    data = tmp_path / "data"
    assert f"bwv run: camera cam7; data directory {data}" in run.log.text
    assert f"recordings in {data / 'recordings'}" in run.log.text
    assert "INFO recorder.device: camera cam7 running: synthetic camera" in run.log.text
    assert "WARNING recorder.controller: docked, but no station is configured" in run.log.text
    assert "INFO recorder.controller: undocked: buffering" in run.log.text


def test_bwv_log_level_warning_hides_the_info_lines(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    run = Bwv(["--log-level", "warning", "run", "--board", "terminal", "--config", str(config)],
              environment())
    try:
        run.board.wait_for("buffering: ok")
        run.type(b"d")
        run.board.wait_for("docked: no station configured")
        run.log.wait_for("WARNING recorder.controller: docked")
    finally:
        assert run.stop() == 0
    assert " INFO " not in run.log.text


def test_under_systemd_log_lines_carry_a_syslog_priority_and_no_time(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    journal = tmp_path / "journal"
    with open(journal, "wb") as stream:
        status = os.fstat(stream.fileno())
        env = environment(JOURNAL_STREAM=f"{status.st_dev}:{status.st_ino}")
        run = Bwv(["run", "--board", "terminal", "--config", str(config)], env, stderr=stream)
        try:
            run.board.wait_for("buffering: ok")
            run.type(b"d")
            run.board.wait_for("docked: no station configured")
        finally:
            assert run.stop() == 0
    lines = journal.read_text().splitlines()
    assert "<6>recorder.device: camera cam7 running: synthetic camera, synthetic microphone; " \
           "pre-event buffer 1 s" in lines
    assert any(line.startswith("<4>recorder.controller: docked, but no station") for line in lines)
    # the line saying where recordings go is a plain print, not a log record
    assert all(line.startswith(("<", "bwv run: ")) for line in lines), lines


def test_journal_format_only_when_stderr_is_the_journal_stream(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    run = Bwv(["run", "--board", "terminal", "--config", str(config)],
              environment(JOURNAL_STREAM="8:12345"))
    try:
        run.log.wait_for("recorder.device: camera cam7 running")
    finally:
        assert run.stop() == 0
    assert " INFO recorder.device: camera cam7 running" in run.log.text


@pytest.mark.parametrize("args", [["--log-level", "bogus", "doctor"],
                                  ["run", "--log-level", "bogus"]])
def test_an_unknown_log_level_is_a_usage_error(args: list[str]) -> None:
    result = warm.run([*args], env=environment(), cwd="/", timeout=60)
    assert result.returncode == 2
    assert "argument --log-level: invalid choice: 'bogus'" in result.stderr
    assert "Traceback" not in result.stderr


# -- SIGHUP and SIGTERM seal the recording ---------------------------------------------------

def the_recording(tmp_path: Path) -> Path:
    recordings = [path for path in (tmp_path / "data" / "recordings").iterdir() if path.is_dir()]
    assert len(recordings) == 1, recordings
    return recordings[0]


def test_closing_the_terminal_of_bwv_run_seals_the_recording(tmp_path: Path) -> None:
    """`bwv run` on a pty it has as its controlling terminal; closing the terminal (the pty's
    other end) sends it SIGHUP, as closing a terminal window does."""
    config = write_config(tmp_path)
    controller, follower = pty.openpty()

    def own_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen([*BWV, "run", "--board", "terminal", "--config", str(config)],
                               stdin=follower, stdout=follower, stderr=follower,
                               env=environment(), cwd="/", preexec_fn=own_terminal)
    os.close(follower)
    screen = Output(lambda: os.read(controller, 4096))
    try:
        screen.wait_for("buffering: ok")
        os.write(controller, b"  ")  # a double press
        screen.wait_for("recording: ok")
        time.sleep(2.5)
    finally:
        os.close(controller)  # the terminal is gone: SIGHUP
    assert process.wait(timeout=60) == 0
    recording = the_recording(tmp_path)
    last = last_manifest_line(recording)
    assert last["type"] == "sealed" and last["reason"] == "recorder shutting down"
    assert verify(recording)["ok"] is True


@pytest.mark.parametrize("number", [signal.SIGHUP, signal.SIGTERM])
def test_a_signal_stops_bwv_record_early_and_seals_what_was_recorded(
        tmp_path: Path, number: signal.Signals) -> None:
    config = write_config(tmp_path)
    out = tmp_path / "out"
    record = Bwv(["record", "--config", str(config), "--duration", "60", "--trigger-after", "1",
                  "--out", str(out)], environment())
    try:
        record.log.wait_for("bwv record: recording 60 s into")
        time.sleep(2.0)
    finally:
        assert record.stop(number) == 0, record.log.text
    assert f"stopped early by {number.name}: the recording so far is sealed" in record.log.text
    recording = Path(record.board.text.strip())
    assert recording.parent == out
    last = last_manifest_line(recording)
    assert last["type"] == "sealed" and last["reason"] == "bwv record: stopped early"
    assert verify(recording)["ok"] is True


# -- bwv record: --fast with audio, and usage errors -----------------------------------------

def test_bwv_record_fast_with_audio_verifies(tmp_path: Path) -> None:
    out = tmp_path / "out"
    made = warm.run(["record", "--fast", "--audio", "synthetic", "--size", "320x240",
                           "--pre-event", "2", "--duration", "5", "--out", str(out)],
                          env=environment(BWV_DATA_DIR=str(tmp_path / "data")), cwd="/",
                          timeout=300)
    assert made.returncode == 0, made.stderr
    recording = Path(made.stdout.strip())
    report = verify(recording)
    assert report["ok"] is True
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                            "-of", "csv=p=0", str(recording / "000001.mp4")],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["h264", "aac"]


@pytest.mark.parametrize("options, message", [
    (["--size", "640"], "--size '640' is not WIDTHxHEIGHT, e.g. 1280x720"),
    (["--size", "640x"], "--size '640x' is not WIDTHxHEIGHT"),
    (["--size", "axb"], "--size 'axb' is not WIDTHxHEIGHT"),
    (["--size", "641x480"], "H.264 4:2:0 needs even sizes"),
    (["--duration", "0"], "--duration 0 is not allowed: give more than zero seconds"),
    (["--duration", "nan"], "--duration nan is not allowed"),
    (["--trigger-after", "-1"], "--trigger-after -1 is not allowed: give zero or more seconds"),
    (["--fps", "0"], "camera.fps = 0 is not allowed"),
    (["--pre-event", "500"], "recording.pre_event_s = 500.0 is not allowed"),
    (["--segment", "1"], "recording.segment_s = 1.0 is not allowed"),
    (["--source", "webcam"], "camera.source = 'webcam' is not allowed"),
    (["--source", "file:/no/such/clip.mp4"], "/no/such/clip.mp4 is not a file"),
    (["--audio", "loud"], "audio.source = 'loud' is not allowed"),
    (["--fast", "--audio", "pyaudio"], "--fast cannot be used with a live microphone"),
    (["--config", "/no/such/file.toml"], "settings file /no/such/file.toml does not exist"),
    (["--out", "/etc/hostname/rec"], "--out /etc/hostname/rec: cannot make the directory"),
])
def test_bad_record_options_are_usage_errors_in_one_line(tmp_path: Path, options: list[str],
                                                         message: str) -> None:
    out = str(tmp_path / "out")  # a later --out in ``options`` wins
    result = warm.run(["record", "--duration", "1", "--out", out, *options],
                            env=environment(BWV_DATA_DIR=str(tmp_path / "data")), cwd="/",
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("bwv record: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("options, message", [
    (["--config", "/no/such/file.toml"], "settings file /no/such/file.toml does not exist"),
    (["--fps", "30"], "unrecognized arguments: --fps 30"),
    (["--board", "led"], "argument --board: invalid choice: 'led'"),
])
def test_bad_run_options_are_usage_errors(options: list[str], message: str) -> None:
    result = warm.run(["run", *options], env=environment(), cwd="/",
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


# -- bwv doctor: the device id and the enroll command ----------------------------------------

def doctor(*args: str, env: dict[str, str] | None = None) -> dict[str, str]:
    result = warm.run(["doctor", *args], env=env or environment(), cwd="/",
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines = {}
    for line in result.stdout.splitlines():
        label, _, value = line.partition("  ")
        lines[label.strip()] = value.strip()
    return lines


def test_doctor_prints_an_enroll_command_that_enrolls_the_camera(tmp_path: Path) -> None:
    config = write_config(tmp_path, device_id="cam-7.north")
    key = DeviceKey.load_or_create(tmp_path / "data")
    lines = doctor("--config", str(config))
    assert lines["device id"] == "cam-7.north (device.device_id)"
    command = shlex.split(lines["enroll at the station"])
    assert command[:3] == ["bwv", "station", "enroll"]
    station = tmp_path / "station"
    enrolled = warm.run([*command[1:], "--data", str(station)], env=environment(),
                              cwd="/", timeout=120)
    assert enrolled.returncode == 0, enrolled.stderr
    assert enrolled.stdout.splitlines()[0] == f"enrolled cam-7.north: key sha256 {key.fingerprint}"
    pin = enrolled.stdout.splitlines()[-1]
    assert pin.startswith("bwv-station/1:")  # the pin, for the camera
    assert lines["evidence station"].startswith("no station.url: docking uploads nothing; no "
                                                "station key pinned: uploads delete nothing")
    pinned = doctor("--config", str(write_config(tmp_path, device_id="cam-7.north", station={
        "url": "http://127.0.0.1:8470", "public_key": pin})))
    station_id = pin.split(":")[1]
    assert pinned["evidence station"].startswith(f"http://127.0.0.1:8470; pinned {station_id} "
                                                 "(key sha256 ")


def test_doctor_warns_of_a_device_id_the_station_would_refuse(tmp_path: Path) -> None:
    DeviceKey.load_or_create(tmp_path / "data")
    lines = doctor("--config", str(write_config(tmp_path, device_id="cam 7")))
    assert lines["device id"].startswith("cam 7 (device.device_id) -> the station refuses")
    assert lines["enroll at the station"].startswith("bwv station enroll --device-id 'cam 7' ")


def test_doctor_without_settings_uses_the_host_name_and_the_default_data_dir(
        tmp_path: Path) -> None:
    DeviceKey.load_or_create(tmp_path)
    lines = doctor(env=environment(BWV_DATA_DIR=str(tmp_path)))
    assert lines["device id"].startswith(f"{socket.gethostname()} (the host name")
    assert lines["enroll at the station"].startswith(
        f"bwv station enroll --device-id {shlex.quote(socket.gethostname())} --public-key ")


def test_doctor_without_a_key_prints_no_enroll_command(tmp_path: Path) -> None:
    lines = doctor("--config", str(write_config(tmp_path)))
    assert lines["device key"].startswith("no device key yet")
    assert "enroll at the station" not in lines


def test_doctor_with_a_bad_settings_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera]\nfps = 0\n")
    result = warm.run(["doctor", "--config", str(bad)], env=environment(), cwd="/",
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("bwv doctor: camera.fps = 0 is not allowed")
