"""Staff accounts (recorder.station.accounts), attacked: every way into an account without its
password and current code is tried and shown to fail, on a real catalogue (SQLite, and
PostgreSQL where locking or what the database accepts matters), with real argon2id and real
TOTP. The codes come from the code under test and are checked against RFC 6238's test vector and
Debian's oathtool.

argon2id runs with cheap parameters here (``cheap_hasher``: still argon2id, 1 MiB, one pass)
so that the file takes well under a second a test; the default parameters are RFC 9106's and
cost about 0.2 s a hash, which test_a_hash_with_old_parameters_is_redone_at_login checks
are what a station uses.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy import Engine, String, Text, select, update
from support.station import catalogue_url, postgres_cluster

from recorder.station import accounts, audit, catalogue
from recorder.station.accounts import AccountError, LoginRefused, totp_code
from recorder.station.catalogue import open_catalogue, to_us, users, web_sessions

__all__ = ["catalogue_url", "postgres_cluster"]  # fixtures used by name below

import datetime

T0 = to_us(datetime.datetime(2026, 11, 23, 8, 0, 10, tzinfo=datetime.timezone.utc))  # mid-step
STEP_US = 30_000_000
PASSWORD = "correct horse battery staple"
CLIENT = "192.0.2.7"


class CountingHasher(PasswordHasher):
    """argon2id with cheap parameters that counts its verifies: shows an unknown name costs
    one verify as a known name does."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"time_cost": 1, "memory_cost": 1024, "parallelism": 1, **kwargs})
        self.verifies = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
        """Counts the verifies that ran argon2 (a match or a mismatch), not a hash refused as
        malformed before any work."""
        try:
            result = super().verify(hash, password)
        except VerifyMismatchError:
            self.verifies += 1
            raise
        self.verifies += 1
        return result


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    hasher = CountingHasher()
    monkeypatch.setattr(accounts, "password_hasher", hasher)
    return hasher


@pytest.fixture()
def engine(tmp_path: Any) -> Iterator[Engine]:
    """A catalogue on SQLite, for what does not depend on the database."""
    made = open_catalogue(f"sqlite:///{tmp_path / 'catalogue.sqlite3'}")
    yield made
    made.dispose()


@pytest.fixture()
def any_engine(catalogue_url: str) -> Iterator[Engine]:
    """A catalogue on each backend."""
    made = open_catalogue(catalogue_url)
    yield made
    made.dispose()


def add(engine: Engine, name: str = "alice", role: str = "officer", **kwargs: Any) -> str:
    """Add ``name`` and return its TOTP secret ('' without MFA)."""
    extra = {"officer_id": "PC 1234"} if role == "officer" else {}
    extra |= {"team": "north"} if role == "supervisor" else {}
    enrolment = accounts.add_user(engine, name, role, PASSWORD, by="admin", now_us=T0,
                                  **{**extra, **kwargs})
    return enrolment.totp_secret or ""


def refused(engine: Engine, name: str, password: str, code: str | None, at: int = T0,
            client: str = CLIENT) -> LoginRefused:
    with pytest.raises(LoginRefused) as caught:
        accounts.login(engine, name, password, code, now_us=at, client=client)
    assert str(caught.value) == accounts.REFUSED_MESSAGE  # the one message, whatever the cause
    return caught.value


def entries(engine: Engine, action: str | None = None) -> list[audit.AuditEntry]:
    return [e for e in audit.entries(engine) if action is None or e.action == action]


# -- TOTP against outside oracles


def test_totp_codes_are_rfc_6238s() -> None:
    # RFC 6238 appendix B, SHA-1, T=59 s: 94287082 in 8 digits, so 287082 in 6
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of b"12345678901234567890"
    assert totp_code(secret, 59_000_000) == "287082"
    assert totp_code(secret, 1_111_111_109_000_000) == "081804"


@pytest.mark.skipif(shutil.which("oathtool") is None,
                    reason="oathtool is not installed (scripts/debian-packages-test.txt)")
def test_totp_codes_match_oathtool() -> None:
    secret = accounts.new_totp_secret()
    assert len(secret) == 32  # 20 bytes
    for seconds in (0, 29, 30, 1_795_420_810, 4_102_444_799):
        moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
        oathtool = subprocess.run(
            ["oathtool", "--totp", "-b", secret, "--now", moment.strftime("%Y-%m-%d %H:%M:%S UTC")],
            capture_output=True, text=True, timeout=10, check=True)
        assert totp_code(secret, seconds * 1_000_000) == oathtool.stdout.strip()


