"""The station's exceptions; each carries the HTTP status and short code the app answers with."""

from __future__ import annotations

from ..errors import RecorderError


class StationError(RecorderError):
    """Base class of the station's errors. ``status`` and ``code`` go into the HTTP answer."""

    status = 500
    code = "station_error"


UNAUTHORISED_MESSAGE = ("the request is not authenticated: it must be signed (bwv-request/2) by a "
                        "camera enrolled at this station, for this station, recently, once")


class RequestAuthError(StationError):
    """A device request is not signed by an enrolled device, is for another station, or is
    stale or replayed. Every one answers the same 401 body (``UNAUTHORISED_MESSAGE``), so an
    outsider cannot learn which device ids exist; ``reason`` and ``detail`` say which for the
    station's log."""

    status = 401
    code = "unauthorised"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(UNAUTHORISED_MESSAGE)
        self.reason = reason
        self.detail = detail


class BadRequestError(StationError, ValueError):
    """A request the station cannot act on (bad id, bad manifest, missing header)."""

    status = 400
    code = "bad_request"


class HashMismatchError(StationError, ValueError):
    """The bytes that arrived do not have the SHA-256 they were declared with: not stored."""

    status = 422
    code = "hash_mismatch"


class ConflictError(StationError):
    """The station already holds something different under that name."""

    status = 409
    code = "conflict"


class RecordingGoneError(StationError):
    """The recording was deleted by the retention sweep; only its tombstone remains."""

    status = 410
    code = "deleted"


class UnknownRecordingError(StationError, KeyError):
    """No recording with that id is in the catalogue."""

    status = 404
    code = "unknown_recording"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown recording"


class StorageFullError(StationError, OSError):
    """The blob store has no room left: nothing was stored, the camera keeps its copy."""

    status = 507
    code = "storage_full"


class BlobMissingError(StationError, FileNotFoundError):
    """A blob the catalogue says is held is not in the blob store (lost from the disk or
    removed behind the station's back): what needed it fails, and nothing is made from less."""

    status = 500
    code = "blob_missing"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "a held blob is missing from the store"


class EnrollmentError(StationError, ValueError):
    """An enrollment that cannot be made (bad id, another key already enrolled)."""

    status = 400
    code = "enrollment"


class PayloadTooLargeError(StationError, ValueError):
    """A body longer than the station accepts (its declared length, or what arrived)."""

    status = 413
    code = "too_large"


class LengthRequiredError(StationError, ValueError):
    """A PUT without a Content-Length (or chunked): the caps are checked before reading."""

    status = 411
    code = "length_required"


class QuotaExceededError(StationError):
    """The device already holds its quota of bytes at this station: nothing was stored."""

    status = 507
    code = "quota"


class NotMp4Error(StationError, ValueError):
    """A segment that does not begin with an ISO BMFF ``ftyp`` box: refused, never stored."""

    status = 415
    code = "not_mp4"


class AccountError(StationError, ValueError):
    """A staff account change that cannot be made: the name is taken or unknown, the role or a
    password is refused. A usage problem (`bwv station user ...` exits 2), never a login
    failure: those raise ``accounts.LoginRefused``, which says nothing of the cause."""

    status = 400
    code = "account"


class NoteError(StationError, ValueError):
    """A note that cannot be added: empty, too long, or with control characters."""

    status = 400
    code = "note"


class NoSuchRequestError(StationError, KeyError):
    """No request from the public has that reference."""

    status = 404
    code = "no_such_request"

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def hash_refused(size: int, actual: str, expected: str) -> HashMismatchError:
    """A blob whose bytes are not the declared SHA-256 (every store refuses it the same way)."""
    return HashMismatchError(f"the {size} bytes received have SHA-256 {actual}, not the "
                             f"declared {expected}: refused, nothing stored (the file changed "
                             "on the camera, or the bytes were damaged on the way)")
