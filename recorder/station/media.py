"""The MIME type with codecs (RFC 6381) of a recording's segments, as a browser's Media Source
Extensions need it: ``MediaSource.addSourceBuffer`` refuses a type without codecs, and a wrong
profile or level can make a browser refuse footage it could play. The codecs are read from the
segment itself (the ``avcC`` of the video track, the ``esds`` of the audio track), never assumed:
a camera's encoder settings decide them.

And a segment's bytes as an HTTP answer (``blob_response``): a file of a local store as a file
(its range requests served by Starlette), a blob of an object store streamed from it, a range
asked for by the player passed on to the store as a ranged GET (only those bytes cross).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import RecorderError
from ..integrity.bmff import SampleEntry, read_sample_entries

# MPEG-4 descriptor tags (ISO/IEC 14496-1 7.2.2.1)
_ES_DESCRIPTOR = 0x03
_DECODER_CONFIG = 0x04
_DECODER_SPECIFIC_INFO = 0x05
# ES_Descriptor flags (7.2.6.5)
_STREAM_DEPENDENCE = 0x80
_URL = 0x40
_OCR_STREAM = 0x20
_AVC_ENTRIES = ("avc1", "avc3")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_CHUNK = 1 << 20

if TYPE_CHECKING:
    from starlette.responses import Response

    from .blobs import BlobStore


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The first and last byte (inclusive) of a single ``Range: bytes=`` of a ``size``-byte
    body; None when the whole body is to be sent (no header, several ranges, another unit).
    Raises ValueError for a range the body cannot satisfy (416)."""
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise ValueError("an empty suffix range")
        return max(0, size - count), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise ValueError(f"bytes {header} of {size}")
    return start, end


def blob_response(blobs: BlobStore, sha256: str, range_header: str) -> Response:
    """The blob as the answer to a GET with ``range_header`` ("" for none)."""
    from starlette.responses import FileResponse, Response, StreamingResponse

    local = blobs.local_path(sha256)
    if local is not None:
        return FileResponse(local, media_type="video/mp4")
    size = blobs.size(sha256)
    try:
        wanted = parse_range(range_header, size) if range_header else None
    except ValueError:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    open_range = getattr(blobs, "open_range", None)
    if wanted is not None and open_range is not None:
        reader, _ = open_range(sha256, wanted)
        status = 206
        headers = {"Content-Range": f"bytes {wanted[0]}-{wanted[1]}/{size}",
                   "Content-Length": str(wanted[1] - wanted[0] + 1)}
    else:
        reader = blobs.open(sha256)
        status = 200
        headers = {"Content-Length": str(size)}
    headers["Accept-Ranges"] = "bytes" if open_range is not None else "none"

    def chunks() -> Iterator[bytes]:
        with reader:
            while chunk := reader.read(_CHUNK):
                yield chunk

    return StreamingResponse(chunks(), status_code=status, headers=headers,
                             media_type="video/mp4")
_ENCRYPTED_ENTRIES = ("encv", "enca")


class MediaTypeError(RecorderError, ValueError):
    """The segment's codecs cannot be named: a track of a codec the station does not serve, or
    a codec configuration that is missing or damaged."""


def mime_type(segment: bytes) -> str:
    """``video/mp4; codecs="avc1.PPCCLL, mp4a.OO.A"`` for a segment (its first bytes up to the end
    of its ``moov`` are enough): video first, then audio, as the tracks are declared.

    Raises MediaTypeError for a codec it cannot name, BoxFormatError for a damaged moov."""
    entries = sorted(read_sample_entries(segment).values(),
                     key=lambda entry: (entry.handler != "vide", entry.track_id))
    codecs = [_codec(entry) for entry in entries]
    kind = "video" if any(entry.handler == "vide" for entry in entries) else "audio"
    return f'{kind}/mp4; codecs="{", ".join(codecs)}"'


def _codec(entry: SampleEntry) -> str:
    if entry.type in _AVC_ENTRIES:
        return _avc_codec(entry)
    if entry.type == "mp4a":
        return _mp4a_codec(entry)
    if entry.type in _ENCRYPTED_ENTRIES:
        original = original_format(entry)
        if original in _AVC_ENTRIES or original == "mp4a":
            return _codec(replace(entry, type=original))
        raise MediaTypeError(f"track {entry.track_id} is encrypted {original!r}, which the "
                             "station's player cannot name (H.264 and AAC only)")
    raise MediaTypeError(f"track {entry.track_id} is {entry.type!r}, which the station's player "
                         "cannot name (H.264 and AAC only)")