# -- the happy path


def test_a_login_with_password_and_current_code_succeeds(any_engine: Engine) -> None:
    enrolment = accounts.add_user(any_engine, "alice", "officer", PASSWORD, by="admin",
                                  now_us=T0, officer_id="PC 1234")
    assert enrolment.user == accounts.User("alice", "officer", "PC 1234", None, False, True)
    secret = enrolment.totp_secret
    assert secret is not None and enrolment.otpauth_uri is not None
    assert enrolment.otpauth_uri.startswith("otpauth://totp/bwv%20station:alice?")
    assert f"secret={secret}" in enrolment.otpauth_uri and "issuer=bwv" in enrolment.otpauth_uri
    user = accounts.login(any_engine, "alice", PASSWORD, totp_code(secret, T0), now_us=T0,
                          client=CLIENT)
    assert user == enrolment.user
    assert accounts.get_user(any_engine, "alice") == user
    assert accounts.list_users(any_engine) == [user]
    added, login = entries(any_engine)
    assert (added.action, added.actor, added.detail["user"]) == ("user_add", "admin", "alice")
    assert (login.action, login.actor, login.detail) == ("login", "alice", {"client": CLIENT})
    assert audit.verify(any_engine).ok


def test_without_mfa_no_code_is_asked(engine: Engine) -> None:
    assert add(engine, "idp.user", "auditor", mfa=False) == ""
    assert accounts.get_user(engine, "idp.user").mfa is False  # type: ignore[union-attr]
    assert accounts.login(engine, "idp.user", PASSWORD, None, now_us=T0, client=CLIENT).name \
        == "idp.user"
    assert refused(engine, "idp.user", "wrong password here", None).reason == "bad_password"


# -- attacks on the login


def test_a_wrong_password_is_refused_even_with_the_right_code(engine: Engine) -> None:
    secret = add(engine)
    assert refused(engine, "alice", PASSWORD + "!", totp_code(secret, T0)).reason == \
        "bad_password"
    assert refused(engine, "alice", "", totp_code(secret, T0)).reason == "bad_password"
    assert refused(engine, "alice", "x" * 100_000, totp_code(secret, T0)).reason == \
        "bad_password"


@pytest.mark.parametrize("code", [None, "", "000000x", "12345", "1234567", "abcdef"])
def test_a_missing_or_malformed_code_is_refused(engine: Engine, code: str | None) -> None:
    add(engine)
    assert refused(engine, "alice", PASSWORD, code).reason == "bad_code"


def test_a_wrong_code_is_refused(engine: Engine) -> None:
    secret = add(engine)
    right = totp_code(secret, T0)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    assert refused(engine, "alice", PASSWORD, wrong).reason == "bad_code"
    # another account's current code opens nothing either
    other = add(engine, "bob", "auditor")
    if totp_code(other, T0) != right:
        assert refused(engine, "alice", PASSWORD, totp_code(other, T0)).reason == "bad_code"


def test_a_code_from_two_steps_ago_is_refused_one_step_is_drift(engine: Engine) -> None:
    secret = add(engine)
    assert refused(engine, "alice", PASSWORD, totp_code(secret, T0 - 2 * STEP_US)).reason == \
        "bad_code"
    assert refused(engine, "alice", PASSWORD, totp_code(secret, T0 + 2 * STEP_US)).reason == \
        "bad_code"
    assert accounts.login(engine, "alice", PASSWORD, totp_code(secret, T0 - STEP_US),
                          now_us=T0, client=CLIENT).name == "alice"
    spaced = totp_code(secret, T0 + STEP_US)
    assert accounts.login(engine, "alice", PASSWORD, f"{spaced[:3]} {spaced[3:]}", now_us=T0,
                          client=CLIENT).name == "alice"  # as apps show it


