"""`bwv station user` (issue 14): staff accounts made and changed on the command line, with the
password from standard input, the TOTP secret shown once, and one-line usage errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support.station import make_store
from support import warm

from recorder.station import accounts


def bwv(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return warm.run(["station", "user", *args, "--data", str(data)], input=stdin, timeout=60)


def test_add_list_disable_and_reset_a_staff_account(tmp_path: Path) -> None:
    data = tmp_path / "station"
    store = make_store(data)
    added = bwv(data, "add", "pc-jones", "--role", "officer", "--officer-id", "4121",
                "--password-stdin", stdin="a long passphrase 123\n")
    assert added.returncode == 0, added.stderr
    [secret] = [line.split()[1] for line in added.stdout.splitlines()
                if line.strip().startswith("secret:")]
    assert "otpauth://totp/" in added.stdout and f"secret={secret}" in added.stdout
    now = store.clock()
    user = accounts.login(store.engine, "pc-jones", "a long passphrase 123",
                          accounts.totp_code(secret, now), now_us=now, client="test")
    assert user.role == "officer" and user.officer_id == "4121"
    listed = json.loads(bwv(data, "list", "--json").stdout)
    assert [u["name"] for u in listed] == ["pc-jones"] and "secret" not in json.dumps(listed)
    assert bwv(data, "disable", "pc-jones").returncode == 0
    assert accounts.get_user(store.engine, "pc-jones").disabled  # type: ignore[union-attr]
    reset = bwv(data, "reset", "pc-jones", "--password-stdin", stdin="another passphrase 456\n")
    assert reset.returncode == 0 and secret not in reset.stdout


def test_a_weak_password_an_unknown_role_or_user_is_a_one_line_usage_error(tmp_path: Path) -> None:
    data = tmp_path / "station"
    make_store(data)
    for args, stdin in ((["add", "eve", "--role", "admin", "--password-stdin"], "short\n"),
                        (["add", "eve", "--role", "chief", "--password-stdin"],
                         "a long passphrase 123\n"),
                        (["disable", "nobody"], "")):
        result = bwv(data, *args, stdin=stdin)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
