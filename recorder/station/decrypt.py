"""A clear copy of an encrypted segment (ISO Common Encryption, scheme 'cenc') for an export
package: every sample decrypted in place with the content key, ``encv``/``enca`` renamed to the
codec their ``frma`` names, and the encryption boxes (``sinf``, ``pssh``, ``senc``, ``saiz``,
``saio``) turned into ``free`` boxes of the same size, so no size or offset changes and every
sample's time stays as the camera wrote it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..integrity.bmff import Box, BoxFormatError, iter_boxes
from ..integrity.content_key import ContentKey
from .errors import StationError

_CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl", "moof", "traf", "sinf", "schi"}
_ENCRYPTION_BOXES = {"pssh", "senc", "saiz", "saio"}
# the fixed fields of a sample entry before its child boxes (ISO/IEC 14496-12 12.1.3, 12.2.3)
_VISUAL_FIELDS = 78
_AUDIO_FIELDS = {0: 28, 1: 28 + 16, 2: 28 + 36}  # by the AudioSampleEntry's version
_TFHD_BASE_DATA_OFFSET = 0x000001
_TFHD_FIELDS = ((0x000001, 8), (0x000002, 4), (0x000008, 4))  # before default_sample_size
_TFHD_DEFAULT_SIZE = 0x000010
_TFHD_BASE_IS_MOOF = 0x020000
_TRUN_DATA_OFFSET = 0x000001
_TRUN_FIRST_FLAGS = 0x000004
_TRUN_FIELDS = ((0x000100, "duration"), (0x000200, "size"), (0x000400, "flags"),
                (0x000800, "offset"))
_SENC_SUBSAMPLES = 0x000002


class DecryptError(StationError, ValueError):
    """A segment that cannot be decrypted: not 'cenc' as this recorder writes it, another
    recording's key, or damaged."""

    status = 422
    code = "cannot_decrypt"


@dataclass(frozen=True)
class _Protection:
    iv_size: int
    key_id: bytes


def _children(data: bytes, box: Box, start: int | None = None) -> list[Box]:
    return list(iter_boxes(data, box.payload_offset if start is None else start,
                           box.end))


def _rename(out: bytearray, box: Box, new_type: str) -> None:
    out[box.offset + 4:box.offset + 8] = new_type.encode("latin-1")


def decrypt_segment(segment: bytes, key: ContentKey) -> bytes:
    """The clear copy of ``segment`` (a whole fragmented MP4 written by the 'cenc' muxer)."""
    data, out = segment, bytearray(segment)  # boxes are read from one, written to the other
    try:
        protections: dict[int, _Protection] = {}
        for box in list(iter_boxes(data)):
            if box.type == "moov":
                _clear_moov(data, out, box, protections)
            elif box.type == "moof":
                _decrypt_moof(data, out, box, protections, key)
    except (BoxFormatError, struct.error, IndexError) as exc:
        raise DecryptError(f"the segment is not encrypted MP4 as the recorder writes it: "
                           f"{exc}") from None
    if not protections:
        raise DecryptError("the segment has no encrypted track")
    for track_id, protection in protections.items():
        if protection.key_id != key.key_id:
            raise DecryptError(f"track {track_id} is encrypted under key id "
                               f"{protection.key_id.hex()}, not {key.key_id.hex()}")
    return bytes(out)


def _clear_moov(data: bytes, out: bytearray, moov: Box,
                protections: dict[int, _Protection]) -> None:
    """Rename the encrypted sample entries and free the moov's encryption boxes, noting each
    protected track's IV size and key id."""
    track_id = 0
    stack = _children(data, moov)
    while stack:
        box = stack.pop(0)
        if box.type == "tkhd":
            version = data[box.payload_offset]
            at = box.payload_offset + (20 if version == 1 else 12)
            (track_id,) = struct.unpack_from(">I", data, at)
        elif box.type in _ENCRYPTION_BOXES:
            _rename(out, box, "free")
        elif box.type == "stsd":
            for entry in _children(data, box, box.payload_offset + 8):
                if entry.type in ("encv", "enca"):
                    protections[track_id] = _clear_entry(data, out, entry)
        elif box.type in _CONTAINERS:
            stack[:0] = _children(data, box)


