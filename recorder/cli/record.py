"""`bwv record` (headless, scripted recording) and `bwv run` (the camera's program)."""

from __future__ import annotations

import argparse
import logging
import math
import os
import tempfile
import time
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..errors import RecorderError
from ..private_files import make_private_dir

if TYPE_CHECKING:  # the device (and PyAV, numpy) loads only when a command runs
    from ..board import Board
    from ..device.assembly import Device
    from ..device.service_notify import ServiceNotifier
    from ..settings import Settings

log = logging.getLogger("recorder.device")  # the name `bwv run`'s log lines have always shown

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class UsageError(RecorderError, ValueError):
    """An option of `bwv record` or `bwv run` has a value that cannot be used."""

RECORD_DESCRIPTION = """\
Record once, without a button: fill the pre-event buffer for --trigger-after seconds (default:
the pre-event length), start recording as if the button had been pressed, record --duration
seconds, stop, seal, and print the recording's directory. For demonstrations, tests and field
checks of a camera. The recording is a directory of fragmented-MP4 segments and a signed
manifest; check it with `bwv verify DIR`.
"""

RECORD_EPILOG = """\
examples:
  bwv record --duration 10 --out /tmp/rec                      # synthetic camera and tone
  bwv record --source file:clip.mp4 --audio none --fast --duration 5 --out /tmp/rec
  bwv record --source picamera2 --audio pyaudio --pre-event 30 --duration 60 --out /srv/bwv
  bwv record --station-key station.pin --duration 10 --out /tmp/rec  # encrypted for a station

Ctrl-C, SIGTERM or SIGHUP (the terminal was closed) stops early: what was recorded is sealed
and its directory printed. Further signals, of any kind, do not interrupt the sealing.

One recorder at a time writes to a recordings directory: while `bwv run` or another
`bwv record` uses it, `bwv record` refuses at once, naming that recorder's pid.

Exit status: 0 recorded and sealed, 1 the recording failed (at once, with one line saying
why: storage full, storage read-only, storage I/O error, or its directory removed), 2 usage or
settings error, or the recordings directory is in use by another recorder.
"""

RUN_DESCRIPTION = """\
Run the camera: keep the pre-event buffer, and record when the button says so, with the red LED
and beeper telling the public. On a Raspberry Pi the GPIO board (gpiozero) and the Pi camera are
used; elsewhere the terminal board (space = the button: double press to start, hold to stop;
h = hold, a = auxiliary trigger, s = stealth, d = dock) and the synthetic camera, unless the
settings say otherwise. Ctrl-C, SIGTERM or SIGHUP (the terminal was closed) stops and seals
any recording in progress; further signals do not interrupt the sealing. It refuses to start
(exit 2) while another recorder uses its recordings directory. A card that is read-only, failing
or full does not stop it: it buffers, shows the fault, refuses recordings, and retries the card
every few seconds, recording again once it can be written.

It prints where the recordings go, and logs at level info unless `bwv --log-level` says
otherwise (to stderr; under systemd, with priorities the journal understands).
"""


