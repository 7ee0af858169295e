"""`bwv record` (headless, scripted recording) and `bwv run` (the camera's program)."""

from __future__ import annotations

import argparse
import logging
import math
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

Ctrl-C, SIGTERM or SIGHUP (the terminal was closed) stops early: what was recorded is sealed
and its directory printed.

Exit status: 0 recorded and sealed, 1 the recording failed, 2 usage or settings error.
"""

RUN_DESCRIPTION = """\
Run the camera: keep the pre-event buffer, and record when the button says so, with the red LED
and beeper telling the public. On a Raspberry Pi the GPIO board (gpiozero) and the Pi camera are
used; elsewhere the terminal board (space = the button: double press to start, hold to stop;
h = hold, a = auxiliary trigger, s = stealth, d = dock) and the synthetic camera, unless the
settings say otherwise. Ctrl-C, SIGTERM or SIGHUP (the terminal was closed) stops and seals
any recording in progress.

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
    return settings.with_values(**changes) if changes else settings


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


def _make_out_dir(path: Path) -> None:
    try:
        make_private_dir(path)  # footage: the owner's only, whatever the umask
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot make the directory: "
                         f"{exc.strerror or exc}") from None


def _on_stop_signals(stop: threading.Event, caught: list[str]) -> Handlers:
    """Make Ctrl-C, SIGTERM and SIGHUP set ``stop`` (a second Ctrl-C interrupts as usual);
    returns the handlers they had, for `_restore`."""

    def handler(number: int, frame: FrameType | None) -> None:
        caught.append(signal.Signals(number).name)
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    return {number: signal.signal(number, handler) for number in STOP_SIGNALS}


def _restore(handlers: Handlers) -> None:
    for number, previous in handlers.items():
        signal.signal(number, previous)


def _usage(command: str, exc: Exception) -> int:
    print(f"bwv {command}: {exc}", file=sys.stderr)
    return 2


def _record(args: argparse.Namespace) -> int:
    from ..board import BoardSettings, ScriptedBoard
    from ..device.assembly import DeviceError

    try:
        _check_seconds("--duration", args.duration, zero_ok=False)
        _check_seconds("--trigger-after", args.trigger_after, zero_ok=True)
        settings = _settings(args)
        board_settings = BoardSettings.from_mapping(settings.board)
        _check_source_file(settings["camera.source"])
        if args.fast:
            _check_fast_audio(settings["audio.source"])
        _make_out_dir(args.out)
    except RecorderError as exc:
        return _usage("record", exc)
    stop, caught = threading.Event(), list[str]()
    handlers = _on_stop_signals(stop, caught)
    progress: Callable[[str], None] = lambda text: print(f"bwv record: {text}", file=sys.stderr)
    board = ScriptedBoard(board_settings)
    try:
        with board:
            path = record(settings, board, duration_s=args.duration,
                          trigger_after_s=args.trigger_after, realtime=not args.fast,
                          recordings_dir=args.out, progress=progress, stop=stop)
    except (DeviceError, RecorderError, OSError) as exc:
        print(f"bwv record: {exc}", file=sys.stderr)
        return 1
    finally:
        _restore(handlers)
    if caught:
        progress(f"stopped early by {caught[0]}: the recording so far is sealed")
    print(path)
    return 0


def _run(args: argparse.Namespace) -> int:
    from ..board import BoardSettings, GpioBoard, TerminalBoard
    from ..device.assembly import on_raspberry_pi

    try:
        settings = _settings(args)
        board_settings = BoardSettings.from_mapping(settings.board)
    except RecorderError as exc:
        return _usage("run", exc)
    print(where_recordings_go(settings), file=sys.stderr, flush=True)
    try:
        use_gpio = args.board == "gpio" or (args.board == "auto" and on_raspberry_pi())
        board = GpioBoard(board_settings) if use_gpio else TerminalBoard(board_settings)
    except RecorderError as exc:
        return _usage("run", exc)
    stop = threading.Event()
    handlers = _on_stop_signals(stop, [])
    try:
        with board:
            return run(settings, board, stop)
    except KeyboardInterrupt:
        return 0
    except RecorderError as exc:
        print(f"bwv run: {exc}", file=sys.stderr)
        return 1
    finally:
        _restore(handlers)


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
        if stop.wait(0.01):
            return
    _check_sources(device)


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
