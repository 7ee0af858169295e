"""Secrets the staff pages are given in files (the reverse proxy's shared secret, the OpenID
Connect client secret): never on the command line, where `ps` shows them to every user, and
only from a file its owner alone may read."""

from __future__ import annotations

import stat
from pathlib import Path

MAX_SECRET_CHARS = 1024


class SecretFileError(ValueError):
    """A secret file that cannot be used: missing, readable by others, or not one line of
    printable characters of the length asked for."""


def read_secret_file(path: Path, what: str, min_chars: int, hint: str = "") -> bytes:
    """The secret in ``path``: its one line without the line end, ``min_chars`` to
    MAX_SECRET_CHARS printable ASCII characters without spaces, in a file of mode 600 or
    stricter. ``what`` names the secret in the messages; ``hint`` tells how to make one."""
    try:
        mode = path.stat().st_mode
        text = path.read_bytes()
    except OSError as exc:
        raise SecretFileError(f"the {what} file {path} cannot be read: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretFileError(f"the {what} file {path} may be read by others (mode "
                              f"{stat.S_IMODE(mode):o}): chmod 600 {path}")
    secret = text.rstrip(b"\r\n")
    if not min_chars <= len(secret) <= MAX_SECRET_CHARS or not all(
            0x21 <= byte <= 0x7E for byte in secret):
        raise SecretFileError(f"the {what} in {path} must be one line of {min_chars} to "
                              f"{MAX_SECRET_CHARS} printable characters without spaces{hint}")
    return secret