def add_record_parsers(commands: Any) -> None:
    record = commands.add_parser(
        "record", help="record once, headless: buffer, start, record N seconds, stop",
        description=RECORD_DESCRIPTION, epilog=RECORD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    record.add_argument("--config", metavar="FILE", type=Path,
                        help="settings file (TOML; default $BWV_CONFIG, else /etc/bwv/bwv.toml if it "
                             "exists); the options below override it")
    record.add_argument("--source", metavar="SRC",
                        help="camera: synthetic, picamera2, file:PATH, v4l2:/dev/videoN")
    record.add_argument("--audio", metavar="SRC",
                        help="microphone: pyaudio, pyaudio:NAME, synthetic, synthetic:HZ, none")
    record.add_argument("--pre-event", metavar="S", type=float, help="pre-event seconds (0-120)")
    record.add_argument("--duration", metavar="S", type=float, required=True,
                        help="seconds to record after the trigger")
    record.add_argument("--trigger-after", metavar="S", type=float,
                        help="seconds of buffering before the trigger (default: the pre-event)")
    record.add_argument("--size", metavar="WxH", help="frame size, e.g. 1280x720")
    record.add_argument("--fps", metavar="N", type=int, help="frames per second")
    record.add_argument("--segment", metavar="S", type=float, help="segment length in seconds")
    record.add_argument("--out", metavar="DIR", type=Path, required=True,
                        help="directory to put the recording in (created if missing)")
    record.add_argument("--station-key", metavar="KEY",
                        help="encrypt this recording for a station: the line `bwv station key` "
                             "prints there, or a file holding it (default: the "
                             "station.public_key setting); with a station key every recording "
                             "is encrypted, and only that station can read it")
    record.add_argument("--fast", action="store_true",
                        help="do not wait in real time: synthetic and file sources run as fast "
                             "as they can, the audio kept in step with the video (timestamps "
                             "stay those of real time); not with a live microphone")
    _add_log_level(record)
    record.set_defaults(func=_record)

    run = commands.add_parser("run", help="run the camera (button, LEDs, beeper, recording)",
                              description=RUN_DESCRIPTION)
    run.add_argument("--config", metavar="FILE", type=Path,
                     help="settings file (TOML; default $BWV_CONFIG, else /etc/bwv/bwv.toml if it "
                          "exists)")
    run.add_argument("--board", choices=["auto", "gpio", "terminal"], default="auto",
                     help="auto: gpio on a Raspberry Pi, terminal elsewhere")
    _add_log_level(run)
    run.set_defaults(func=_run)


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` after the command too (`bwv run --log-level debug`), same as `bwv`'s."""
    parser.add_argument("--log-level", dest="bwv_log_level", choices=LOG_LEVELS, metavar="LEVEL",
                        default=argparse.SUPPRESS,
                        help=f"log this level and above to stderr: {', '.join(LOG_LEVELS)} "
                             "(same as `bwv --log-level`)")


def _settings(args: argparse.Namespace) -> Any:
    from ..settings import Settings, default_config_path

    settings = Settings.load(args.config or default_config_path())
    changes: dict[str, Any] = {}
    for option, name in (("source", "camera_source"), ("audio", "audio_source"),
                         ("pre_event", "recording_pre_event_s"), ("fps", "camera_fps"),
                         ("segment", "recording_segment_s")):
        value = getattr(args, option, None)
        if value is not None:
            changes[name] = value
    size = getattr(args, "size", None)
    if size is not None:
        changes.update(zip(("camera_width", "camera_height"), parse_size(size)))
    station_key = getattr(args, "station_key", None)
    if station_key is not None:
        changes["station_public_key"] = _station_key_text(station_key)
    return settings.with_values(**changes) if changes else settings


def _station_key_text(given: str) -> str:
    """``--station-key``: the line `bwv station key` prints, or a file holding it."""
    path = Path(given).expanduser()
    if len(given) < 4096 and path.is_file():
        try:
            return path.read_text(encoding="utf-8", errors="replace")[:8192].strip()
        except OSError as exc:
            raise UsageError(f"--station-key {given}: {exc.strerror}") from None
    return given


def _check_station_key(settings: Settings) -> None:
    """A ``station.public_key`` that does not read stops the command before anything starts."""
    from ..device.assembly import recording_encryption_key

    recording_encryption_key(settings)


def _board_settings(settings: Settings) -> Any:
    """The ``[board]`` table checked, an error in it naming the settings file it came from."""
    from ..board import BoardSettings, BoardSettingsError

    try:
        return BoardSettings.from_mapping(settings.board)
    except BoardSettingsError as exc:
        where = f" (in {settings.source})" if settings.source is not None else ""
        raise UsageError(f"{exc}{where}") from None


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` as (1280, 720); raises UsageError for anything else."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise UsageError(f"--size {text!r} is not WIDTHxHEIGHT, e.g. 1280x720")
    return int(parts[0]), int(parts[1])


def _check_seconds(option: str, value: float | None, *, zero_ok: bool) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        wanted = "zero or more" if zero_ok else "more than zero"
        raise UsageError(f"{option} {value:g} is not allowed: give {wanted} seconds")


Handlers = dict[signal.Signals, Any]


def _check_source_file(source: str) -> None:
    """A ``file:PATH`` camera source must name a file that is there."""
    if source.startswith("file:") and not Path(source[5:]).expanduser().is_file():
        raise UsageError(f"camera source {source!r}: {source[5:]} is not a file")


def _check_fast_audio(source: str) -> None:
    """--fast cannot hurry a live microphone: its audio would not match the hurried video."""
    from ..device.assembly import on_raspberry_pi

    if source.startswith("pyaudio") or (source == "auto" and on_raspberry_pi()):
        raise UsageError("--fast cannot be used with a live microphone (it records in real "
                         "time): give --audio synthetic or --audio none")


def _shown(path: Path) -> str:
    """``path`` for a one-line message: a path of thousands of characters is cut short."""
    text = str(path)
    return text if len(text) <= 120 else text[:60] + "..." + text[-40:]


def _make_out_dir(path: Path, what: str = "--out") -> list[Path]:
    """Make ``path`` (0700) and check a file can be made in it; returns the directories made,
    for `_remove_made` to take away again if the command stops before recording. A path that
    is a file, cannot be made, or is not writable (read-only file system) is a UsageError."""
    try:
        existed = path.exists()
        if existed and not path.is_dir():
            raise UsageError(f"{what} {_shown(path)} is not a directory")
        made = [] if existed else _missing_dirs(path)
    except OSError as exc:  # ENAMETOOLONG, ELOOP, EACCES on a parent
        raise UsageError(f"{what} {_shown(path)}: cannot make the directory: "
                         f"{exc.strerror or exc}") from None
    try:
        make_private_dir(path)  # footage: the owner's only, whatever the umask
        with tempfile.TemporaryFile(dir=path):
            pass  # what a recording does first: make a file there
    except OSError as exc:
        _remove_made(made)
        doing = "cannot write there" if existed else "cannot make the directory"
        raise UsageError(f"{what} {_shown(path)}: {doing}: {exc.strerror or exc}") from None
    return made


def _missing_dirs(path: Path) -> list[Path]:
    """The directories ``mkdir -p path`` would make, outermost first."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    return missing[::-1]


def _remove_made(made: list[Path]) -> None:
    """Remove directories `_make_out_dir` made (innermost first), if still empty (one that
    was never made, or holds something, stays as it is)."""
    for directory in reversed(made):
        try:
            directory.rmdir()
        except OSError:
            pass


def _data_dir_name(settings: Settings) -> str:
    """How the data directory was given, for a message: the setting, or the variable."""
    from ..settings import DATA_DIR_ENV_VAR

    configured = str(settings["storage.data_dir"])
    if configured:
        where = f" (in {settings.source})" if settings.source is not None else ""
        return f"storage.data_dir = {configured!r}{where}:"
    if os.environ.get(DATA_DIR_ENV_VAR, "").strip():
        return f"${DATA_DIR_ENV_VAR}:"
    return "the data directory"


def _check_data_dir(settings: Settings, recordings: bool) -> list[Path]:
    """The data directory (the device key; with ``recordings``, its recordings/) must be a
    directory this process can write: else a UsageError naming the setting, before anything
    starts. Returns the directories made."""
    name = _data_dir_name(settings)
    made = _make_out_dir(settings.data_dir, name)
    if recordings:
        try:
            made += _make_out_dir(settings.data_dir / "recordings", name + " its recordings/:")
        except UsageError:
            _remove_made(made)
            raise
    return made


def _card_fault(path: Path, data_dir: Path) -> OSError | None:
    """The card fault (read-only, I/O errors, full) that stops a file being made in the
    existing directory ``path``, if any, on a camera whose ``data_dir`` holds its device key:
    `bwv run` then starts all the same, buffering with the fault shown, and records once the
    card can be written. Anything else (a missing or unwritable path, or no key, which a
    read-only card could never get) is left to `_check_data_dir`, a usage error."""
    from ..integrity.keys import KEY_FILE_NAME
    from ..storage.faults import is_card_fault

    try:
        if not path.is_dir() or not os.path.lexists(data_dir / KEY_FILE_NAME):
            return None
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return exc if is_card_fault(exc) else None
    return None


class StopSignals:
    """While in the ``with`` block, Ctrl-C, SIGTERM and SIGHUP, once or many times, in any mix,
    set ``stop``: the recording is stopped and sealed, and nothing interrupts the sealing.

    The handler runs on the main thread between any two bytecodes, also while that thread
    holds a lock (inside ``stop.wait()``, say), so it takes no lock: it notes the signal's name
    and writes a byte to a pipe; a watcher thread reads the pipe and sets ``stop``. Setting the
    event in the handler could deadlock on the event's own lock, and raising KeyboardInterrupt
    (Python's default for a second Ctrl-C) would abandon a recording half-sealed.
    """

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.caught: list[str] = []  # names, in the order they came
        self._previous: Handlers = {}
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._watcher = threading.Thread(target=self._watch, name="stop-signals", daemon=True)

    def __enter__(self) -> StopSignals:
        self._watcher.start()
        for number in STOP_SIGNALS:
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        os.close(self._write)  # the watcher reads the end of the pipe and returns
        self._watcher.join(timeout=5)
        os.close(self._read)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.caught.append(signal.Signals(number).name)
        try:
            os.write(self._write, b"s")
        except OSError:  # the pipe is full of earlier signals: ``stop`` is being set anyway
            pass

    def _watch(self) -> None:
        while os.read(self._read, 64):
            self.stop.set()


def _usage(command: str, exc: Exception) -> int:
    print(f"bwv {command}: {exc}", file=sys.stderr)
    return 2


def _record(args: argparse.Namespace) -> int:
    stop = threading.Event()
    with StopSignals(stop) as signals:  # first: from here on a signal seals, never interrupts
        return _record_until(args, stop, signals.caught)


def _record_until(args: argparse.Namespace, stop: threading.Event, caught: list[str]) -> int:
    """`bwv record`, with ``stop`` set by a signal (whose name is then in ``caught``)."""
    from ..board import ScriptedBoard
    from ..device.assembly import DeviceError, RingTooLargeError
    from ..storage.writer_lock import RecordingsBusyError

    try:
        _check_seconds("--duration", args.duration, zero_ok=False)
        _check_seconds("--trigger-after", args.trigger_after, zero_ok=True)
        settings = _settings(args)
        board_settings = _board_settings(settings)
        _check_station_key(settings)
        _check_source_file(settings["camera.source"])
        if args.fast:
            _check_fast_audio(settings["audio.source"])
        made = _make_out_dir(args.out)
        try:
            made += _check_data_dir(settings, recordings=False)
        except UsageError:
            _remove_made(made)
            raise
    except RecorderError as exc:
        return _usage("record", exc)
    progress: Callable[[str], None] = lambda text: print(f"bwv record: {text}", file=sys.stderr)
    board = ScriptedBoard(board_settings)
    try:
        with board:
            path = record(settings, board, duration_s=args.duration,
                          trigger_after_s=args.trigger_after, realtime=not args.fast,
                          recordings_dir=args.out, progress=progress, stop=stop)
    except (RecordingsBusyError, RingTooLargeError) as exc:
        _remove_made(made)
        return _usage("record", exc)
    except (DeviceError, RecorderError, OSError) as exc:
        print(f"bwv record: {_failure(exc, args.out)}", file=sys.stderr)
        return 1
    if caught:
        progress(f"stopped early by {caught[0]}: the recording so far is sealed")
    print(path)
    return 0


def _run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    with StopSignals(stop):  # first: from here on a signal seals, never interrupts
        return _run_until(args, stop)


def _run_until(args: argparse.Namespace, stop: threading.Event) -> int:
    """`bwv run` until ``stop`` is set (by a signal)."""
    from ..board import GpioBoard, TerminalBoard
    from ..device.assembly import RingTooLargeError, on_raspberry_pi
    from ..storage.writer_lock import RecordingsBusyError

    try:
        settings = _settings(args)
        board_settings = _board_settings(settings)
        _check_station_key(settings)
        data = settings.data_dir
        fault = _card_fault(data, data) or _card_fault(data / "recordings", data)
        if fault is None:
            _check_data_dir(settings, recordings=True)
    except RecorderError as exc:
        return _usage("run", exc)
    print(where_recordings_go(settings), file=sys.stderr, flush=True)
    if fault is not None:
        from ..storage.faults import describe

        print(f"bwv run: the data directory cannot be written now: {describe(fault)}; "
              "buffering, recording refused until it can be", file=sys.stderr, flush=True)
    try:
        use_gpio = args.board == "gpio" or (args.board == "auto" and on_raspberry_pi())
        board = GpioBoard(board_settings) if use_gpio else TerminalBoard(board_settings)
    except RecorderError as exc:
        return _usage("run", exc)
    try:
        with board:
            return run(settings, board, stop)
    except (RecordingsBusyError, RingTooLargeError) as exc:
        return _usage("run", exc)
    except (RecorderError, OSError) as exc:  # OSError: the card failed as the camera started
        print(f"bwv run: {_failure(exc, settings.data_dir / 'recordings')}", file=sys.stderr)
        return 1


def _failure(exc: Exception, recordings: Path) -> str:
    """One line for a failed command: a bare OSError (the card failed before a recording
    began) says which storage fault it was and where."""
    from ..storage.faults import describe

    if isinstance(exc, RecorderError) or not isinstance(exc, OSError):
        return str(exc)
    where = Path(exc.filename) if isinstance(exc.filename, str) else recordings
    return f"cannot start recording: {describe(exc)} at {_shown(where)}"


def where_recordings_go(settings: Any) -> str:
    """What `bwv run` says first: the camera's id, its data directory, and where recordings go."""
    data = settings.data_dir
    station = str(settings["station.url"])
    upload = (f"uploaded to {station} when docked" if station
              else "kept on the camera (no station.url: nothing is uploaded)")
    return (f"bwv run: camera {settings.device_id}; data directory {data} (device key); "
            f"recordings in {data / 'recordings'}, {upload}")


def record(settings: Settings, board: Board, *, duration_s: float, trigger_after_s: float | None,
           realtime: bool = True, recordings_dir: Path | None = None,
           progress: Callable[[str], None] = lambda text: None,
           stop: threading.Event | None = None) -> Path:
    """`bwv record`: buffer for ``trigger_after_s`` (default: the pre-event length), record for
    ``duration_s``, stop, and return the recording's directory. Seconds are wall-clock seconds,
    or media seconds when ``realtime`` is False. Setting ``stop`` (a signal) ends the recording
    early, sealed; set before the recording started, it raises DeviceError."""
    from ..device.assembly import Device, DeviceError

    stop = stop if stop is not None else threading.Event()
    device = Device.build(settings, board, realtime=realtime, recordings_dir=recordings_dir)
    wait = settings["recording.pre_event_s"] if trigger_after_s is None else trigger_after_s
    try:
        device.start()
        progress(f"buffering {wait:g} s")
        _wait(device, wait, stop)
        if stop.is_set():
            raise DeviceError("stopped before the recording started: nothing was recorded")
        path = device.controller.start_recording("bwv record")
        if path is None:
            raise DeviceError("recording refused: " + "; ".join(device.controller.errors))
        progress(f"recording {duration_s:g} s into {path}")
        _wait(device, duration_s, stop)
        device.controller.stop_recording("bwv record: stopped early" if stop.is_set()
                                         else "bwv record: duration reached")
    finally:
        device.close()
    if device.controller.errors:
        raise DeviceError("; ".join(device.controller.errors))
    return path


def _wait(device: Device, seconds: float, stop: threading.Event) -> None:
    """Let ``seconds`` pass on the device's clock, raising if a source fails; returns early if
    the video source ends (a file ran out: record what there was) or ``stop`` is set."""
    while device.media_clock.latest_us is None and not device.video.finished.is_set():
        _check_sources(device)
        if stop.wait(0.01):  # the first frame starts the media clock
            return
    deadline = device.clock() + round(seconds * 1e6)
    while device.clock() < deadline and not device.video.finished.is_set():
        _check_sources(device)
        if stop.wait(0.01) or _writer_stopped(device):
            return
    _check_sources(device)


def _writer_stopped(device: Device) -> bool:
    """The recording stopped on its own (storage full, a read-only or failing card): waiting
    out the duration would only hide it."""
    writer = device.controller.writer
    return writer is not None and writer.done.is_set()


def _check_sources(device: Device) -> None:
    from ..device.assembly import DeviceError

    for source in (device.video, device.audio):
        if source.error is not None:
            raise DeviceError(f"{source.description} failed: {source.error}") from source.error


def run(settings: Settings, board: Board, stop: threading.Event,
        notifier: ServiceNotifier | None = None, stall_s: float = 5.0) -> int:
    """`bwv run`: react to the board until ``stop`` is set; then seal and shut down.

    Under systemd, READY=1 goes out once the sources run, and WATCHDOG=1 only while the camera
    keeps delivering frames: a camera that stops feeding frames (it happens after hours on some
    sensors) is restarted by systemd rather than silently recording nothing."""
    from ..device.assembly import Device
    from ..device.service_notify import ServiceNotifier

    notifier = notifier or ServiceNotifier()
    device = Device.build(settings, board)
    device.start()
    log.info("camera %s running: %s, %s; pre-event buffer %g s", settings.device_id,
             device.video.description, device.audio.description,
             settings["recording.pre_event_s"])
    notifier.ready()
    progress = {"frames": -1, "since": time.monotonic()}

    def heartbeat() -> None:
        frames = device.video.frames_captured
        now = time.monotonic()
        if frames != progress["frames"]:
            progress.update(frames=frames, since=now)
        if now - progress["since"] < stall_s and device.video.error is None:
            notifier.alive()

    try:
        device.controller.run(stop, heartbeat=heartbeat)
    finally:
        notifier.stopping()
        device.close()
    return 0
