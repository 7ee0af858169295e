"""Signals always seal (issue 13, finding 6): SIGINT, SIGTERM and SIGHUP, once, repeated 1-2 ms
apart, or mixed, stop `bwv record` and `bwv run` with the recording sealed and verifying, exit
0 and no traceback. Before, a second SIGINT raised KeyboardInterrupt in the middle of sealing
and left the recording unsealed; real processes, real signals."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

import recorder
from recorder.integrity.manifest import MANIFEST_NAME
from test_camera_cli import BWV, Bwv, environment, last_manifest_line, verify, write_config
from support import warm

INT, TERM, HUP = signal.SIGINT, signal.SIGTERM, signal.SIGHUP
BURSTS = [
    pytest.param((INT, INT), id="INT-INT"),
    pytest.param((INT,), id="INT", marks=pytest.mark.slow),
    pytest.param((TERM,), id="TERM", marks=pytest.mark.slow),
    pytest.param((HUP,), id="HUP", marks=pytest.mark.slow),
    pytest.param((INT, TERM), id="INT-TERM", marks=pytest.mark.slow),
    pytest.param((TERM, INT), id="TERM-INT", marks=pytest.mark.slow),
    pytest.param((TERM, TERM), id="TERM-TERM", marks=pytest.mark.slow),
    pytest.param((HUP, INT, TERM), id="HUP-INT-TERM", marks=pytest.mark.slow),
    pytest.param((INT,) * 6, id="INTx6", marks=pytest.mark.slow),
]


def burst(process: warm.Process | subprocess.Popen[bytes], numbers: tuple[signal.Signals, ...]) -> None:
    """The signals, 1.5 ms apart: as fast as a user hammering Ctrl-C, or a service manager
    sending SIGTERM just after a terminal sent SIGHUP."""
    for number in numbers:
        process.send_signal(number)
        time.sleep(0.0015)


def wait_for_a_segment_line(recordings: Path, timeout_s: float = 60.0) -> None:
    """Until a recording under ``recordings`` has a segment line in its manifest: the signals
    then land with one segment sealed and the next being written."""
    deadline = time.monotonic() + timeout_s
    while not any('"type":"segment"' in manifest.read_text()
                  for manifest in recordings.glob(f"*/{MANIFEST_NAME}")):
        assert time.monotonic() < deadline, f"no segment line in {recordings} in {timeout_s} s"
        time.sleep(0.05)
    time.sleep(0.1)  # a few frames into the next segment


def assert_clean(bwv: Bwv, code: int) -> None:
    assert code == 0, bwv.log.text
    assert "Traceback" not in bwv.log.text and "KeyboardInterrupt" not in bwv.log.text, bwv.log.text


@pytest.mark.parametrize("numbers", BURSTS)
def test_bwv_record_seals_whatever_signals_come(tmp_path: Path,
                                                numbers: tuple[signal.Signals, ...]) -> None:
    config = write_config(tmp_path)
    out = tmp_path / "out"
    record = Bwv(["record", "--config", str(config), "--duration", "60", "--trigger-after",
                  "0.5", "--out", str(out)], environment())
    try:
        record.log.wait_for("bwv record: recording 60 s into")
        wait_for_a_segment_line(out)
        burst(record.process, numbers)
    finally:
        code = record.stop()
    assert_clean(record, code)
    # the first signal handled is named: signals that arrive together (a burst under load) are
    # handled by Python in signal-number order, so it is one of the burst, not always the first
    said = [line for line in record.log.text.splitlines() if "stopped early by" in line]
    assert said in ([f"bwv record: stopped early by {number.name}: the recording so far is "
                     "sealed"] for number in set(numbers)), record.log.text
    recording = Path(record.board.text.strip())
    assert last_manifest_line(recording)["reason"] == "bwv record: stopped early"
    assert verify(recording)["ok"] is True


@pytest.mark.parametrize("numbers", BURSTS)
def test_bwv_run_seals_whatever_signals_come(tmp_path: Path,
                                             numbers: tuple[signal.Signals, ...]) -> None:
    config = write_config(tmp_path)
    run = Bwv(["run", "--board", "terminal", "--config", str(config)], environment())
    try:
        run.board.wait_for("buffering: ok")
        run.type(b"  ")  # a double press: recording
        run.board.wait_for("recording: ok")
        wait_for_a_segment_line(tmp_path / "data" / "recordings")
        burst(run.process, numbers)
    finally:
        code = run.stop()
    assert_clean(run, code)
    [recording] = list((tmp_path / "data" / "recordings").iterdir())
    assert last_manifest_line(recording)["reason"] == "recorder shutting down"
    assert verify(recording)["ok"] is True


@functools.cache
def installing_line() -> int:
    """The line of recorder/__init__.py that installs ``recorder.stop_quietly``."""
    source = Path(recorder.__file__).read_text().splitlines()
    return next(number for number, text in enumerate(source, 1)
                if "signal.signal(signal.SIGINT, stop_quietly)" in text)


def prologue(name: str, line: int) -> bool:
    """Whether a traceback's frame is in bwv's start-up before it handles SIGINT itself: the
    package's own first lines, up to the one that installs ``recorder.stop_quietly``."""
    return (Path(name).name == "__init__.py" and Path(name).parent.name == "recorder"
            and line <= installing_line())


