"""`bwv station user ...` in real processes (forked from the warm one, tests/support/warm.py):
an account made at the command line logs in with the secret it printed, the password is never
taken from a terminal that is not there, and every refusal is one line and exit 2.

The commands hash with the station's real argon2id parameters (RFC 9106's, about 0.2 s a hash
here), so each test makes at most two accounts.
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from pathlib import Path

import pytest
from support import warm
from support.station import make_store

from recorder.cli import station as commands
from recorder.station import accounts, audit
from recorder.station.catalogue import open_catalogue, sqlite_url, to_us

PASSWORD = "correct horse battery staple"


def bwv(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`bwv ARGS` with ``stdin`` on standard input (a file, not a terminal)."""
    import os

    environ = {**os.environ, "RECORDER_NATIVE": "off"}
    environ.pop(commands.DATA_ENV_VAR, None)
    environ.pop(commands.DB_ENV_VAR, None)
    return warm.run([*args], cwd="/", env=environ, timeout=60, input=stdin)


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    """A station's data directory (no accounts yet)."""
    store = make_store(tmp_path / "station")
    store.engine.dispose()
    return tmp_path / "station"


def now_us() -> int:
    return to_us(datetime.datetime.now(datetime.timezone.utc))


def one_line_usage_error(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("bwv station user: ") and says in result.stderr
    assert result.stdout == ""


def test_an_account_made_here_logs_in_with_the_secret_printed_once(data: Path) -> None:
    made = bwv("station", "user", "add", "alice", "--role", "officer", "--officer-id", "PC 1234",
               "--password-stdin", "--data", str(data), "--by", "admin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    secret = re.search(r"secret: ([A-Z2-7]{32})\n", made.stdout)
    assert secret is not None and "authenticator app" in made.stdout
    assert "otpauth://totp/bwv%20station:alice?" in made.stdout
    assert PASSWORD not in made.stdout + made.stderr

    engine = open_catalogue(sqlite_url(data))
    try:
        at = now_us()
        user = accounts.login(engine, "alice", PASSWORD, accounts.totp_code(secret.group(1), at),
                              now_us=at, client="192.0.2.1")
        assert (user.role, user.officer_id, user.mfa) == ("officer", "PC 1234", True)
        (added,) = [e for e in audit.entries(engine) if e.action == "user_add"]
        assert (added.actor, added.detail["user"]) == ("admin", "alice")
    finally:
        engine.dispose()

    listed = bwv("station", "user", "list", "--json", "--data", str(data))
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [{"disabled": False, "mfa": True, "name": "alice",
                                          "officer_id": "PC 1234", "role": "officer",
                                          "team": None}]
    assert secret.group(1) not in listed.stdout  # shown once, at enrolment only
    plain = bwv("station", "user", "list", "--data", str(data))
    assert plain.returncode == 0 and "alice" in plain.stdout and "MFA by TOTP" in plain.stdout


def test_disable_refuses_logins_and_reset_gives_a_new_password(data: Path) -> None:
    for name in ("bob", "carol"):
        made = bwv("station", "user", "add", name, "--role", "auditor", "--no-mfa",
                   "--password-stdin", "--data", str(data), stdin=PASSWORD + "\n")
        assert made.returncode == 0, made.stderr
        assert "no TOTP code" in made.stdout and "secret" not in made.stdout
    disabled = bwv("station", "user", "disable", "bob", "--data", str(data), "--by", "admin")
    assert disabled.returncode == 0, disabled.stderr
    new_password = "a wholly new passphrase"
    reset = bwv("station", "user", "reset", "carol", "--password-stdin", "--data", str(data),
                "--by", "admin", stdin=new_password + "\n")
    assert reset.returncode == 0, reset.stderr
    secret = re.search(r"secret: ([A-Z2-7]{32})\n", reset.stdout)  # MFA unless --no-mfa
    assert secret is not None

    engine = open_catalogue(sqlite_url(data))
    try:
        at = now_us()
        with pytest.raises(accounts.LoginRefused) as caught:
            accounts.login(engine, "bob", PASSWORD, None, now_us=at, client="192.0.2.1")
        assert caught.value.reason == "disabled"
        with pytest.raises(accounts.LoginRefused) as caught:
            accounts.login(engine, "carol", PASSWORD, accounts.totp_code(secret.group(1), at),
                           now_us=at, client="192.0.2.1")
        assert caught.value.reason == "bad_password"
        accounts.login(engine, "carol", new_password, accounts.totp_code(secret.group(1), at),
                       now_us=at, client="192.0.2.1")
    finally:
        engine.dispose()
    listed = json.loads(bwv("station", "user", "list", "--json", "--data", str(data)).stdout)
    assert [(u["name"], u["disabled"], u["mfa"]) for u in listed] == [
        ("bob", True, False), ("carol", False, True)]
    one_line_usage_error(bwv("station", "user", "reset", "bob", "--password-stdin", "--data",
                             str(data), stdin=new_password + "\n"), "is disabled")
    one_line_usage_error(bwv("station", "user", "disable", "bob", "--data", str(data)),
                         "already disabled")


def test_without_a_terminal_the_password_must_come_on_standard_input(data: Path) -> None:
    for args in (["add", "dave", "--role", "admin"], ["add", "dave", "--role", "admin",
                                                      "--password-stdin"]):
        one_line_usage_error(bwv("station", "user", *args, "--data", str(data)),
                             "--password-stdin")
    listed = bwv("station", "user", "list", "--json", "--data", str(data))
    assert json.loads(listed.stdout) == []


@pytest.mark.parametrize(("args", "says"), [
    (["add", "eve", "--role", "chief"], "role 'chief'"),
    (["add", "eve", "--role", "officer"], "--officer-id"),
    (["add", "eve", "--role", "supervisor"], "--team"),
    (["add", "Eve", "--role", "admin"], "user name 'Eve'"),
    (["disable", "ghost"], "no user 'ghost'"),
    (["reset", "ghost", "--password-stdin"], "no user 'ghost'"),
])
def test_usage_errors_are_one_line_and_exit_2(data: Path, args: list[str], says: str) -> None:
    one_line_usage_error(bwv("station", "user", *args, "--data", str(data),
                             stdin=PASSWORD + "\n"), says)


def test_weak_passwords_and_taken_names_are_refused(data: Path) -> None:
    for weak in ("too short", "frank.smith1", "x" * 1025):
        one_line_usage_error(bwv("station", "user", "add", "frank.smith1", "--role", "admin",
                                 "--password-stdin", "--data", str(data), stdin=weak + "\n"),
                             "the password")
    made = bwv("station", "user", "add", "frank.smith1", "--role", "admin", "--password-stdin",
               "--data", str(data), stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    one_line_usage_error(bwv("station", "user", "add", "frank.smith1", "--role", "admin",
                             "--password-stdin", "--data", str(data), stdin=PASSWORD + "\n"),
                         "already exists")


@pytest.mark.parametrize("args", [["list"], ["add", "gina", "--role", "admin",
                                            "--password-stdin"], ["disable", "gina"],
                                   ["reset", "gina", "--password-stdin"]])
def test_a_mistyped_data_directory_is_refused_and_not_created(tmp_path: Path,
                                                              args: list[str]) -> None:
    result = bwv("station", "user", *args, "--data", str(tmp_path / "statoin"),
                 stdin=PASSWORD + "\n")
    one_line_usage_error(result, "no station in")
    assert not (tmp_path / "statoin").exists()


def test_help_says_no_mfa_is_for_an_identity_provider() -> None:
    shown = bwv("station", "user", "add", "--help")
    assert shown.returncode == 0
    assert "identity provider" in " ".join(shown.stdout.split())
    assert bwv("station", "user").returncode == 2


def on_a_terminal(args: list[str], answers: list[str]) -> tuple[int, str]:
    """`bwv ARGS` with a pseudo-terminal on stdin and stderr (as an administrator types): each
    answer is typed after its prompt appears (getpass flushes what was typed before). A fresh
    process in a session of its own, so getpass cannot reach the terminal pytest runs in.
    Returns the exit status and what the terminal showed."""
    import os
    import pty
    import select
    import sys
    import time

    master, slave = pty.openpty()
    environ = {**os.environ, "RECORDER_NATIVE": "off"}
    process = subprocess.Popen([sys.executable, "-m", "recorder", *args], stdin=slave,
                               stdout=subprocess.DEVNULL, stderr=slave, cwd="/", env=environ,
                               start_new_session=True)
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + 60
    pending = list(answers)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
                if pending and shown.endswith(b": "):  # a prompt, after getpass's flush
                    os.write(master, pending.pop(0).encode() + b"\n")
            elif process.poll() is not None:
                break
        return process.wait(timeout=30), shown.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(master)


def test_on_a_terminal_the_password_is_asked_twice_and_must_match(data: Path) -> None:
    """The default way an administrator gives a password: two prompts, nothing echoed."""
    status, shown = on_a_terminal(["station", "user", "add", "hana", "--role", "admin",
                                   "--data", str(data)], [PASSWORD, PASSWORD + "?"])
    assert status == 2 and "the two passwords differ" in shown, shown
    status, shown = on_a_terminal(["station", "user", "add", "hana", "--role", "admin",
                                   "--no-mfa", "--data", str(data)], [PASSWORD, PASSWORD])
    assert status == 0, shown
    assert PASSWORD not in shown  # not echoed
    engine = open_catalogue(sqlite_url(data))
    try:
        assert accounts.login(engine, "hana", PASSWORD, None, now_us=now_us(),
                              client="192.0.2.1").role == "admin"
    finally:
        engine.dispose()
