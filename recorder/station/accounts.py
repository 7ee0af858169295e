"""Staff accounts of the station's web pages: who may log in, with which role, and their
sessions.

* A password is kept only as an **argon2id** hash (argon2-cffi, RFC 9106's parameters); it is
  at least 12 characters and not the account's name.
* **TOTP** (RFC 6238: SHA-1, 6 digits, 30 s, as authenticator apps expect; the TOTP of the
  ``cryptography`` package) is required unless an account is made with ``mfa=False`` (for a
  force whose identity provider does MFA). A code is accepted one step either side of now, and
  never twice: a code of a step not after the last one used is a replay.
* Every failure answers the same message, whatever its cause; an unknown name costs an argon2
  verify too. Five failures in a row lock the account for 15 minutes.
* A session is a random token in the browser's cookie, stored here only as its SHA-256, with a
  CSRF token of its own; it ends on logout, after ``idle_s`` without a request, after
  ``max_age_s``, and when its account is disabled or reset.

Every login, failure, logout and change of an account is an audit entry, inside the same
transaction. Neither a password nor a code is ever written anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import Connection, Engine, insert, select, update

from . import audit
from .audit import Action
from .catalogue import users, web_sessions
from .errors import StationError

ROLES = ("officer", "supervisor", "disclosure", "custodian", "auditor", "admin")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
MAX_FAILURES = 5
LOCKOUT_US = 15 * 60 * 1_000_000
TOTP_STEP_S = 30
ISSUER = "bwv station"
REFUSED_MESSAGE = "Wrong name, password or code, or the account is locked. Try again later."
_hasher = PasswordHasher()  # argon2id, RFC 9106's low-memory parameters
_DUMMY_HASH = _hasher.hash("no account has this password, it only costs the same time")


class AccountError(StationError, ValueError):
    """A staff account cannot be made or changed as asked (exists, unknown, weak password,
    unknown role): a usage error."""

    status = 400
    code = "account"


class LoginRefused(Exception):
    """A login that did not succeed. ``str()`` is the same for every cause (a visitor learns
    nothing of which names exist or which part was wrong); ``reason`` is for the audit log."""

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
    mfa: bool


@dataclass(frozen=True)
class Enrolment:
    """A new or reset account, and its TOTP secret and otpauth URI: shown once, never again."""

    user: User
    totp_secret: str | None
    otpauth_uri: str | None


@dataclass(frozen=True)
class WebSession:
    user: User
    csrf: str
    created_us: int
    last_seen_us: int


def _user(row: Any) -> User:
    return User(row.name, row.role, row.officer_id, row.team, bool(row.disabled),
                row.totp_secret is not None)


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-" for c in name):
        raise AccountError(f"{name[:64]!r} is not an account name: letters, digits, '.', '_' "
                           "and '-', at most 64")


def _check_password(name: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must have at most {MAX_PASSWORD} characters")
    if password.strip().lower() == name.lower():
        raise AccountError("the password must not be the account's name")


def _totp(secret: str) -> TOTP:
    return TOTP(base64.b32decode(secret), 6, SHA1(), TOTP_STEP_S, enforce_key_length=False)


def _new_secret() -> str:
    return base64.b32encode(os.urandom(20)).decode("ascii")


def totp_code(secret: str, at_us: int) -> str:
    """The 6-digit code an authenticator app shows at ``at_us`` for ``secret``."""
    return _totp(secret).generate(at_us // 1_000_000).decode("ascii")


def _enrolment(user: User, secret: str | None) -> Enrolment:
    if secret is None:
        return Enrolment(user, None, None)
    uri = _totp(secret).get_provisioning_uri(user.name, ISSUER)
    return Enrolment(user, secret, uri)


def add_user(engine: Engine, name: str, role: str, password: str, *, by: str, now_us: int,
             officer_id: str | None = None, team: str | None = None,
             mfa: bool = True) -> Enrolment:
    """Make an account; AccountError if the name is taken or a value is not allowed."""
    _check_name(name)
    if role not in ROLES:
        raise AccountError(f"the role must be one of {', '.join(ROLES)}")
    if role == "officer" and not officer_id:
        raise AccountError("an officer's account needs --officer-id (their recordings)")
    _check_password(name, password)
    secret = _new_secret() if mfa else None
    hashed = _hasher.hash(password)
    with engine.begin() as conn:
        if conn.execute(select(users.c.name).where(users.c.name == name)).first() is not None:
            raise AccountError(f"there is already an account {name}")
        conn.execute(insert(users).values(
            name=name, role=role, officer_id=officer_id or None, team=team or None,
            password_hash=hashed, totp_secret=secret, failed_logins=0, disabled=False,
            created_us=now_us, created_by=by, changed_us=now_us))
        audit.append(conn, now_us, by, Action.USER_ADD, None,
                     {"user": name, "role": role, "officer_id": officer_id, "team": team,
                      "mfa": mfa})
    return _enrolment(User(name, role, officer_id or None, team or None, False, mfa), secret)


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        return [_user(row) for row in conn.execute(select(users).order_by(users.c.name))]


def get_user(engine: Engine, name: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.name == name)).first()
    return None if row is None else _user(row)


def _existing(conn: Connection, name: str) -> Any:
    row = conn.execute(select(users).where(users.c.name == name).with_for_update()).first()
    if row is None:
        raise AccountError(f"there is no account {name[:64]}")
    return row


def _end_sessions(conn: Connection, name: str, now_us: int) -> None:
    conn.execute(update(web_sessions).where(web_sessions.c.user_name == name)
                 .where(web_sessions.c.ended_us.is_(None)).values(ended_us=now_us))


def disable_user(engine: Engine, name: str, *, by: str, now_us: int) -> User:
    """Stop an account from logging in, and end its sessions at once."""
    with engine.begin() as conn:
        row = _existing(conn, name)
        conn.execute(update(users).where(users.c.name == name)
                     .values(disabled=True, changed_us=now_us))
        _end_sessions(conn, name, now_us)
        audit.append(conn, now_us, by, Action.USER_DISABLE, None, {"user": name})
    return User(row.name, row.role, row.officer_id, row.team, True, row.totp_secret is not None)


def reset_user(engine: Engine, name: str, password: str, *, by: str, now_us: int,
               mfa: bool = True) -> Enrolment:
    """A new password and a new TOTP secret (the old ones stop working), the account enabled
    and unlocked, its sessions ended."""
    _check_password(name, password)
    secret = _new_secret() if mfa else None
    hashed = _hasher.hash(password)
    with engine.begin() as conn:
        row = _existing(conn, name)
        conn.execute(update(users).where(users.c.name == name).values(
            password_hash=hashed, totp_secret=secret, last_totp_step=None, failed_logins=0,
            locked_until_us=None, disabled=False, changed_us=now_us))
        _end_sessions(conn, name, now_us)
        audit.append(conn, now_us, by, Action.USER_RESET, None, {"user": name, "mfa": mfa})
    return _enrolment(User(row.name, row.role, row.officer_id, row.team, False, mfa), secret)


def _password_ok(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _code_step(secret: str, code: str, now_us: int) -> int | None:
    """The time step ``code`` belongs to (now, one before or one after), or None."""
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = _totp(secret)
    now_s = now_us // 1_000_000
    for offset in (0, -1, 1):
        at = now_s + offset * TOTP_STEP_S
        try:
            totp.verify(code.encode("ascii"), at)
        except InvalidToken:
            continue
        return at // TOTP_STEP_S
    return None


def login(engine: Engine, name: str, password: str, code: str, *, now_us: int,
          client: str) -> User:
    """The account, if ``password`` and ``code`` are right now; LoginRefused otherwise. Each
    attempt is an audit entry (the name as typed, the client, and for a failure its reason)."""
    with engine.begin() as conn:
        row = conn.execute(select(users).where(users.c.name == name[:64])
                           .with_for_update()).first()
        password_ok = _password_ok(row.password_hash if row is not None else _DUMMY_HASH,
                                   password)
        reason = _refusal(row, password_ok, code, now_us)
        if reason is None:
            assert row is not None
            step = _code_step(row.totp_secret, code, now_us) if row.totp_secret else None
            values: dict[str, Any] = {"failed_logins": 0, "locked_until_us": None,
                                      "last_totp_step": step}
            if _hasher.check_needs_rehash(row.password_hash):
                values["password_hash"] = _hasher.hash(password)
            conn.execute(update(users).where(users.c.name == row.name).values(**values))
            audit.append(conn, now_us, row.name, Action.LOGIN, None, {"client": client})
            return _user(row)
        if row is not None:
            failures = int(row.failed_logins) + 1
            lock = now_us + LOCKOUT_US if failures >= MAX_FAILURES else row.locked_until_us
            conn.execute(update(users).where(users.c.name == row.name)
                         .values(failed_logins=failures, locked_until_us=lock))
        audit.append(conn, now_us, name[:64] or "(no name)", Action.LOGIN_FAILED, None,
                     {"client": client, "reason": reason})
    raise LoginRefused(reason)


def _refusal(row: Any, password_ok: bool, code: str, now_us: int) -> str | None:
    """Why a login is refused, or None when it is not."""
    if row is None:
        return "unknown_user"
    if row.disabled:
        return "disabled"
    if row.locked_until_us is not None and row.locked_until_us > now_us:
        return "locked"
    if not password_ok:
        return "bad_password"
    if row.totp_secret is None:
        return None
    step = _code_step(row.totp_secret, code, now_us)
    if step is None:
        return "bad_code"
    if row.last_totp_step is not None and step <= row.last_totp_step:
        return "replayed_code"
    return None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(engine: Engine, user: User, *, now_us: int,
                  client: str) -> tuple[str, WebSession]:
    """A new session of ``user``: the token for the cookie (returned once) and the session."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(insert(web_sessions).values(
            token_sha256=_token_hash(token), user_name=user.name, csrf=csrf,
            client=client[:64], created_us=now_us, last_seen_us=now_us))
    return token, WebSession(user, csrf, now_us, now_us)