@pytest.mark.parametrize("command", [["record", "--fast", "--duration", "30"],
                                     ["run", "--board", "terminal"]], ids=["record", "run"])
@pytest.mark.parametrize("delay_s", [0.0, 0.3, 0.8, 1.5])
def test_signals_while_bwv_starts_leave_no_traceback_and_nothing_unsealed(
        tmp_path: Path, delay_s: float, command: list[str]) -> None:
    """Two SIGINTs at some moment of start-up (importing, loading settings, buffering): it
    stops with a line saying so, or is killed before Python listens; never a traceback, never
    an unsealed recording."""
    out = tmp_path / "out" if command[0] == "record" else tmp_path / "data" / "recordings"
    where = ["--out", str(out)] if command[0] == "record" else []
    process = subprocess.Popen([*BWV, *command, "--config", str(write_config(tmp_path)), *where],
                               env=environment(), cwd="/", stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(delay_s)
    burst(process, (INT, INT))
    _, stderr = process.communicate(timeout=120)
    said = stderr.decode()
    # CPython listens for SIGINT before runpy has found recorder/__main__.py: a signal landing
    # there (a loaded machine stretches that to many milliseconds) is reported by the
    # interpreter itself, every frame its own frozen start-up code, before one line of bwv
    # exists to catch it. That, and only that, is not bwv's traceback.
    # "Fatal Python error: init_import_site" is CPython's line for a signal that landed while
    # it imported site, which runs before the main module is even looked for: every frame there
    # is start-up code, whether frozen, a .pth line ("<string>"), Debian's sitecustomize.py in
    # the standard library (it imports apport's hook) or a module a .pth imports, so long as
    # none is bwv's own.
    # "Could not import runpy module" is CPython's own line for a signal that landed while it
    # imported runpy (before `-m recorder` is even found); where the interpreter's standard
    # library is not frozen into it (Debian's arm64 build under qemu), those frames are files of
    # the standard library itself. The first signal may land in importlib's own module-lock
    # callback, which CPython reports as "Exception ignored in: ..." before that line.
    frames = [(name, int(line)) for name, line in re.findall(r'File "([^"]+)", line (\d+)', said)]
    in_site = "init_import_site" in said
    in_runpy = said.startswith(("Could not import runpy module", "Exception ignored in: <function "
                                "_get_module_lock")) and "Could not import runpy module" in said
    # bwv's first lines (recorder/__init__.py up to the one that puts recorder.stop_quietly in
    # place) run under the interpreter's handler: a signal there, or in what they import, is
    # the interpreter's too. A frame of any later line of bwv is bwv's, and refused.
    in_prologue = any(prologue(name, line) for name, line in frames)
    stdlib = sysconfig.get_paths()["stdlib"] + os.sep
    interpreter_start = (bool(frames)
                         and all(name.startswith("<frozen ") or prologue(name, line)
                                 or (in_site and f"{os.sep}recorder{os.sep}" not in name)
                                 or ((in_runpy or in_prologue) and name.startswith(stdlib))
                                 or (in_runpy and name == "<string>")  # collections' namedtuple
                                 for name, line in frames)
                         and said.rstrip().endswith("KeyboardInterrupt"))
    assert "Traceback" not in said or interpreter_start, said
    for recording in (path for path in (out.iterdir() if out.exists() else ()) if path.is_dir()):
        lines = (recording / MANIFEST_NAME).read_text().splitlines()
        assert json.loads(lines[-1])["type"] == "sealed", recording


def test_ctrl_c_while_the_command_line_is_read_exits_130_without_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A SIGINT that lands while bwv builds its parser (before `bwv record`/`run` install their
    handlers; a loaded machine took over 0.3 s there) stops it quietly: nothing was begun."""
    import recorder.cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(recorder.cli, "build_parser", interrupted)
    try:
        code = recorder.cli.main(["run", "--board", "terminal"])
    except KeyboardInterrupt:  # would stop pytest itself, not fail this test
        pytest.fail("KeyboardInterrupt escaped bwv's main: Python prints it as a traceback")
    assert code == 130
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


INTERRUPTING_IMPORT = '''
import os, signal, sys

AT = os.environ["INTERRUPT_AT"]


def second_press(frame, event, arg):
    """The second Ctrl-C of a double press, landing just as bwv handles the first: at its first
    call to change a signal's handler, or to exit."""
    if ((event == "call" and frame.f_code.co_name == "signal")
            or (event == "c_call" and getattr(arg, "__name__", "") in ("signal", "_exit"))):
        sys.setprofile(None)
        os.kill(os.getpid(), signal.SIGINT)


class Interrupt:
    """Ctrl-C (a real SIGINT) at the moment the module named AT is imported."""
    def find_spec(self, name, path=None, target=None):
        if name == AT:
            sys.setprofile(second_press)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, Interrupt())
