"""Staff accounts for the station's web pages: passwords (argon2id), TOTP MFA, lockout and web
sessions, each change and each login written to the audit log in the same transaction.

What is stored, and why:

- the password as an argon2id hash (argon2-cffi's defaults, RFC 9106's low-memory profile),
  rehashed at the next login when the parameters change;
- the TOTP secret in clear (base32), because the station must compute codes: the catalogue must
  be protected like the station key (encrypting it is a later issue);
- the step of the last TOTP code accepted, so that no code is accepted twice (a code seen over a
  shoulder or in a proxy's log opens nothing);
- consecutive failures and a lock time: ``MAX_FAILURES`` failures lock the account for
  ``LOCK_US``; failures made while locked are counted too (so the first failure after the lock
  ends locks it again) but do not extend it, and every refusal says the same thing;
- for a web session, only the SHA-256 of its token: a copy of the catalogue opens no session.

A login refused for any cause raises ``LoginRefused`` whose message is one and the same for
every cause (unknown name, wrong password, wrong or replayed code, locked, disabled), and an
unknown name costs one argon2 verify like a known one: neither the answer nor its time tells an
outsider which names exist. The cause is in ``reason``, and in the audit log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import audit
from .audit import Action
from .catalogue import users, web_sessions
from .errors import AccountError

__all__ = ["ROLES", "User", "Enrolment", "AccountError", "LoginRefused", "WebSession",
           "add_user", "check_new_user", "list_users", "get_user", "disable_user", "reset_user",
           "login", "totp_code", "start_session", "session_for", "end_session", "csrf_ok"]

ROLES = ("officer", "supervisor", "disclosure", "custodian", "auditor", "admin")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
MIN_PASSWORD, MAX_PASSWORD = 12, 1024  # characters
MAX_FAILURES = 5
LOCK_US = 15 * 60 * 1_000_000
TOTP_ISSUER = "bwv station"
TOTP_DIGITS, TOTP_STEP_S, TOTP_SECRET_BYTES = 6, 30, 20  # what authenticator apps expect
TOTP_WINDOW = 1  # steps accepted either side of the current one (clock drift, typing time)
IDLE_S, MAX_AGE_S = 900, 43_200
MAX_TOKEN = 128  # characters of a session token read from a cookie; ours are 43
ACTOR_CHARS, CLIENT_CHARS = 64, 128
REFUSED_MESSAGE = "the name, password or code is not right, or the account cannot log in now"

# The hasher every password goes through: argon2-cffi's defaults are RFC 9106's low-memory
# profile (argon2id, t=3, m=64 MiB, p=4). Tests may set a cheaper PasswordHasher here (still
# argon2id) to stay fast; a hash made with other parameters is redone at the next login.
password_hasher = PasswordHasher()
_dummy_hashes: dict[tuple[int, int, int, int, int], str] = {}


class LoginRefused(Exception):
    """A login that did not succeed. ``str()`` is ``REFUSED_MESSAGE`` whatever the cause, so
    the page cannot tell an outsider which names exist or which factor was wrong; ``reason``
    (unknown_user, bad_password, bad_code, replayed_code, locked, disabled) is for the audit
    log and the station's own log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(REFUSED_MESSAGE)
        self.reason = reason


@dataclass(frozen=True)
class User:
    name: str
    role: str
    officer_id: str | None
    team: str | None
    disabled: bool
    mfa: bool  # a TOTP code is asked at login


@dataclass(frozen=True)
class Enrolment:
    """What `user add` and `user reset` print once: the TOTP secret and its otpauth URI (None
    without MFA). Neither is ever shown again."""

    user: User
    totp_secret: str | None
    otpauth_uri: str | None


@dataclass(frozen=True)
class WebSession:
    user: User
    csrf: str  # the token every state-changing form must carry
    created_us: int
    last_seen_us: int


# -- checks of what an administrator gives


def _check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise AccountError(f"user name {name!r}: 1 to 64 characters, lower-case letters, "
                           "digits and . _ @ -, beginning with a letter or digit")


def _check_role(role: str, officer_id: str | None, team: str | None) -> None:
    """The role exists, and an officer has an officer id (their own recordings are those with
    it) and a supervisor a team (whose recordings they see)."""
    if role not in ROLES:
        raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")
    if role == "officer" and not officer_id:
        raise AccountError("an officer's account needs --officer-id (their own recordings)")
    if role == "supervisor" and not team:
        raise AccountError("a supervisor's account needs --team (the recordings they oversee)")
    for what, value in (("officer id", officer_id), ("team", team)):
        if value is not None and not (0 < len(value) <= 128 and value.isprintable()):
            raise AccountError(f"{what} {value!r}: 1 to 128 printable characters")