def original_format(entry: SampleEntry) -> str:
    """The codec an ``encv``/``enca`` entry protects: the ``frma`` box inside its ``sinf``
    (ISO/IEC 14496-12 8.12)."""
    sinf = entry.boxes.get("sinf", b"")
    position = 0
    while position + 8 <= len(sinf):
        size = int.from_bytes(sinf[position:position + 4], "big")
        if size < 8 or position + size > len(sinf):
            break
        if sinf[position + 4:position + 8] == b"frma" and size == 12:
            return sinf[position + 8:position + 12].decode("latin-1")
        position += size
    raise MediaTypeError(f"track {entry.track_id} ({entry.type}) has no valid sinf/frma box")


def _avc_codec(entry: SampleEntry) -> str:
    """``avc1.PPCCLL``: profile_idc, constraint flags and level_idc, the three bytes after the
    avcC's configurationVersion (ISO/IEC 14496-15 5.3.3.1)."""
    config = entry.boxes.get("avcC")
    if config is None or len(config) < 4 or config[0] != 1:
        raise MediaTypeError(f"track {entry.track_id} ({entry.type}) has no valid avcC box")
    return f"{entry.type}.{config[1:4].hex()}"


def _mp4a_codec(entry: SampleEntry) -> str:
    """``mp4a.OO.A``: the DecoderConfigDescriptor's objectTypeIndication in hex and, for MPEG-4
    audio (0x40), the AudioSpecificConfig's audioObjectType in decimal (RFC 6381 3.3)."""
    esds = entry.boxes.get("esds")
    if esds is None or len(esds) < 4:
        raise MediaTypeError(f"track {entry.track_id} (mp4a) has no esds box")
    es = _Descriptors(esds[4:], entry.track_id)  # after the full box's version and flags
    body = es.expect(_ES_DESCRIPTOR)
    flags = body.take(3)[2]  # ES_ID (2 bytes), then the flags
    if flags & _STREAM_DEPENDENCE:
        body.take(2)
    if flags & _URL:
        body.take(body.take(1)[0])
    if flags & _OCR_STREAM:
        body.take(2)
    config = body.expect(_DECODER_CONFIG)
    object_type = config.take(13)[0]  # then stream type, buffer size, bit rates
    if object_type != 0x40:
        return f"mp4a.{object_type:02x}"
    specific = config.expect(_DECODER_SPECIFIC_INFO)
    first = specific.take(1)[0]
    audio_object_type = first >> 3
    if audio_object_type == 31:  # escape: six more bits, plus 32 (ISO/IEC 14496-3 1.6.2.1)
        audio_object_type = 32 + (((first & 0x07) << 3) | (specific.take(1)[0] >> 5))
    return f"mp4a.40.{audio_object_type}"


class _Descriptors:
    """Bounded reads of MPEG-4 descriptors (tag, expandable size, body) from an esds payload:
    every size is checked against the bytes that remain."""

    def __init__(self, data: bytes, track_id: int) -> None:
        self.data = data
        self.position = 0
        self.track_id = track_id

    def _fail(self, what: str) -> MediaTypeError:
        return MediaTypeError(f"track {self.track_id}'s esds box is damaged: {what}")

    def take(self, count: int) -> bytes:
        if self.position + count > len(self.data):
            raise self._fail(f"{count} bytes needed, {len(self.data) - self.position} left")
        chunk = self.data[self.position:self.position + count]
        self.position += count
        return chunk

    def expect(self, tag: int) -> _Descriptors:
        """The body of the descriptor that starts here, which must have ``tag``."""
        found = self.take(1)[0]
        if found != tag:
            raise self._fail(f"descriptor tag {found:#04x} where {tag:#04x} was expected")
        size = 0
        for _ in range(4):  # at most four bytes of seven bits (ISO/IEC 14496-1 8.3.3)
            byte = self.take(1)[0]
            size = (size << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        else:
            raise self._fail("a descriptor size longer than four bytes")
        return _Descriptors(self.take(size), self.track_id)
