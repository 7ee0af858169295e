"""The station's hard limits, and the cheap checks that apply them before any expensive work.

A request's size is known from its Content-Length before one body byte is read, so an oversized
manifest or segment, or a device over its storage quota, is refused without receiving it; a
segment is refused as soon as its first bytes show it is not an ISO BMFF file (``ftyp``). The
connection-level limits (header and body timeouts, connection counts) are applied by the server
protocol in recorder.station.server. Defaults and options: docs/station.md, "Limits".
"""

from __future__ import annotations

import resource
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import LengthRequiredError, NotMp4Error, PayloadTooLargeError, QuotaExceededError

MIB = 1 << 20
GIB = 1 << 30
FTYP_PREFIX_BYTES = 16  # box size, "ftyp", major brand, minor version
FTYP_MAX_BYTES = 4096  # an ftyp box lists a few brands; a larger one is not a camera's


ACCEPT_BACKLOG = 100  # also how many connections asyncio accepts in one go before closing any
FILES_RESERVED = 64  # the catalogue, blobs being written, logs, the listening socket


def default_max_connections() -> int:
    """1000, or fewer when the process may not open that many files: the connection limit must
    bite before accept() fails for want of file descriptors (asyncio then stops accepting for a
    second, which locks everyone out). A burst of connections over the limit is closed only
    after it is accepted, so a backlog's worth of descriptors is kept free for it."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(16, min(1000, soft - ACCEPT_BACKLOG - FILES_RESERVED))


@dataclass(frozen=True)
class Limits:
    """What one station accepts. A quota or per-client limit of 0 means none."""

    manifest_bytes: int = 4 * MIB
    segment_bytes: int = 512 * MIB
    device_quota_bytes: int = 512 * GIB
    header_timeout_s: float = 10.0  # the whole request line and headers
    body_timeout_s: float = 30.0  # the longest pause while a body is arriving
    keep_alive_s: int = 5  # an idle connection between requests
    max_header_bytes: int = 16 * 1024
    max_connections: int = 1000
    max_connections_per_client: int = 64

    @classmethod
    def default(cls) -> Limits:
        return cls(max_connections=default_max_connections())


def declared_length(headers: Mapping[str, str], cap: int, what: str) -> int:
    """The body length a request declares, refused before reading when it is missing (chunked
    bodies have none) or above ``cap``."""
    if "transfer-encoding" in headers:
        raise LengthRequiredError(f"a chunked {what} is refused: send it with a Content-Length")
    text = headers.get("content-length")
    if text is None:
        raise LengthRequiredError(f"a {what} needs a Content-Length header")
    if not text.isascii() or not text.isdigit():  # h11 refuses these first; be sure anyway
        raise LengthRequiredError(f"Content-Length {text[:20]!r} is not a byte count")
    length = int(text)
    if length > cap:
        raise PayloadTooLargeError(f"a {what} of {length} bytes is over this station's limit "
                                   f"of {cap} bytes: refused before reading it")
    return length


def check_received(received: int, declared: int) -> None:
    """A body must not run past its declared length (the HTTP parser cuts it there already;
    this holds for any server under the app)."""
    if received > declared:
        raise PayloadTooLargeError(f"the body ran past its Content-Length of {declared} bytes: "
                                   "cut off, nothing stored")


def check_ftyp(prefix: bytes, declared: int) -> None:
    """A segment must begin with an ``ftyp`` box, as every fragmented MP4 the camera writes
    does: an HTML page or any other file with the right hash is still refused."""
    if len(prefix) < FTYP_PREFIX_BYTES:
        raise NotMp4Error(f"a segment of {declared} bytes is too short to be an MP4 file: "
                          "refused, nothing stored")
    size = struct.unpack(">I", prefix[:4])[0]
    if prefix[4:8] != b"ftyp" or not FTYP_PREFIX_BYTES <= size <= min(FTYP_MAX_BYTES, declared):
        raise NotMp4Error("the segment does not begin with an ISO BMFF 'ftyp' box, so it is not "
                          "an MP4 segment: refused, nothing stored")


def check_quota(held_bytes: int, incoming: int, quota: int, device_id: str) -> None:
    """Refuse a body that would take a device past its quota (0: no quota)."""
    if quota and held_bytes + incoming > quota:
        raise QuotaExceededError(
            f"device {device_id} holds {held_bytes} bytes at this station; {incoming} more "
            f"would pass its quota of {quota} bytes: nothing stored, the camera keeps its copy "
            "(raise --device-quota-gib, or let retention free space)")