def check_new_user(name: str, role: str, officer_id: str | None = None,
                   team: str | None = None) -> None:
    """AccountError if an account with this name, role, officer id and team cannot be made
    (whatever its password): for `user add` to say so before asking for a password."""
    _check_name(name)
    _check_role(role, officer_id, team)


def _check_password(name: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password is too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password is too long: at most {MAX_PASSWORD} characters")
    if password.strip().casefold() == name.casefold():
        raise AccountError("the password must not be the user name")
    if "\x00" in password:
        raise AccountError("the password must not contain a NUL character")


def _printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with anything unprintable or not valid Unicode
    replaced: what a client typed goes into the audit log, which must take it (PostgreSQL
    refuses NUL) and show it harmlessly."""
    cut = text[:limit]
    cut = cut.encode("utf-8", "replace").decode("utf-8")
    return "".join(char if char.isprintable() else "\ufffd" for char in cut)


# -- TOTP


def new_totp_secret() -> str:
    """A fresh 20-byte secret, base32 as authenticator apps take it (32 characters)."""
    return base64.b32encode(os.urandom(TOTP_SECRET_BYTES)).decode("ascii")


def _totp(secret: str) -> TOTP:
    return TOTP(base64.b32decode(secret.upper()), TOTP_DIGITS, SHA1(), TOTP_STEP_S)


def otpauth_uri(name: str, secret: str) -> str:
    """The otpauth:// URI an authenticator app scans (as a QR code) or takes as text."""
    return _totp(secret).get_provisioning_uri(name, TOTP_ISSUER)


def _step(at_us: int) -> int:
    return (at_us // 1_000_000) // TOTP_STEP_S


def _code_at_step(secret: str, step: int) -> str:
    return _totp(secret).generate(step * TOTP_STEP_S).decode("ascii")


def totp_code(secret: str, at_us: int) -> str:
    """The code an authenticator app shows at ``at_us`` (microseconds since the epoch)."""
    return _code_at_step(secret, _step(at_us))


def _matching_step(secret: str, code: str | None, now_us: int) -> int | None:
    """The step (current, or one either side) whose code ``code`` is, or None. Every step is
    compared, in constant time."""
    typed = (code or "").replace(" ", "")
    if not re.fullmatch(r"[0-9]{%d}" % TOTP_DIGITS, typed):
        return None
    now = _step(now_us)
    found = None
    for step in range(now - TOTP_WINDOW, now + TOTP_WINDOW + 1):
        if hmac.compare_digest(_code_at_step(secret, step), typed):
            found = step
    return found


# -- passwords


def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash of a random password with ``hasher``'s parameters: what an unknown name is
    verified against, so that it costs what a known one costs."""
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.hash_len,
           hasher.salt_len)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = hasher.hash(secrets.token_urlsafe(24))
    return _dummy_hashes[key]


def _verify(hasher: PasswordHasher, hashed: str, password: str) -> bool:
    try:
        return hasher.verify(hashed, password[:MAX_PASSWORD + 1])
    except (VerificationError, InvalidHashError):
        return False


# -- the users table


def _user(row: Any) -> User:
    return User(row.name, row.role, row.officer_id, row.team, row.disabled_us is not None,
                row.totp_secret is not None)


def _row(conn: Connection, name: str, lock: bool = False) -> Any:
    query = select(users).where(users.c.name == name)
    return conn.execute(query.with_for_update() if lock else query).first()


def _existing(conn: Connection, name: str) -> Any:
    """The user's row, locked for this transaction; AccountError if there is none."""
    row = _row(conn, name, lock=True)
    if row is None:
        raise AccountError(f"no user {name!r} (`bwv station user list --data DIR` lists them)")
    return row


def _end_sessions(conn: Connection, name: str, now_us: int, why: str) -> int:
    ended = conn.execute(update(web_sessions).where(web_sessions.c.user_name == name)
                         .where(web_sessions.c.ended_us.is_(None))
                         .values(ended_us=now_us, end_reason=why))
    return int(ended.rowcount)


def _enrolment(user: User, secret: str | None) -> Enrolment:
    return Enrolment(user, secret, None if secret is None else otpauth_uri(user.name, secret))


def add_user(engine: Engine, name: str, role: str, password: str, *, by: str, now_us: int,
             officer_id: str | None = None, team: str | None = None,
             mfa: bool = True) -> Enrolment:
    """Create an account; with ``mfa`` (the default) a TOTP secret to enrol in an app."""
    check_new_user(name, role, officer_id, team)
    _check_password(name, password)
    secret = new_totp_secret() if mfa else None
    hashed = password_hasher.hash(password)
    try:
        with engine.begin() as conn:
            if _row(conn, name) is not None:
                raise AccountError(f"user {name!r} already exists")
            conn.execute(insert(users).values(
                name=name, role=role, officer_id=officer_id, team=team, password_hash=hashed,
                totp_secret=secret, totp_last_step=None, failures=0, locked_until_us=None,
                disabled_us=None, created_us=now_us, created_by=by, changed_us=now_us))
            audit.append(conn, now_us, by, Action.USER_ADD, None,
                         {"user": name, "role": role, "officer_id": officer_id, "team": team,
                          "mfa": mfa})
    except IntegrityError:  # added by someone else between the check and the insert
        raise AccountError(f"user {name!r} already exists") from None
    return _enrolment(User(name, role, officer_id, team, False, mfa), secret)


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        return [_user(row) for row in conn.execute(select(users).order_by(users.c.name))]


def get_user(engine: Engine, name: str) -> User | None:
    if not NAME_PATTERN.fullmatch(name):
        return None
    with engine.connect() as conn:
        row = _row(conn, name)
    return None if row is None else _user(row)


def disable_user(engine: Engine, name: str, *, by: str, now_us: int) -> User:
    """Refuse every login of the account from now on and end its sessions."""
    with engine.begin() as conn:
        row = _existing(conn, name)
        if row.disabled_us is not None:
            raise AccountError(f"user {name!r} is already disabled")
        conn.execute(update(users).where(users.c.name == name)
                     .values(disabled_us=now_us, changed_us=now_us))
        ended = _end_sessions(conn, name, now_us, "disabled")
        audit.append(conn, now_us, by, Action.USER_DISABLE, None,
                     {"user": name, "sessions_ended": ended})
        return _user(_row(conn, name))


def reset_user(engine: Engine, name: str, password: str, *, by: str, now_us: int,
               mfa: bool = True) -> Enrolment:
    """A new password and a new TOTP secret (or none, without ``mfa``); unlocks the account and
    ends its sessions. A disabled account stays disabled: resetting it is refused."""
    _check_password(name, password)
    secret = new_totp_secret() if mfa else None
    hashed = password_hasher.hash(password)
    with engine.begin() as conn:
        row = _existing(conn, name)
        if row.disabled_us is not None:
            raise AccountError(f"user {name!r} is disabled: a disabled account is not reset")
        conn.execute(update(users).where(users.c.name == name).values(
            password_hash=hashed, totp_secret=secret, totp_last_step=None, failures=0,
            locked_until_us=None, changed_us=now_us))
        ended = _end_sessions(conn, name, now_us, "reset")
        audit.append(conn, now_us, by, Action.USER_RESET, None,
                     {"user": name, "mfa": mfa, "sessions_ended": ended})
        user = _user(_row(conn, name))
    return _enrolment(user, secret)


# -- login


def login(engine: Engine, name: str, password: str, code: str | None, *, now_us: int,
          client: str) -> User:
    """The account, if ``password`` (and ``code``, for an account with MFA) are right and it
    may log in now; else LoginRefused. Success or failure, an audit entry is written."""
    hasher = password_hasher
    dummy = _dummy_hash(hasher)  # made before the first lookup, so no first-time oracle either
    wanted = name.strip().lower()
    row = None
    if NAME_PATTERN.fullmatch(wanted):
        with engine.connect() as conn:
            row = _row(conn, wanted)
    checked = dummy if row is None else str(row.password_hash)
    password_ok = _verify(hasher, checked, password) and row is not None
    rehashed = None
    if password_ok and hasher.check_needs_rehash(checked):
        rehashed = hasher.hash(password)
    with engine.begin() as conn:
        reason, user = _decide(conn, name, wanted if row is not None else None, checked,
                               password_ok, rehashed, code, now_us, _printable(client,
                                                                               CLIENT_CHARS))
    if user is None:
        raise LoginRefused(reason)
    return user


def _decide(conn: Connection, typed: str, name: str | None, checked: str, password_ok: bool,
            rehashed: str | None, code: str | None, now_us: int,
            client: str) -> tuple[str, User | None]:
    """Inside the write transaction, with the user's row locked (two logins with one code
    queue here, and the second sees the step the first used): decide, count, audit."""
    row = None if name is None else _row(conn, name, lock=True)
    if row is None:
        audit.append(conn, now_us, _printable(typed, ACTOR_CHARS), Action.LOGIN_FAILED, None,
                     {"client": client, "reason": "unknown_user"})
        return "unknown_user", None
    password_ok = password_ok and row.password_hash == checked  # not reset meanwhile
    locked = row.locked_until_us is not None and now_us < row.locked_until_us
    step = None
    reason = ""
    if row.disabled_us is not None:
        reason = "disabled"
    elif locked:
        reason = "locked"
    elif not password_ok:
        reason = "bad_password"
    elif row.totp_secret is not None:
        step = _matching_step(row.totp_secret, code, now_us)
        if step is None:
            reason = "bad_code"
        elif row.totp_last_step is not None and step <= row.totp_last_step:
            reason = "replayed_code"
    if reason:
        _count_failure(conn, row, locked, now_us)
        audit.append(conn, now_us, row.name, Action.LOGIN_FAILED, None,
                     {"client": client, "reason": reason})
        return reason, None
    values: dict[str, Any] = {"failures": 0, "locked_until_us": None}
    if step is not None:
        values["totp_last_step"] = step
    if rehashed is not None:
        values["password_hash"] = rehashed
    conn.execute(update(users).where(users.c.name == row.name).values(**values))
    audit.append(conn, now_us, row.name, Action.LOGIN, None, {"client": client})
    return "", _user(row)


def _count_failure(conn: Connection, row: Any, locked: bool, now_us: int) -> None:
    """One more consecutive failure; the ``MAX_FAILURES``-th (or any after it, once a lock has
    ended) locks the account for ``LOCK_US``. Failures while locked count but do not extend
    the lock, so nobody can keep an account locked for ever by trying once a minute."""
    if row.disabled_us is not None:
        return
    failures = int(row.failures) + 1
    values: dict[str, Any] = {"failures": failures}
    if not locked and failures >= MAX_FAILURES:
        values["locked_until_us"] = now_us + LOCK_US
    conn.execute(update(users).where(users.c.name == row.name).values(**values))


# -- web sessions


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(engine: Engine, user: User, *, now_us: int,
                  client: str) -> tuple[str, WebSession]:
    """A new session for ``user`` (just logged in): the token for the cookie, returned only
    here (the catalogue keeps its SHA-256), and the session with its CSRF token. LoginRefused
    ("disabled") if the account was disabled since."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        row = _row(conn, user.name, lock=True)
        if row is None or row.disabled_us is not None:
            raise LoginRefused("disabled")
        conn.execute(insert(web_sessions).values(
            token_sha256=_token_hash(token), user_name=row.name, csrf=csrf,
            client=_printable(client, CLIENT_CHARS), created_us=now_us, last_seen_us=now_us,
            ended_us=None, end_reason=None))
    return token, WebSession(_user(row), csrf, now_us, now_us)


def session_for(engine: Engine, token: str, *, now_us: int, idle_s: int = IDLE_S,
                max_age_s: int = MAX_AGE_S) -> WebSession | None:
    """The live session of a cookie's token, marked seen now; None when there is none: unknown
    token, logged out, idle for ``idle_s`` or more, older than ``max_age_s``, or ended when its
    account was disabled or reset. An expired session is ended here."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN:
        return None
    digest = _token_hash(token)
    with engine.begin() as conn:
        found = conn.execute(select(web_sessions).where(web_sessions.c.token_sha256 == digest)
                             .with_for_update()).first()
        if found is None or found.ended_us is not None:
            return None
        row = _row(conn, found.user_name)
        why = _expiry(found, row, now_us, idle_s, max_age_s)
        if why is not None:
            conn.execute(update(web_sessions).where(web_sessions.c.token_sha256 == digest)
                         .values(ended_us=now_us, end_reason=why))
            return None
        conn.execute(update(web_sessions).where(web_sessions.c.token_sha256 == digest)
                     .values(last_seen_us=now_us))
    return WebSession(_user(row), found.csrf, found.created_us, now_us)


def _expiry(session: Any, user: Any, now_us: int, idle_s: int, max_age_s: int) -> str | None:
    """Why a session that was not ended is over now, or None."""
    if user is None or user.disabled_us is not None:
        return "disabled"
    if now_us - session.last_seen_us >= idle_s * 1_000_000:
        return "idle"
    if now_us - session.created_us >= max_age_s * 1_000_000:
        return "max_age"
    return None


def end_session(engine: Engine, token: str, *, now_us: int, client: str) -> None:
    """Log out: the session ends and a logout entry is written. Nothing for a token that opens
    no session (already ended, or never one)."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN:
        return
    digest = _token_hash(token)
    with engine.begin() as conn:
        found = conn.execute(select(web_sessions).where(web_sessions.c.token_sha256 == digest)
                             .with_for_update()).first()
        if found is None or found.ended_us is not None:
            return
        conn.execute(update(web_sessions).where(web_sessions.c.token_sha256 == digest)
                     .values(ended_us=now_us, end_reason="logout"))
        audit.append(conn, now_us, found.user_name, Action.LOGOUT, None,
                     {"client": _printable(client, CLIENT_CHARS)})


def csrf_ok(session: WebSession, given: str | None) -> bool:
    """Whether a form's CSRF token is the session's (compared in constant time)."""
    return isinstance(given, str) and hmac.compare_digest(session.csrf.encode("ascii"),
                                                          given.encode("utf-8", "replace"))
