"""The `bwv` command line: one subcommand per job. Exit codes: 0 ok, 1 check failed, 2 usage."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from .. import __version__, stop_quietly
from ..device import doctor
from . import station as station_commands  # parsers only; the station loads on use
from .record import LOG_LEVELS, add_record_parsers

if TYPE_CHECKING:
    from ..integrity.station_pin import StationPin

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it

# syslog priorities (RFC 5424), which journald reads from a "<N>" prefix on each line
SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
                   logging.DEBUG: 7}
QUIET_LIBRARIES = ("httpx", "httpcore")  # a line per HTTP request: shown only at debug


class JournalFormatter(logging.Formatter):
    """Lines for systemd's journal: ``<N>logger: message``, no time stamp (the journal adds
    its own), N the syslog priority of the record's level, so that journalctl -p works."""

    def format(self, record: logging.LogRecord) -> str:
        priority = next((value for level, value in sorted(SYSLOG_PRIORITY.items())
                         if record.levelno <= level), 2)
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def writes_to_journal(stream: TextIO) -> bool:
    """Whether ``stream`` is the journal's stream: systemd sets JOURNAL_STREAM to its
    "device:inode" (a child whose stderr was redirected elsewhere must not use the format)."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


@contextlib.contextmanager
def logging_to(stream: TextIO, level: str) -> Iterator[None]:
    """Send log records of ``level`` and above to ``stream`` while the block runs (a handler on
    the root logger, removed again afterwards)."""
    handler = logging.StreamHandler(stream)
    # on a terminal, a log line first clears the line: the terminal board's status line may be
    # there (it is drawn again at its next change)
    clear = "\r\x1b[K" if stream.isatty() else ""
    handler.setFormatter(JournalFormatter() if writes_to_journal(stream) else logging.Formatter(
        clear + "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    number = logging.getLevelName(level.upper())
    saved = [root.level, *(logging.getLogger(name).level for name in QUIET_LIBRARIES)]
    root.addHandler(handler)
    root.setLevel(number)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(number, logging.WARNING) if number > logging.DEBUG
                                         else number)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, previous in zip(QUIET_LIBRARIES, saved[1:]):
            logging.getLogger(name).setLevel(previous)


def _doctor(args: argparse.Namespace) -> int:
    from ..settings import Settings, SettingsError, default_config_path

    try:
        settings = Settings.load(args.config or default_config_path())
    except SettingsError as exc:
        print(f"bwv doctor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(doctor.render(doctor.report(settings)))
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    import json
    import time

    from ..device import bench, machine

    profile = bench.QUICK if args.quick else bench.FULL
    start = time.perf_counter()
    try:
        results = bench.run(profile)
    except bench.BenchMismatchError as exc:
        print(f"bwv bench: {exc}", file=sys.stderr)
        return EXIT_FAILED
    elapsed = time.perf_counter() - start
    described = machine.describe()
    if args.json:
        print(json.dumps(bench.render_json(described, results, profile, elapsed, __version__),
                         indent=2))
    else:
        print(bench.render_markdown(described, results, profile, elapsed, __version__))
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from ..integrity import keys, verify  # imported here: `bwv doctor` need not load cryptography

    trusted = None
    try:
        if args.key is not None:
            _regular_key_file(args.key)  # a FIFO or /dev/zero would block or never end
            trusted = keys.load_public_key(args.key)
        report = verify.verify_recording(args.path, trusted_key=trusted)
    except (keys.PublicKeyFormatError, verify.VerifyUsageError) as exc:
        _say(sys.stderr, f"bwv verify: {verify.printable(str(exc))}")
        return EXIT_USAGE
    if args.json and not _encodes(sys.stdout, text := verify.render_json(report)):
        text = verify.render_json(report, ascii_only=True)  # still JSON on an ASCII stdout
    _say(sys.stdout, text if args.json else verify.render_human(report))
    return EXIT_OK if report.ok else EXIT_FAILED


def _regular_key_file(path: Path) -> None:
    """Raise PublicKeyFormatError unless ``path`` is a regular file (read whole, it must end)."""
    import stat

    from ..integrity.keys import PublicKeyFormatError

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "the name cannot be encoded"
        raise PublicKeyFormatError(f"cannot read public key file {path}: {reason}") from None
    if not stat.S_ISREG(mode):
        raise PublicKeyFormatError(f"public key file {path} is not a regular file")


def _encodes(stream: TextIO, text: str) -> bool:
    """Whether ``text`` can be written to ``stream`` in its encoding, strictly."""
    try:
        text.encode(stream.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _say(stream: TextIO, text: str) -> None:
    """Print ``text`` whatever the stream's encoding and error handler (PYTHONIOENCODING=
    ascii:strict included): what it cannot encode is written as backslash escapes, never a
    UnicodeEncodeError traceback."""
    if not _encodes(stream, text):
        encoding = stream.encoding or "utf-8"
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    print(text, file=stream)


def _station_pin(text: str) -> StationPin | None:
    """The pin given as the line `bwv station key` prints, or a file holding it; None when
    empty. Raises PublicKeyFormatError."""
    from ..integrity.station_pin import parse_pin

    if not text.strip():
        return None
    path = Path(text).expanduser()
    if len(text) < 4096 and path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace")[:4096]
    return parse_pin(text)


def _upload(args: argparse.Namespace) -> int:
    from ..integrity import keys
    from .. import settings, uploader  # imported here: `bwv doctor` need not load httpx

    try:
        config = settings.Settings.load(args.config or settings.default_config_path())
    except settings.SettingsError as exc:
        print(f"bwv upload: {exc}", file=sys.stderr)
        return EXIT_USAGE
    station_url = args.station or str(config["station.url"])
    if not station_url:
        print("bwv upload: give the station with --station URL (or set station.url in the "
              "settings file)", file=sys.stderr)
        return EXIT_USAGE
    data_dir = args.data or config.data_dir
    try:
        key = keys.DeviceKey.find(data_dir)
    except keys.DeviceKeyError as exc:
        print(f"bwv upload: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if key is None:
        print(f"bwv upload: no device key in {data_dir}: this camera has never recorded there "
              "(give --data DIR)", file=sys.stderr)
        return EXIT_USAGE
    recordings_dir = args.recordings or data_dir / "recordings"
    show_bar = sys.stderr.isatty() and not args.quiet
    try:
        pin = _station_pin(args.station_key or str(config["station.public_key"]))
    except keys.PublicKeyFormatError as exc:
        print(f"bwv upload: --station-key / station.public_key: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def progress(state: uploader.UploadProgress) -> None:
        print("\r" + uploader.progress_line(state)[:150].ljust(150), end="", file=sys.stderr,
              flush=True)

    try:
        up = uploader.Uploader(station_url, key, args.device_id or config.device_id,
                               recordings_dir, pin=pin, progress=progress if show_bar else None,
                               attempts=args.attempts, cafile=args.cafile or config.cafile,
                               insecure_http_for_tests=args.insecure_http_for_tests)
    except (uploader.CaFileError, uploader.InsecureStationError) as exc:
        print(f"bwv upload: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if pin is None and not args.quiet:
        print(f"bwv upload: no station key pinned: recordings are uploaded but none is deleted "
              f"here; {uploader.HOW_TO_PIN}", file=sys.stderr)
    with up:
        summary = up.upload_all()
    if show_bar:
        print(file=sys.stderr)
    for outcome in summary.outcomes:
        sent = (f"uploaded {outcome.recording_id}: {len(outcome.uploaded)} segments sent, "
                f"{len(outcome.already_held)} already held; verified by the station")
        if outcome.error is None and outcome.kept_files:
            print(f"{sent}; its segments and manifest deleted here, but kept the directory "
                  "because it holds files that are not part of the recording: "
                  f"{', '.join(outcome.kept_files)}")
        elif outcome.error is None:
            print(f"{sent}, deleted here")
        else:
            print(f"kept {outcome.recording_id}: {outcome.error}", file=sys.stderr)
    for path in summary.skipped_unsealed:
        if not args.quiet:
            print(f"skipped {path.name}: not sealed, or its manifest does not read (still "
                  f"recording, needs recovery, or damaged: `bwv verify {path}` says which)")
    if not summary.outcomes and not args.quiet:
        print(f"nothing to upload in {recordings_dir}")
    return EXIT_OK if summary.ok else EXIT_FAILED


UPLOAD_DESCRIPTION = """\
Upload every sealed recording to the evidence station, oldest first, and delete each
local copy only after the station has verified it (every segment's SHA-256 and the
signed manifest, checked against this camera's enrolled key). A recording still being
written is never touched. A broken connection is retried (--attempts); a later run
resumes where the station's copy ends, sending only what it does not hold.
"""

UPLOAD_EPILOG = """\
exit status:
  0  every sealed recording is now held and verified by the station (or none to send)
  1  some recording was kept: the station refused it, could not verify it, or was
     unreachable (each is named on stderr, with the reason)
  2  usage error: no station URL, no device key, bad settings file, missing CA file,
     a bad station key, plain http:// to another machine

A local copy is deleted only on a receipt signed by the pinned station (--station-key or
station.public_key: the line `bwv station key` prints) that answers this very request;
each such receipt is appended to receipts.jsonl beside the recordings directory first.
Without a pinned key recordings are uploaded but kept.

examples:
  bwv upload --station https://station.example:8470 --data /var/lib/bwv \\
      --station-key bwv-station/1:station-3f9a…:MCowBQYDK2VwAyEA…
  bwv upload --config /etc/bwv/bwv.toml --cafile /etc/bwv/station-ca.pem
"""


VERIFY_DESCRIPTION = """\
Check a recording against its signed manifest and say whether it is exactly what the
camera wrote. PATH is a recording directory (or its manifest.jsonl).

What is checked:
  manifest   every line is canonical JSON; seq counts 1, 2, 3 ...; each prev is the
             SHA-256 of the line before; each sig is a valid Ed25519 signature; the
             last line is 'sealed' and counts the segments. Deleted, inserted,
             duplicated, reordered or edited lines all break one of these.
  key        signatures are checked against the public key in the header, or, with
             --key, against the key you trust (the one enrolled for the camera); the
             header's key must then be that key. Without --key, verify proves the
             files are unchanged since signing, not which camera signed them.
  segments   every listed file exists, has the listed size and SHA-256, its MP4 boxes
             parse, and it holds the listed number of fragments; no other file is in
             the directory.
  timing     decode times run on without gaps from fragment to fragment and segment
             to segment (a gap or overlap larger than one sample is reported with its
             size in microseconds); each segment's first/last pts in the manifest are
             increasing and agree with the media.
"""

VERIFY_EPILOG = """\
exit status:
  0  everything holds
  1  something does not: the report names the first broken line or file first
  2  usage error: PATH does not exist, or the --key file holds no Ed25519 key

examples:
  bwv verify recordings/20261123T070427Z-cam7
  bwv verify --key cam7.pem --json recordings/20261123T070427Z-cam7 > report.json

The manifest format, and how to check a line with sha256sum and openssl alone, is described
in docs/formats.md.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bwv",
        description="bwv-recorder: open body-worn video. Keeps a pre-event buffer in memory and, "
                    "when recording, writes hashed, signed segments.",
        epilog="Set RECORDER_NATIVE=off to use the pure-Python implementations, =required to "
               "refuse to run without the native ones.",
    )
    parser.add_argument("--version", action="version", version=f"bwv-recorder {__version__}")
    parser.add_argument("--log-level", dest="bwv_log_level", choices=LOG_LEVELS, metavar="LEVEL",
                        help="log messages of this level and above to stderr: "
                             f"{', '.join(LOG_LEVELS)} (default: info for `bwv run`, warning "
                             "otherwise). Under systemd each line carries its syslog priority "
                             "for the journal.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    doctor_parser = commands.add_parser(
        "doctor", help="show the version, platform, native pieces, and this camera's id and key",
        description="Print the version, Python and platform, and for each accelerated piece "
                    "whether the native or the pure-Python implementation is active, and why; "
                    "then this camera's device id and key, and the `bwv station enroll` "
                    "command that lets it upload to the station; on a Raspberry Pi, checks of "
                    "the camera, microphone, GPIO, clock, RTC and storage, each saying what to fix.")
    doctor_parser.add_argument("--config", metavar="FILE", type=Path,
                               help="the camera's settings file (device id, data directory; default "
                                    "$BWV_CONFIG, else /etc/bwv/bwv.toml if it exists)")
    doctor_parser.set_defaults(func=_doctor)
    bench_parser = commands.add_parser(
        "bench", help="measure the ring, the muxer and SHA-256 here; print a table to paste",
        description="Measure, on this device, the pre-event ring's push, the fragmented-MP4 "
                    "muxer and SHA-256 (native against pure Python, and against hashlib), a few "
                    "rounds each, and print one markdown table of medians and spreads with the "
                    "machine's description (board, CPU, cores, SHA and AES instructions, "
                    "cpufreq governor, emulation, native pieces), ready to paste in an issue. "
                    "Under a minute on a Raspberry Pi 4; --quick takes seconds. Exit 1 if the "
                    "native and pure twins disagree.")
    bench_parser.add_argument("--quick", action="store_true",
                              help="fewer rounds and smaller cases: seconds, not a minute")
    bench_parser.add_argument("--json", action="store_true",
                              help="print the machine and every figure as JSON instead")
    bench_parser.set_defaults(func=_bench)
    verify_parser = commands.add_parser(
        "verify", help="check a recording's hashes, hash chain, signatures and timing",
        description=VERIFY_DESCRIPTION, epilog=VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    verify_parser.add_argument("path", metavar="PATH", type=Path,
                               help="recording directory, or its manifest.jsonl")
    verify_parser.add_argument("--json", action="store_true",
                               help="print the full report as JSON instead of text")
    verify_parser.add_argument("--key", metavar="PUBKEY", type=Path,
                               help="file with the trusted public key: PEM, or the one-line "
                                    "key `bwv doctor` prints, or 64 hex digits")
    verify_parser.set_defaults(func=_verify)
    upload_parser = commands.add_parser(
        "upload", help="send sealed recordings to the evidence station, delete once verified",
        description=UPLOAD_DESCRIPTION, epilog=UPLOAD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    upload_parser.add_argument("--station", metavar="URL",
                               help="the station, e.g. https://station.example:8470 (default: "
                                    "station.url in the settings)")
    upload_parser.add_argument("--config", metavar="FILE", type=Path,
                               help="settings file (device id, data directory, station URL, CA file; "
                                    "default $BWV_CONFIG, else /etc/bwv/bwv.toml if it exists)")
    upload_parser.add_argument("--data", metavar="DIR", type=Path,
                               help="the camera's data directory (device key, recordings/)")
    upload_parser.add_argument("--recordings", metavar="DIR", type=Path,
                               help="where the recordings are (default DATA/recordings)")
    upload_parser.add_argument("--device-id", metavar="ID",
                               help="this camera's enrolled id (default: from the settings)")
    upload_parser.add_argument("--cafile", metavar="PEM", type=Path,
                               help="CA certificate to trust for an https station (default: "
                                    "station.cafile in the settings, else the system's CAs)")
    upload_parser.add_argument("--station-key", metavar="PIN", default="",
                               help="the station to trust: the line `bwv station key` prints "
                                    "(or a file holding it); default: station.public_key in the "
                                    "settings; without one nothing is deleted")
    upload_parser.add_argument("--insecure-http-for-tests", action="store_true",
                               help="for tests only: allow plain http:// to another machine")
    upload_parser.add_argument("--attempts", type=int, default=3, metavar="N",
                               help="tries per recording after a broken connection (default 3)")
    upload_parser.add_argument("--quiet", action="store_true",
                               help="no progress bar; only errors")
    upload_parser.set_defaults(func=_upload)
    add_record_parsers(commands)
    station_commands.add_station_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C while the command line is read: nothing was begun (in
        # bwv's own process recorder.stop_quietly has ended it already; this is for callers)
        return EXIT_INTERRUPTED
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    level = args.bwv_log_level or ("info" if args.command == "run" else "warning")
    try:
        if signal.getsignal(signal.SIGINT) is stop_quietly:  # bwv's start-up is over: from
            signal.signal(signal.SIGINT, signal.default_int_handler)  # here Ctrl-C is caught below
        with logging_to(sys.stderr, level):
            result: int = args.func(args)
    except BrokenPipeError:  # `bwv ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except KeyboardInterrupt:  # Ctrl-C outside a recording (`bwv record`/`run` catch their own)
        print(f"bwv {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return result


def command() -> NoReturn:
    """The `bwv` program (its entry point, and `python -m recorder`): ``main``, then exit.
    Once ``main`` is done, whatever way, Ctrl-C is ignored: the work is over, and a SIGINT then
    could only interrupt the interpreter's own exit (joining threads), which Python reports as
    a traceback ("Exception ignored in threading"). Not in ``main``, which tests call in their
    own process."""
    try:
        code = main()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    command()
