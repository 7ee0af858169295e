"""What a storage failure was, in the words a wearer or a script can act on.

A card fails in a few ways that need different actions: it fills up (free space), goes
read-only (what an SD card does after an error: replace it), returns I/O errors (a failing
card), or the recording's directory is removed under the recorder. Every message about a
failed recording names which of these it was, so "storage full" is never said of a card that
went read-only.
"""

from __future__ import annotations

import errno
import os

KINDS: dict[int, str] = {
    errno.ENOSPC: "storage full",
    errno.EDQUOT: "storage full",
    errno.EROFS: "storage read-only",
    errno.EIO: "storage I/O error",
    errno.ENOENT: "recording directory removed",
    errno.ESTALE: "recording directory removed",
}


def storage_error(exc: BaseException | None) -> OSError | None:
    """The OSError at the root of ``exc`` (itself, or what it was raised from), if any."""
    seen = 0
    while exc is not None and seen < 16:  # a cause chain is short; never loop on a cycle
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def fault_kind(exc: BaseException | None) -> str | None:
    """"storage full", "storage read-only", "storage I/O error", "recording directory
    removed" or "storage error" for a storage failure; None when ``exc`` is not one."""
    error = storage_error(exc)
    if error is None:
        return None
    return KINDS.get(error.errno or 0, "storage error")


CARD_FAULTS = frozenset({"storage full", "storage read-only", "storage I/O error"})


def is_card_fault(exc: BaseException | None) -> bool:
    """Whether ``exc`` is the card failing (full, read-only, I/O errors): what a camera lives
    through, buffering and retrying, rather than a setup mistake (a wrong path, permissions)."""
    return fault_kind(exc) in CARD_FAULTS


def describe(exc: BaseException) -> str:
    """One line: the kind of fault and the system's words, e.g. "storage read-only (Read-only
    file system)"; for anything else, the exception's own message."""
    error = storage_error(exc)
    kind = fault_kind(exc)
    if error is None or kind is None:
        return str(exc) or type(exc).__name__
    return f"{kind} ({os.strerror(error.errno) if error.errno else error})"