def test_a_code_is_never_accepted_twice(any_engine: Engine) -> None:
    secret = add(any_engine)
    code = totp_code(secret, T0)
    accounts.login(any_engine, "alice", PASSWORD, code, now_us=T0, client=CLIENT)
    # the same code again, at once and a few seconds later from elsewhere (seen over a shoulder)
    assert refused(any_engine, "alice", PASSWORD, code).reason == "replayed_code"
    assert refused(any_engine, "alice", PASSWORD, code, at=T0 + 15_000_000,
                   client="198.51.100.9").reason == "replayed_code"
    # nor an older one still inside the drift window
    assert refused(any_engine, "alice", PASSWORD, totp_code(secret, T0 - STEP_US),
                   at=T0 + 1_000_000).reason == "replayed_code"
    # the next code is fine
    accounts.login(any_engine, "alice", PASSWORD, totp_code(secret, T0 + STEP_US),
                   now_us=T0 + STEP_US, client=CLIENT)


def test_a_login_racing_another_with_the_same_code_waits_for_it_and_is_refused(
        any_engine: Engine) -> None:
    """Two logins with one code at the same moment (a code seen over a shoulder and typed at
    once): the second decides only after the first committed the step it used. Shown
    deterministically: another transaction holds alice's row, as the first login does while it
    decides, and records that the code was used before letting go."""
    secret = add(any_engine)
    outcome: list[str] = []

    def attempt() -> None:
        try:
            accounts.login(any_engine, "alice", PASSWORD, totp_code(secret, T0), now_us=T0,
                           client=CLIENT)
            outcome.append("in")
        except LoginRefused as exc:
            outcome.append(exc.reason)

    racer = threading.Thread(target=attempt)
    with any_engine.begin() as conn:
        conn.execute(select(users).where(users.c.name == "alice").with_for_update()).one()
        racer.start()
        racer.join(timeout=0.3)
        assert racer.is_alive() and outcome == []  # waiting for the row
        conn.execute(update(users).where(users.c.name == "alice")
                     .values(totp_last_step=T0 // STEP_US))
    racer.join(timeout=30)
    assert outcome == ["replayed_code"]


def test_an_unknown_name_gets_the_same_answer_after_one_argon2_verify(
        engine: Engine, cheap_hasher: CountingHasher) -> None:
    secret = add(engine)
    before = cheap_hasher.verifies
    unknown = refused(engine, "mallory", PASSWORD, totp_code(secret, T0))
    assert unknown.reason == "unknown_user"
    assert cheap_hasher.verifies == before + 1
    known = refused(engine, "alice", "not the password!", totp_code(secret, T0))
    assert cheap_hasher.verifies == before + 2
    assert str(unknown) == str(known) and unknown.args == known.args
    # a name no account could have is answered the same way, after a verify too
    refused(engine, "../../etc/passwd", PASSWORD, None)
    assert cheap_hasher.verifies == before + 3


def test_names_that_are_no_name_are_audited_as_typed_and_harmless(any_engine: Engine) -> None:
    add(any_engine)
    for typed in ("Mallory\x00; DROP TABLE users", "x" * 5000, "\ud800", "'; --"):
        assert refused(any_engine, typed, PASSWORD, "123456").reason == "unknown_user"
    failed = entries(any_engine, "login_failed")
    assert [len(e.actor) <= 64 for e in failed] == [True] * 4
    assert failed[0].actor.startswith("Mallory\ufffd; DROP")
    assert failed[1].actor == "x" * 64
    assert all(e.detail == {"client": CLIENT, "reason": "unknown_user"} for e in failed)
    assert [u.name for u in accounts.list_users(any_engine)] == ["alice"]
    assert audit.verify(any_engine).ok


def test_five_failures_lock_the_account_even_against_the_right_password(
        any_engine: Engine) -> None:
    secret = add(any_engine)
    for attempt in range(accounts.MAX_FAILURES):
        assert refused(any_engine, "alice", f"guess number {attempt}", None,
                       at=T0 + attempt).reason == "bad_password"
    # locked: the right password and code are refused, with the same message
    later = T0 + 60_000_000
    assert refused(any_engine, "alice", PASSWORD, totp_code(secret, later),
                   at=later).reason == "locked"
    assert refused(any_engine, "alice", PASSWORD, totp_code(secret, T0 + 14 * 60_000_000),
                   at=T0 + 14 * 60_000_000).reason == "locked"
    # 15 minutes after the fifth failure it opens; success resets the count
    opened = T0 + 4 + accounts.LOCK_US
    accounts.login(any_engine, "alice", PASSWORD, totp_code(secret, opened), now_us=opened,
                   client=CLIENT)
    with any_engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.name == "alice")).one()
    assert (row.failures, row.locked_until_us) == (0, None)
    for attempt in range(accounts.MAX_FAILURES - 1):
        refused(any_engine, "alice", "still guessing", None, at=opened + STEP_US + attempt)
    following = opened + 2 * STEP_US
    accounts.login(any_engine, "alice", PASSWORD, totp_code(secret, following),
                   now_us=following, client=CLIENT)  # four failures lock nothing


