"""`bwv record` (headless, scripted recording) and `bwv run` (the camera's program)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

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

Exit status: 0 recorded and sealed, 1 the recording failed, 2 usage or settings error.
"""

RUN_DESCRIPTION = """\
Run the camera: keep the pre-event buffer, and record when the button says so, with the red LED
and beeper telling the public. On a Raspberry Pi the GPIO board (gpiozero) and the Pi camera are
used; elsewhere the terminal board (space = the button, h = hold to stop, a = auxiliary trigger,
s = stealth, d = dock) and the synthetic camera, unless the settings say otherwise. Ctrl-C or
SIGTERM stops and seals any recording in progress.
"""


def add_record_parsers(commands: Any) -> None:
    record = commands.add_parser(
        "record", help="record once, headless: buffer, start, record N seconds, stop",
        description=RECORD_DESCRIPTION, epilog=RECORD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    record.add_argument("--config", metavar="FILE", type=Path,
                        help="settings file (TOML); the options below override it")
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
                             "as they can (timestamps stay those of real time)")
    record.set_defaults(func=_record)

    run = commands.add_parser("run", help="run the camera (button, LEDs, beeper, recording)",
                              description=RUN_DESCRIPTION)
    run.add_argument("--config", metavar="FILE", type=Path, help="settings file (TOML)")
    run.add_argument("--board", choices=["auto", "gpio", "terminal"], default="auto",
                     help="auto: gpio on a Raspberry Pi, terminal elsewhere")
    run.set_defaults(func=_run)


def _settings(args: argparse.Namespace) -> Any:
    from .settings import Settings

    settings = Settings.load(args.config)
    changes: dict[str, Any] = {}
    for option, name in (("source", "camera_source"), ("audio", "audio_source"),
                         ("pre_event", "recording_pre_event_s"), ("fps", "camera_fps"),
                         ("segment", "recording_segment_s")):
        value = getattr(args, option, None)
        if value is not None:
            changes[name] = value
    size = getattr(args, "size", None)
    if size:
        try:
            width, height = (int(part) for part in size.lower().split("x"))
        except ValueError:
            raise SystemExit(f"bwv record: --size {size!r} is not WIDTHxHEIGHT, e.g. 1280x720")
        changes.update(camera_width=width, camera_height=height)
    return settings.with_values(**changes) if changes else settings


def _record(args: argparse.Namespace) -> int:
    from .board import BoardSettings, ScriptedBoard
    from .device import DeviceError, record
    from .errors import RecorderError

    try:
        settings = _settings(args)
        board = ScriptedBoard(BoardSettings.from_mapping(settings.board))
    except RecorderError as exc:
        print(f"bwv record: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with board:
            path = record(settings, board, duration_s=args.duration,
                          trigger_after_s=args.trigger_after, realtime=not args.fast,
                          recordings_dir=args.out,
                          progress=lambda text: print(f"bwv record: {text}", file=sys.stderr))
    except (DeviceError, RecorderError, OSError) as exc:
        print(f"bwv record: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _run(args: argparse.Namespace) -> int:
    from .board import BoardSettings, GpioBoard, TerminalBoard
    from .device import on_raspberry_pi, run
    from .errors import RecorderError

    try:
        settings = _settings(args)
        board_settings = BoardSettings.from_mapping(settings.board)
        use_gpio = args.board == "gpio" or (args.board == "auto" and on_raspberry_pi())
        board = GpioBoard(board_settings) if use_gpio else TerminalBoard(board_settings)
    except RecorderError as exc:
        print(f"bwv run: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with board:
            return run(settings, board, stop)
    except KeyboardInterrupt:
        return 0
    except RecorderError as exc:
        print(f"bwv run: {exc}", file=sys.stderr)
        return 1