'''


@pytest.mark.parametrize("module", ["recorder.errors", "recorder.cli.record"])
def test_a_double_ctrl_c_while_bwv_imports_stops_it_quietly(tmp_path: Path, module: str) -> None:
    """Two SIGINTs while `python -m recorder` imports its own package (``recorder.errors``,
    before __main__ runs) or its command line (``recorder.cli.record``, from __main__), the
    second landing as bwv handles the first (a loaded machine spent over 0.3 s importing):
    bwv exits 130 with no traceback. Before, a second press there, in __main__'s ``except
    KeyboardInterrupt`` (seen in CI under qemu), was printed as a traceback."""
    (tmp_path / "sitecustomize.py").write_text(INTERRUPTING_IMPORT)
    env = environment(PYTHONPATH=str(tmp_path), INTERRUPT_AT=module)
    script = Path(sys.executable).parent / "bwv"  # the installed script, as a user types it
    for program in [BWV, [str(script)]] if script.exists() else [BWV]:
        bwv = subprocess.run([*program, "--help"], env=env, cwd="/", capture_output=True,
                             text=True, timeout=60)
        assert bwv.returncode == 130 and bwv.stderr == "" and bwv.stdout == "", bwv.stderr


def test_ctrl_c_while_a_library_imports_recorder_is_its_keyboard_interrupt(
        tmp_path: Path) -> None:
    """Code importing recorder as a library, not bwv, keeps Python's Ctrl-C: the same presses
    while the package imports ``recorder.errors`` reach it as KeyboardInterrupt."""
    (tmp_path / "sitecustomize.py").write_text(INTERRUPTING_IMPORT)
    env = environment(PYTHONPATH=str(tmp_path), INTERRUPT_AT="recorder.errors")
    library = subprocess.run([sys.executable, "-c", "import recorder"], env=env, cwd="/",
                             capture_output=True, text=True, timeout=60)
    assert library.returncode == -signal.SIGINT and "KeyboardInterrupt" in library.stderr


def test_once_bwv_is_done_a_ctrl_c_cannot_interrupt_its_exit() -> None:
    """After bwv's work, during the interpreter's exit (joining threads), a SIGINT used to be
    printed as "Exception ignored in threading ... KeyboardInterrupt" (seen under load, the
    signal 0.8 s after `bwv record --fast` started): bwv ignores SIGINT once main is done."""
    script = ("import atexit, signal, sys\n"
              "from recorder.cli import command\n"
              "atexit.register(lambda: print('ignored', signal.getsignal(signal.SIGINT) is "
              "signal.SIG_IGN))\n"
              "sys.argv = ['bwv', 'doctor', '--help']\n"
              "command()\n")
    done = subprocess.run([sys.executable, "-c", script], cwd="/", capture_output=True,
                          text=True, timeout=60, env=environment())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "ignored True"
