"""The `bwv` command line: one subcommand per job. Exit codes: 0 ok, 1 check failed, 2 usage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__, doctor

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _doctor(args: argparse.Namespace) -> int:
    print(doctor.render(doctor.report()))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bwv",
        description="bwv-recorder: open body-worn video. Keeps a pre-event buffer in memory and, "
                    "when recording, writes hashed, signed segments.",
        epilog="Set RECORDER_NATIVE=off to use the pure-Python implementations, =required to "
               "refuse to run without the native ones.",
    )
    parser.add_argument("--version", action="version", version=f"bwv-recorder {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    doctor_parser = commands.add_parser(
        "doctor", help="show the version, platform and which implementation of each piece is active",
        description="Print the version, Python and platform, and for each accelerated piece "
                    "whether the native or the pure-Python implementation is active, and why.")
    doctor_parser.set_defaults(func=_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