def test_failures_while_locked_count_so_the_next_failure_locks_again(engine: Engine) -> None:
    secret = add(engine)
    for attempt in range(accounts.MAX_FAILURES + 3):
        refused(engine, "alice", "wrong guess here", None, at=T0 + attempt)
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.name == "alice")).one()
    assert row.failures == accounts.MAX_FAILURES + 3
    assert row.locked_until_us == T0 + accounts.MAX_FAILURES - 1 + accounts.LOCK_US  # not extended
    after = row.locked_until_us + 1
    assert refused(engine, "alice", "one more guess", None, at=after).reason == "bad_password"
    relocked = after + STEP_US
    assert refused(engine, "alice", PASSWORD, totp_code(secret, relocked),
                   at=relocked).reason == "locked"


def test_a_disabled_account_cannot_log_in(engine: Engine) -> None:
    secret = add(engine)
    user = accounts.disable_user(engine, "alice", by="admin", now_us=T0)
    assert user.disabled
    assert refused(engine, "alice", PASSWORD, totp_code(secret, T0 + 1)).reason == "disabled"
    (entry,) = entries(engine, "user_disable")
    assert (entry.actor, entry.detail) == ("admin", {"user": "alice", "sessions_ended": 0})
    with pytest.raises(AccountError, match="already disabled"):
        accounts.disable_user(engine, "alice", by="admin", now_us=T0)
    with pytest.raises(AccountError, match="disabled"):
        accounts.reset_user(engine, "alice", PASSWORD + " new", by="admin", now_us=T0)


def test_failed_logins_are_audited_with_reason_and_client(engine: Engine) -> None:
    secret = add(engine)
    refused(engine, "alice", "wrong password!", None, client="203.0.113.5")
    refused(engine, "alice", PASSWORD, "000000" if totp_code(secret, T0) != "000000" else "111111")
    details = [(e.actor, e.detail) for e in entries(engine, "login_failed")]
    assert details == [("alice", {"client": "203.0.113.5", "reason": "bad_password"}),
                       ("alice", {"client": CLIENT, "reason": "bad_code"})]


# -- what is stored


def every_text_in_the_catalogue(engine: Engine) -> str:
    """Every string column of every table, in one string."""
    found = []
    with engine.connect() as conn:
        for table in catalogue.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, (String, Text))]
            for row in conn.execute(select(*columns)):
                found.extend(str(value) for value in row if value is not None)
    return "\n".join(found)


def test_passwords_and_codes_are_never_stored_or_logged_in_clear(engine: Engine) -> None:
    secret = add(engine)
    wrong = "my other password 42"
    code = totp_code(secret, T0)
    refused(engine, "alice", wrong, code)
    accounts.login(engine, "alice", PASSWORD, code, now_us=T0, client=CLIENT)
    new_password = "a brand new passphrase"
    accounts.reset_user(engine, "alice", new_password, by="admin", now_us=T0 + 1)
    stored = every_text_in_the_catalogue(engine)
    for secret_text in (PASSWORD, wrong, new_password):
        assert secret_text not in stored
    with engine.connect() as conn:
        hashed = conn.execute(select(users.c.password_hash)).scalar_one()
    assert hashed.startswith("$argon2id$")
    assert all(code not in e.line for e in entries(engine))