def _clear_entry(data: bytes, out: bytearray, entry: Box) -> _Protection:
    if entry.type == "encv":
        start = entry.payload_offset + _VISUAL_FIELDS
    else:
        (version,) = struct.unpack_from(">H", data, entry.payload_offset + 8)
        start = entry.payload_offset + _AUDIO_FIELDS[version]
    sinf = next((box for box in _children(data, entry, start) if box.type == "sinf"), None)
    if sinf is None:
        raise DecryptError(f"an {entry.type} sample entry has no sinf box")
    parts = {box.type: box for box in _children(data, sinf)}
    if "frma" not in parts or "schm" not in parts or "schi" not in parts:
        raise DecryptError("a sinf box lacks frma, schm or schi")
    scheme = data[parts["schm"].payload_offset + 4:parts["schm"].payload_offset + 8]
    if scheme != b"cenc":
        raise DecryptError(f"the scheme is {scheme!r}, not 'cenc'")
    tenc = next((box for box in _children(data, parts["schi"]) if box.type == "tenc"), None)
    if tenc is None:
        raise DecryptError("a schi box has no tenc box")
    iv_size = data[tenc.payload_offset + 7]
    key_id = data[tenc.payload_offset + 8:tenc.payload_offset + 24]
    if iv_size not in (8, 16):
        raise DecryptError(f"a per-sample IV of {iv_size} bytes (8 or 16 are read)")
    original = data[parts["frma"].payload_offset:parts["frma"].payload_offset + 4]
    _rename(out, entry, original.decode("latin-1"))
    _rename(out, sinf, "free")
    return _Protection(iv_size, key_id)


def _decrypt_moof(data: bytes, out: bytearray, moof: Box, protections: dict[int, _Protection],
                  key: ContentKey) -> None:
    for traf in (box for box in _children(data, moof) if box.type == "traf"):
        parts = _children(data, traf)
        tfhd = next(box for box in parts if box.type == "tfhd")
        flags = int.from_bytes(data[tfhd.payload_offset + 1:tfhd.payload_offset + 4], "big")
        (track_id,) = struct.unpack_from(">I", data, tfhd.payload_offset + 4)
        at = tfhd.payload_offset + 8
        base = moof.offset
        if flags & _TFHD_BASE_DATA_OFFSET:
            (base,) = struct.unpack_from(">Q", data, at)
        elif not flags & _TFHD_BASE_IS_MOOF:
            raise DecryptError("a traf without default-base-is-moof or a base data offset")
        for flag, size in _TFHD_FIELDS:
            at += size if flags & flag else 0
        default_size = struct.unpack_from(">I", data, at)[0] if flags & _TFHD_DEFAULT_SIZE \
            else None
        samples = [sample for trun in parts if trun.type == "trun"
                   for sample in _trun_samples(data, trun, base, default_size)]
        protection = protections.get(track_id)
        senc = next((box for box in parts if box.type == "senc"), None)
        if protection is None or senc is None:
            if protection is not None:
                raise DecryptError(f"a fragment of encrypted track {track_id} has no senc box")
            continue
        _decrypt_samples(data, out, senc, samples, protection, key)
        for box in parts:
            if box.type in _ENCRYPTION_BOXES:
                _rename(out, box, "free")


def _trun_samples(data: bytes, trun: Box, base: int,
                  default_size: int | None) -> list[tuple[int, int]]:
    """Each sample's (file offset, size) in one trun."""
    flags = int.from_bytes(data[trun.payload_offset + 1:trun.payload_offset + 4], "big")
    (count,) = struct.unpack_from(">I", data, trun.payload_offset + 4)
    at = trun.payload_offset + 8
    offset = base
    if flags & _TRUN_DATA_OFFSET:
        (relative,) = struct.unpack_from(">i", data, at)
        offset, at = base + relative, at + 4
    if flags & _TRUN_FIRST_FLAGS:
        at += 4
    samples = []
    for _ in range(count):
        size = default_size
        for flag, name in _TRUN_FIELDS:
            if flags & flag:
                if name == "size":
                    (size,) = struct.unpack_from(">I", data, at)
                at += 4
        if size is None:
            raise DecryptError("a trun without sample sizes and no default size")
        samples.append((offset, size))
        offset += size
    return samples


def _decrypt_samples(data: bytes, out: bytearray, senc: Box, samples: list[tuple[int, int]],
                     protection: _Protection, key: ContentKey) -> None:
    flags = int.from_bytes(data[senc.payload_offset + 1:senc.payload_offset + 4], "big")
    (count,) = struct.unpack_from(">I", data, senc.payload_offset + 4)
    if count != len(samples):
        raise DecryptError(f"senc lists {count} samples, the fragment has {len(samples)}")
    at = senc.payload_offset + 8
    for offset, size in samples:
        iv = data[at:at + protection.iv_size]
        at += protection.iv_size
        ranges = [(offset, size)]  # (start, length) of the protected bytes
        if flags & _SENC_SUBSAMPLES:
            (subsamples,) = struct.unpack_from(">H", data, at)
            at += 2
            ranges, position = [], offset
            for _ in range(subsamples):
                clear, protected = struct.unpack_from(">HI", data, at)
                at += 6
                ranges.append((position + clear, protected))
                position += clear + protected
            if position - offset != size:
                raise DecryptError("a sample's subsamples do not add up to its size")
        counter = iv + bytes(16 - len(iv))
        decryptor = Cipher(algorithms.AES(key.key), modes.CTR(counter)).decryptor()
        protected = b"".join(data[start:start + length] for start, length in ranges)
        clear = decryptor.update(protected) + decryptor.finalize()
        done = 0
        for start, length in ranges:
            out[start:start + length] = clear[done:done + length]
            done += length