def session_for(engine: Engine, token: str, *, now_us: int, idle_s: int = 900,
                max_age_s: int = 43200) -> WebSession | None:
    """The live session of ``token`` (its last use moved to now), or None: unknown, ended,
    idle longer than ``idle_s``, older than ``max_age_s``, or its account disabled."""
    digest = _token_hash(token)
    with engine.begin() as conn:
        found = conn.execute(select(web_sessions, users).join(
            users, users.c.name == web_sessions.c.user_name)
            .where(web_sessions.c.token_sha256 == digest)).first()
        if found is None or found.ended_us is not None:
            return None
        expired = (now_us - found.last_seen_us > idle_s * 1_000_000
                   or now_us - found.created_us > max_age_s * 1_000_000)
        if expired or found.disabled:
            conn.execute(update(web_sessions).where(web_sessions.c.token_sha256 == digest)
                         .values(ended_us=now_us))
            return None
        conn.execute(update(web_sessions).where(web_sessions.c.token_sha256 == digest)
                     .values(last_seen_us=now_us))
    user = User(found.name, found.role, found.officer_id, found.team, bool(found.disabled),
                found.totp_secret is not None)
    return WebSession(user, found.csrf, found.created_us, now_us)


def end_session(engine: Engine, token: str, *, now_us: int, client: str) -> None:
    """Log out: the session ends, and the logout is an audit entry."""
    digest = _token_hash(token)
    with engine.begin() as conn:
        found = conn.execute(select(web_sessions.c.user_name).where(
            web_sessions.c.token_sha256 == digest).where(web_sessions.c.ended_us.is_(None))
        ).first()
        if found is None:
            return
        conn.execute(update(web_sessions).where(web_sessions.c.token_sha256 == digest)
                     .values(ended_us=now_us))
        audit.append(conn, now_us, found.user_name, Action.LOGOUT, None, {"client": client})