def test_a_hash_with_old_parameters_is_redone_at_login(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    default = PasswordHasher()
    assert (default.type, default.time_cost, default.memory_cost, default.parallelism) == (
        RFC_9106_LOW_MEMORY.type, RFC_9106_LOW_MEMORY.time_cost,
        RFC_9106_LOW_MEMORY.memory_cost, RFC_9106_LOW_MEMORY.parallelism)
    assert accounts.PasswordHasher().memory_cost == 65536  # a station's own: 64 MiB
    add(engine, "bob", "auditor", mfa=False)  # hashed with the cheap parameters, t=1
    monkeypatch.setattr(accounts, "password_hasher", CountingHasher(time_cost=2))
    accounts.login(engine, "bob", PASSWORD, None, now_us=T0, client=CLIENT)
    with engine.connect() as conn:
        hashed = conn.execute(select(users.c.password_hash)).scalar_one()
    assert ",t=2," in hashed
    accounts.login(engine, "bob", PASSWORD, None, now_us=T0 + 1, client=CLIENT)


# -- administration


@pytest.mark.parametrize(("name", "role", "password", "extra", "message"), [
    ("alice", "officer", PASSWORD, {"officer_id": "PC 9"}, "already exists"),
    ("bob", "chief", PASSWORD, {}, "role 'chief'"),
    ("bob", "officer", PASSWORD, {}, "needs --officer-id"),
    ("bob", "supervisor", PASSWORD, {}, "needs --team"),
    ("bob", "admin", "short pw", {}, "too short"),
    ("bob", "admin", "y" * 1025, {}, "too long"),
    ("longer.name.1", "admin", "Longer.Name.1", {}, "not be the user name"),
    ("Bob", "admin", PASSWORD, {}, "user name 'Bob'"),
    ("b\x00b", "admin", PASSWORD, {}, "user name"),
    ("", "admin", PASSWORD, {}, "user name"),
])
def test_accounts_that_cannot_be_made_are_refused(engine: Engine, name: str, role: str,
                                                  password: str, extra: dict[str, str],
                                                  message: str) -> None:
    add(engine)
    with pytest.raises(AccountError, match=message):
        accounts.add_user(engine, name, role, password, by="admin", now_us=T0, **extra)
    assert [u.name for u in accounts.list_users(engine)] == ["alice"]
    assert len(entries(engine, "user_add")) == 1


def test_unknown_users_cannot_be_disabled_or_reset(engine: Engine) -> None:
    with pytest.raises(AccountError, match="no user 'ghost'"):
        accounts.disable_user(engine, "ghost", by="admin", now_us=T0)
    with pytest.raises(AccountError, match="no user 'ghost'"):
        accounts.reset_user(engine, "ghost", PASSWORD, by="admin", now_us=T0)
    assert accounts.get_user(engine, "ghost") is None
    assert entries(engine) == []


def test_reset_gives_a_new_password_and_secret_and_unlocks(engine: Engine) -> None:
    old_secret = add(engine)
    for attempt in range(accounts.MAX_FAILURES):
        refused(engine, "alice", "guessing guessing", None, at=T0 + attempt)
    new_password = "entirely new passphrase"
    at = T0 + STEP_US
    enrolment = accounts.reset_user(engine, "alice", new_password, by="admin", now_us=at)
    assert enrolment.totp_secret not in (None, old_secret)
    assert enrolment.otpauth_uri is not None
    assert refused(engine, "alice", PASSWORD, totp_code(enrolment.totp_secret, at),
                   at=at).reason == "bad_password"
    if totp_code(old_secret, at) != totp_code(enrolment.totp_secret, at):
        assert refused(engine, "alice", new_password, totp_code(old_secret, at),
                       at=at).reason == "bad_code"
    accounts.login(engine, "alice", new_password, totp_code(enrolment.totp_secret, at),
                   now_us=at, client=CLIENT)
    (entry,) = entries(engine, "user_reset")
    assert (entry.actor, entry.detail["user"], entry.detail["mfa"]) == ("admin", "alice", True)


# -- web sessions


def test_only_the_hash_of_a_session_token_is_stored(any_engine: Engine) -> None:
    add(any_engine)
    user = accounts.get_user(any_engine, "alice")
    assert user is not None
    token, session = accounts.start_session(any_engine, user, now_us=T0, client=CLIENT)
    assert len(token) >= 43 and session.user == user and len(session.csrf) >= 43
    with any_engine.connect() as conn:
        row = conn.execute(select(web_sessions)).one()
    assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in every_text_in_the_catalogue(any_engine)
    # what an attacker reads from the database opens nothing
    assert accounts.session_for(any_engine, row.token_sha256, now_us=T0 + 1) is None
    assert accounts.session_for(any_engine, row.csrf, now_us=T0 + 1) is None
    assert accounts.session_for(any_engine, "", now_us=T0 + 1) is None
    assert accounts.session_for(any_engine, token + "x", now_us=T0 + 1) is None
    assert accounts.session_for(any_engine, "a" * 100_000, now_us=T0 + 1) is None
    found = accounts.session_for(any_engine, token, now_us=T0 + 1)
    assert found is not None and (found.user, found.csrf) == (user, session.csrf)
    assert found.last_seen_us == T0 + 1
    # the CSRF token is per session, random
    other_token, other = accounts.start_session(any_engine, user, now_us=T0, client=CLIENT)
    assert other.csrf != session.csrf and other_token != token
    assert accounts.csrf_ok(session, session.csrf)
    assert not accounts.csrf_ok(session, other.csrf)
    assert not accounts.csrf_ok(session, None) and not accounts.csrf_ok(session, "")


def test_sessions_expire_when_idle_and_at_their_maximum_age(engine: Engine) -> None:
    add(engine)
    user = accounts.get_user(engine, "alice")
    assert user is not None
    idle, _ = accounts.start_session(engine, user, now_us=T0, client=CLIENT)
    assert accounts.session_for(engine, idle, now_us=T0 + 899_000_000) is not None
    assert accounts.session_for(engine, idle, now_us=T0 + 1_798_000_000) is not None  # moved on
    assert accounts.session_for(engine, idle, now_us=T0 + 2_698_000_000) is None  # 900 s idle
    assert accounts.session_for(engine, idle, now_us=T0 + 2_698_000_001) is None  # stays ended
    busy, _ = accounts.start_session(engine, user, now_us=T0, client=CLIENT)
    at = T0
    while at + 600_000_000 < T0 + accounts.MAX_AGE_S * 1_000_000:
        at += 600_000_000
        assert accounts.session_for(engine, busy, now_us=at) is not None
    assert accounts.session_for(engine, busy, now_us=T0 + accounts.MAX_AGE_S * 1_000_000) is None
    with engine.connect() as conn:
        reasons = sorted(r.end_reason for r in conn.execute(select(web_sessions)))
    assert reasons == ["idle", "max_age"]


def test_sessions_end_on_logout_disable_and_reset(any_engine: Engine) -> None:
    add(any_engine)
    add(any_engine, "bob", "auditor")
    add(any_engine, "carol", "admin")
    alice, bob, carol = (accounts.get_user(any_engine, n) for n in ("alice", "bob", "carol"))
    assert alice is not None and bob is not None and carol is not None
    out, _ = accounts.start_session(any_engine, alice, now_us=T0, client=CLIENT)
    kept, _ = accounts.start_session(any_engine, alice, now_us=T0, client=CLIENT)
    disabled = [accounts.start_session(any_engine, bob, now_us=T0, client=CLIENT)[0]
                for _ in range(2)]
    reset = accounts.start_session(any_engine, carol, now_us=T0, client=CLIENT)[0]

    accounts.end_session(any_engine, out, now_us=T0 + 1, client=CLIENT)
    accounts.end_session(any_engine, out, now_us=T0 + 2, client=CLIENT)  # nothing more
    accounts.end_session(any_engine, "no such token", now_us=T0 + 2, client=CLIENT)
    assert accounts.disable_user(any_engine, "bob", by="admin", now_us=T0 + 3).disabled
    accounts.reset_user(any_engine, "carol", "carol's new passphrase", by="admin",
                        now_us=T0 + 4)

    assert accounts.session_for(any_engine, out, now_us=T0 + 5) is None
    assert all(accounts.session_for(any_engine, t, now_us=T0 + 5) is None for t in disabled)
    assert accounts.session_for(any_engine, reset, now_us=T0 + 5) is None
    assert accounts.session_for(any_engine, kept, now_us=T0 + 5) is not None  # only that one
    (logout,) = entries(any_engine, "logout")
    assert (logout.actor, logout.detail) == ("alice", {"client": CLIENT})
    (disable,) = entries(any_engine, "user_disable")
    assert disable.detail["sessions_ended"] == 2
    with pytest.raises(LoginRefused):  # a login that raced the disable gets no session
        accounts.start_session(any_engine, bob, now_us=T0 + 6, client=CLIENT)
    assert audit.verify(any_engine).ok
