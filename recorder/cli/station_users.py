"""``bwv station user ...``: the staff accounts of the station's web pages (add, list, disable,
reset), on recorder.station.accounts.

Only the standard library is imported at module level, as in recorder.cli.station. A password
is never taken as an argument (it would be in the shell's history and in ``ps``): it is asked
twice on the terminal, or read as one line from standard input with ``--password-stdin``.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..station.accounts import Enrolment, User
    from ..station.evidence_store import EvidenceStore

EXIT_OK, EXIT_USAGE = 0, 2


@dataclass(frozen=True)
class StationTools:
    """What these commands use of recorder.cli.station, handed over when it registers them (so
    that the import runs one way, station -> station_users): opening the station of --data/--db,
    the --by actor, and the exception its ``run`` turns into one line and exit 2."""

    open_store: Callable[[argparse.Namespace], EvidenceStore]
    actor: Callable[[argparse.Namespace], str]
    usage_error: type[Exception]

ROLES_HELP = ("officer (own recordings; needs --officer-id), supervisor (a team's recordings; "
              "needs --team), disclosure (public requests, exports), custodian (holds, release, "
              "devices), auditor (audit log, no footage), admin (users)")
NO_MFA_HELP = ("no TOTP code at login: only for forces whose identity provider does MFA in "
               "front of the station")


def _password(tools: StationTools, args: argparse.Namespace) -> str:
    """The new password: one line of standard input with --password-stdin, else asked twice on
    the terminal. Without either there is nowhere to ask: a usage error, never a hang."""
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            raise tools.usage_error("--password-stdin: standard input holds no password line")
        return password
    if not sys.stdin.isatty():
        raise tools.usage_error("standard input is not a terminal to ask the password on: "
                                "give it as one line on standard input with --password-stdin")
    first = getpass.getpass("new password (at least 12 characters): ")
    if getpass.getpass("the same again: ") != first:
        raise tools.usage_error("the two passwords differ: nothing was changed")
    return first


def _describe(user: User) -> str:
    parts = [f"role {user.role}"]
    if user.officer_id:
        parts.append(f"officer id {user.officer_id}")
    if user.team:
        parts.append(f"team {user.team}")
    parts.append("MFA by TOTP" if user.mfa else "no MFA here (the identity provider's)")
    if user.disabled:
        parts.append("DISABLED")
    return ", ".join(parts)


def _print_enrolment(enrolment: Enrolment) -> None:
    """The TOTP secret and URI, once: they are never shown again."""
    if enrolment.totp_secret is None or enrolment.otpauth_uri is None:
        print("no TOTP code will be asked at login: the identity provider in front of the "
              "station must do MFA")
        return
    print("enrol this in an authenticator app now (scan the URI as a QR code, or type the "
          "secret); it is never shown again:")
    print(f"  secret: {enrolment.totp_secret}")
    print(f"  {enrolment.otpauth_uri}")


def _user_add(tools: StationTools, args: argparse.Namespace) -> int:
    from ..station import accounts

    store = tools.open_store(args)
    try:  # before asking for a password
        accounts.check_new_user(args.name, args.role, args.officer_id, args.team)
    except accounts.AccountError as exc:
        raise tools.usage_error(str(exc)) from None
    if accounts.get_user(store.engine, args.name) is not None:
        raise tools.usage_error(f"user {args.name!r} already exists")
    password = _password(tools, args)
    try:
        enrolment = accounts.add_user(store.engine, args.name, args.role, password,
                                      by=tools.actor(args), now_us=store.clock(),
                                      officer_id=args.officer_id, team=args.team,
                                      mfa=not args.no_mfa)
    except accounts.AccountError as exc:
        raise tools.usage_error(str(exc)) from None
    print(f"added user {enrolment.user.name} ({_describe(enrolment.user)})")
    _print_enrolment(enrolment)
    return EXIT_OK


def _user_list(tools: StationTools, args: argparse.Namespace) -> int:
    from ..station import accounts

    found = accounts.list_users(tools.open_store(args).engine)
    if args.json:
        print(json.dumps([{"name": u.name, "role": u.role, "officer_id": u.officer_id,
                           "team": u.team, "mfa": u.mfa, "disabled": u.disabled}
                          for u in found], sort_keys=True))
        return EXIT_OK
    for user in found:
        print(f"{user.name:<24} {_describe(user)}")
    return EXIT_OK


def _user_disable(tools: StationTools, args: argparse.Namespace) -> int:
    from ..station import accounts

    store = tools.open_store(args)
    try:
        accounts.disable_user(store.engine, args.name, by=tools.actor(args),
                              now_us=store.clock())
    except accounts.AccountError as exc:
        raise tools.usage_error(str(exc)) from None
    print(f"disabled {args.name}: every login is refused and its sessions have ended")
    return EXIT_OK


def _user_reset(tools: StationTools, args: argparse.Namespace) -> int:
    from ..station import accounts

    store = tools.open_store(args)
    if accounts.get_user(store.engine, args.name) is None:  # before asking for a password
        raise tools.usage_error(f"no user {args.name!r} (`bwv station user list --data DIR` "
                                "lists them)")
    password = _password(tools, args)
    try:
        enrolment = accounts.reset_user(store.engine, args.name, password,
                                        by=tools.actor(args), now_us=store.clock(),
                                        mfa=not args.no_mfa)
    except accounts.AccountError as exc:
        raise tools.usage_error(str(exc)) from None
    print(f"reset {args.name}: new password, unlocked, its sessions have ended "
          f"({_describe(enrolment.user)})")
    _print_enrolment(enrolment)
    return EXIT_OK


def _user_help(args: argparse.Namespace) -> int:
    args.user_parser.print_help(sys.stderr)
    return EXIT_USAGE


def add_user_parser(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                    common: argparse.ArgumentParser, who: argparse.ArgumentParser,
                    tools: StationTools) -> None:
    """Add ``bwv station user ...`` beside the other station commands; ``common`` and ``who``
    are their --data/--db and --by parent parsers."""
    user = sub.add_parser("user", help="staff accounts of the web pages (add, list, disable, "
                          "reset)", description="Staff accounts for the station's web pages: "
                          "a password (argon2id) and, by default, a TOTP code from an "
                          "authenticator app. Five failed logins in a row lock an account for "
                          "15 minutes. Every change is an audit entry.")
    user.set_defaults(station_func=_user_help, user_parser=user)
    commands = user.add_subparsers(dest="user_command", metavar="USER_COMMAND")

    add = commands.add_parser("add", parents=[common, who], help="create an account",
                              description="Create an account. The password is asked twice on "
                              "the terminal (or read from standard input with "
                              "--password-stdin); the TOTP secret and its otpauth URI are "
                              "printed once, to enrol in an authenticator app.")
    add.add_argument("name", metavar="NAME", help="lower-case letters, digits and . _ @ -")
    add.add_argument("--role", required=True, metavar="ROLE", help=ROLES_HELP)
    add.add_argument("--officer-id", metavar="ID", help="the officer id of an officer's "
                     "recordings")
    add.add_argument("--team", metavar="TEAM", help="a supervisor's team")
    add.add_argument("--no-mfa", action="store_true", help=NO_MFA_HELP)
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password as one line from standard input")
    add.set_defaults(station_func=functools.partial(_user_add, tools))

    listing = commands.add_parser("list", parents=[common, who], help="list the accounts",
                                  description="One line per account: role, officer id, team, "
                                  "MFA, disabled.")
    listing.add_argument("--json", action="store_true", help="a JSON array of the accounts")
    listing.set_defaults(station_func=functools.partial(_user_list, tools))

    disable = commands.add_parser("disable", parents=[common, who], help="disable an account",
                                  description="Refuse every login of an account from now on "
                                  "and end its sessions. The account and its audit entries "
                                  "stay.")
    disable.add_argument("name", metavar="NAME")
    disable.set_defaults(station_func=functools.partial(_user_disable, tools))

    reset = commands.add_parser("reset", parents=[common, who],
                                help="new password and TOTP secret; unlock",
                                description="Give an account a new password and a new TOTP "
                                "secret (printed once), unlock it and end its sessions.")
    reset.add_argument("name", metavar="NAME")
    reset.add_argument("--no-mfa", action="store_true", help=NO_MFA_HELP)
    reset.add_argument("--password-stdin", action="store_true",
                       help="read the password as one line from standard input")
    reset.set_defaults(station_func=functools.partial(_user_reset, tools))
