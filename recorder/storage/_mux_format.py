"""The fragmented-MP4 format as both muxer twins write it: constants, errors and their messages,
the H.264 and AAC header parsers, the boxes of an init segment and Annex B splitting.

The rules that decide when and what to write are `_mux_rules.MuxRules`; the pure twin's byte
steps are `_mux_py.FragmentedMp4Muxer` (whose docstring is the written spec). Kept apart so
that the rules and the pure twin both import this module and neither imports the other.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ..capture.access_unit import VIDEO
from ..errors import RecorderError
from ..integrity.bmff import TIMELINE_UUID

VIDEO_TIMESCALE = 90_000
DEFAULT_VIDEO_TICKS = 3_000  # 1/30 s: the last video sample's duration when it has no predecessor
VIDEO_TRACK_ID = 1
AUDIO_TRACK_ID = 2
NAL_SPS = 7
NAL_PPS = 8
MAX_FRAGMENT_BYTES = 0xFFFF_FFFF - 8  # mdat uses a 32-bit size
SAMPLE_FLAGS_SYNC = 0x0200_0000  # sample_depends_on = 2 (does not depend on others)
SAMPLE_FLAGS_NON_SYNC = 0x0101_0000  # sample_depends_on = 1, sample_is_non_sync_sample = 1
TFHD_DEFAULT_BASE_IS_MOOF = 0x02_0000
TRUN_VIDEO = 0x000001 | 0x000100 | 0x000200 | 0x000400  # data offset, duration, size, flags
TRUN_CTO = 0x000800
TRUN_AUDIO = 0x000001 | 0x000100 | 0x000200

START_CODE = b"\x00\x00\x01"

class MuxError(RecorderError):
    """Base class of the muxer's errors."""


class AnnexBError(MuxError, ValueError):
    """A video payload that is not H.264 Annex B (no start code, or data before the first one)."""


class ParameterSetError(MuxError, ValueError):
    """A keyframe without SPS/PPS to describe it, or an SPS that cannot be parsed."""


class AudioConfigError(MuxError, ValueError):
    """An AudioSpecificConfig that is not AAC, or audio pushed to a video-only muxer."""


class MuxTimestampError(MuxError, ValueError):
    """Timestamps that do not increase within a stream, or a video pts before its dts."""


class MuxClosedError(MuxError, RuntimeError):
    """A push after close()."""


class MuxedFragment(NamedTuple):
    """Bytes for the segment file, and where they sit in the recording."""

    segment: int  # 1-based number of the segment these bytes belong to
    sequence: int  # mfhd sequence number: counts fragments of the recording from 1
    data: bytes  # moof + mdat, preceded by ftyp + moov when starts_segment
    starts_segment: bool  # data opens a new segment file
    ends_segment: bool  # the segment is complete after data: seal it
    first_pts_us: int  # smallest pts of the fragment's video frames
    last_pts_us: int  # largest pts of the fragment's video frames


# -- error messages, shared by both twins ------------------------------------------------------

def annexb_error(pts_us: int, reason: str) -> AnnexBError:
    return AnnexBError(f"video access unit at pts_us={pts_us} is not H.264 Annex B: {reason}; "
                       "the encoder must emit start-code delimited NAL units")


def missing_parameter_sets_error(pts_us: int) -> ParameterSetError:
    return ParameterSetError(
        f"the first keyframe (pts_us={pts_us}) carries no SPS and PPS: configure the encoder to "
        "repeat parameter sets in-band on keyframes (libx264 does by default; picamera2: repeat=True)")


def timestamp_error(stream: int, what: str, value_us: int, previous_us: int) -> MuxTimestampError:
    name = "video" if stream == VIDEO else "audio"
    return MuxTimestampError(
        f"{name} {what}={value_us} us does not advance the track's clock past {previous_us} us "
        "(at this timescale): timestamps must increase within a stream")


def pts_before_dts_error(pts_us: int, dts_us: int) -> MuxTimestampError:
    return MuxTimestampError(f"video pts_us={pts_us} is before its dts_us={dts_us}: a frame "
                             "cannot be shown before it is decoded")


def audio_to_video_only_error() -> AudioConfigError:
    return AudioConfigError("audio access unit pushed to a video-only muxer: pass the encoder's "
                            "AudioSpecificConfig as audio_config to mux audio")


def stream_error(stream: int) -> MuxError:
    return MuxError(f"stream must be 0 (video) or 1 (audio), not {stream}")


def closed_error() -> MuxClosedError:
    return MuxClosedError("the muxer is closed: start a new one for a new recording")


def fragment_too_large_error(size: int) -> MuxError:
    return MuxError(f"a fragment of {size} bytes does not fit a 32-bit mdat: lower "
                    "fragment_seconds")


def check_construction(audio_config: bytes | None, segment_seconds: float,
                       fragment_seconds: float) -> tuple[int, int]:
    """Validate constructor arguments; return (segment_us, fragment_us)."""
    for name, value in (("segment_seconds", segment_seconds), ("fragment_seconds", fragment_seconds)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, not {type(value).__name__}")
        if not value > 0 or value == float("inf"):
            raise ValueError(f"{name} must be finite and > 0, not {value!r}")
    if audio_config is not None:
        parse_audio_specific_config(bytes(audio_config))
    return round(segment_seconds * 1_000_000), round(fragment_seconds * 1_000_000)


# -- H.264 and AAC headers -----------------------------------------------------------------------

class _Bits:
    """Reads an RBSP (emulation prevention bytes removed) bit by bit, MSB first."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.left = len(data) * 8

    def u(self, n: int) -> int:
        if n > self.left:
            raise ParameterSetError("SPS ends early")
        self.left -= n
        return (self.value >> self.left) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ParameterSetError("SPS has an Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _rbsp(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class SpsInfo(NamedTuple):
    profile: int
    compatibility: int
    level: int
    chroma_format: int
    bit_depth_luma: int
    bit_depth_chroma: int
    width: int
    height: int


_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def parse_sps(nal: bytes) -> SpsInfo:
    """Profile, level, chroma format, bit depths and cropped picture size of an SPS NAL unit."""
    if len(nal) < 4 or nal[0] & 0x1F != NAL_SPS:
        raise ParameterSetError(f"not an SPS NAL unit: {nal[:8].hex()}")
    bits = _Bits(_rbsp(nal[4:]))
    profile, compatibility, level = nal[1], nal[2], nal[3]
    bits.ue()  # seq_parameter_set_id
    chroma, depth_luma, depth_chroma, separate_planes = 1, 8, 8, 0
    if profile in _HIGH_PROFILES:
        chroma = bits.ue()
        if chroma == 3:
            separate_planes = bits.u(1)
        depth_luma = bits.ue() + 8
        depth_chroma = bits.ue() + 8
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if bits.u(1):
                    last = following = 8
                    for _ in range(16 if i < 6 else 64):
                        if following:
                            following = (last + bits.se() + 256) % 256
                        last = following or last
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)
    bits.u(1)  # direct_8x8_inference_flag
    crop = (0, 0, 0, 0)
    if bits.u(1):
        crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue())
    field_factor = 2 - frame_mbs_only
    if chroma == 0 or separate_planes:
        unit_x, unit_y = 1, field_factor
    else:
        unit_x = 1 if chroma == 3 else 2
        unit_y = (2 if chroma == 1 else 1) * field_factor
    width = width_mbs * 16 - unit_x * (crop[0] + crop[1])
    height = field_factor * height_units * 16 - unit_y * (crop[2] + crop[3])
    if width <= 0 or height <= 0 or width > 0xFFFF or height > 0xFFFF:
        raise ParameterSetError(f"SPS describes an impossible picture of {width}x{height}")
    return SpsInfo(profile, compatibility, level, chroma, depth_luma, depth_chroma, width, height)


class AudioInfo(NamedTuple):
    object_type: int
    sample_rate: int
    channels: int
    frame_samples: int


_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
              7350)


def parse_audio_specific_config(config: bytes) -> AudioInfo:
    """Object type, sample rate, channels and samples per frame of an AAC AudioSpecificConfig."""
    if len(config) < 2:
        raise AudioConfigError(f"AudioSpecificConfig of {len(config)} bytes is too short "
                               "(pass the AAC encoder's extradata)")
    bits = _Bits(config)
    try:
        object_type = bits.u(5)
        if object_type == 31:
            object_type = 32 + bits.u(6)
        index = bits.u(4)
        rate = bits.u(24) if index == 15 else _AAC_RATES[index] if index < len(_AAC_RATES) else 0
        channels = bits.u(4)
        frame_length_flag = bits.u(1) if object_type in (1, 2, 3, 4, 6, 17, 19, 20, 21, 22, 23) else 0
    except ParameterSetError:
        raise AudioConfigError(f"AudioSpecificConfig {config.hex()} ends early") from None
    if object_type != 2:
        raise AudioConfigError(f"AudioSpecificConfig {config.hex()} is audio object type "
                               f"{object_type}; only AAC-LC (2) is supported")
    if rate == 0 or channels == 0:
        raise AudioConfigError(f"AudioSpecificConfig {config.hex()} gives no sample rate or "
                               "channel count")
    return AudioInfo(object_type, rate, channels, 960 if frame_length_flag else 1024)


# -- boxes ---------------------------------------------------------------------------------------

def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24 | flags), *parts)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _descriptor(tag: int, body: bytes) -> bytes:
    size = len(body)
    length = bytes([0x80 | (size >> 21) & 0x7F, 0x80 | (size >> 14) & 0x7F,
                    0x80 | (size >> 7) & 0x7F, size & 0x7F])
    return bytes([tag]) + length + body


def _track(track_id: int, handler: bytes, name: bytes, timescale: int, width: int, height: int,
           media_header: bytes, sample_entry: bytes) -> bytes:
    volume = 0x0100 if handler == b"soun" else 0
    tkhd = _full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, track_id, 0, 0),
                     struct.pack(">IIhhHH", 0, 0, 0, 0, volume, 0), _MATRIX,
                     struct.pack(">II", width << 16, height << 16))
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, 0x55C4, 0))
    hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, handler), name + b"\x00")
    dref = _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1))
    stbl = _box(b"stbl", _full_box(b"stsd", 0, 0, struct.pack(">I", 1), sample_entry),
                _full_box(b"stts", 0, 0, b"\x00" * 4), _full_box(b"stsc", 0, 0, b"\x00" * 4),
                _full_box(b"stsz", 0, 0, b"\x00" * 8), _full_box(b"stco", 0, 0, b"\x00" * 4))
    minf = _box(b"minf", media_header, _box(b"dinf", dref), stbl)
    return _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))


CENC_SCHEME_VERSION = 0x0001_0000
CENC_IV_BYTES = 8  # per-sample IVs of 8 bytes: the other 8 of the AES-CTR block count blocks
# the W3C "common" protection system (ClearKey reads it): its pssh lists the key id
COMMON_SYSTEM_ID = bytes.fromhex("1077efecc0b24d02ace33c1e52e2fb4b")


def _protected(entry: bytes, key_id: bytes) -> bytes:
    """A sample entry box made protected: its type becomes ``encv``/``enca``, and a ``sinf``
    (``frma`` with the original type, ``schm`` 'cenc' 1.0, ``schi``/``tenc`` with the key id)
    follows its children (ISO/IEC 23001-7 and 14496-12 8.12)."""
    original = entry[4:8]
    protected_type = b"encv" if original == b"avc1" else b"enca"
    tenc = _full_box(b"tenc", 0, 0, bytes([0, 0, 1, CENC_IV_BYTES]), key_id)
    sinf = _box(b"sinf", _box(b"frma", original),
                _full_box(b"schm", 0, 0, b"cenc", struct.pack(">I", CENC_SCHEME_VERSION)),
                _box(b"schi", tenc))
    return _box(protected_type, entry[8:], sinf)


def init_segment(sps: list[bytes], pps: list[bytes], audio_config: bytes | None,
                 origin_us: int, key_id: bytes | None = None) -> bytes:
    """``ftyp`` + ``moov`` for H.264 video described by ``sps``/``pps`` and optional AAC audio.

    ``origin_us``, the pts_us of decode time 0, goes into a ``uuid`` box (version 0, a signed
    64-bit count of microseconds) so that a segment found unsealed after a power cut can be mapped
    back onto the recording's clock. With ``key_id`` the tracks are protected with ISO Common
    Encryption 'cenc' under that key id (`_protected`), and a ``pssh`` of the common system
    names it; without, the bytes are those of a recording in the clear.
    """
    info = parse_sps(sps[0])
    avcc_parts = [bytes([1, info.profile, info.compatibility, info.level, 0xFF,
                         0xE0 | len(sps)])]
    avcc_parts += [struct.pack(">H", len(nal)) + nal for nal in sps]
    avcc_parts.append(bytes([len(pps)]))
    avcc_parts += [struct.pack(">H", len(nal)) + nal for nal in pps]
    if info.profile in (100, 110, 122, 144):
        avcc_parts.append(bytes([0xFC | info.chroma_format, 0xF8 | info.bit_depth_luma - 8,
                                 0xF8 | info.bit_depth_chroma - 8, 0]))
    avc1 = _box(b"avc1", struct.pack(">6xHHH12xHHIIIH", 1, 0, 0, info.width, info.height,
                                     0x480000, 0x480000, 0, 1),
                bytes(32), struct.pack(">Hh", 0x18, -1), _box(b"avcC", *avcc_parts))
    if key_id is not None:
        avc1 = _protected(avc1, key_id)
    video = _track(VIDEO_TRACK_ID, b"vide", b"VideoHandler", VIDEO_TIMESCALE, info.width,
                   info.height, _full_box(b"vmhd", 0, 1, bytes(8)), avc1)
    tracks = [video]
    trex = [_full_box(b"trex", 0, 0, struct.pack(">IIIII", VIDEO_TRACK_ID, 1, 0, 0, 0))]
    if audio_config is not None:
        audio = parse_audio_specific_config(audio_config)
        # objectTypeIndication 0x40 (MPEG-4 audio), streamType 5 (audio) << 2 | reserved 1,
        # bufferSizeDB, maxBitrate, avgBitrate: 0, unknown
        decoder_config = _descriptor(4, bytes([0x40, 0x15]) + bytes(3) + bytes(8)
                                     + _descriptor(5, audio_config))
        es = _descriptor(3, struct.pack(">HB", AUDIO_TRACK_ID, 0) + decoder_config
                         + _descriptor(6, b"\x02"))
        rate = audio.sample_rate << 16 if audio.sample_rate < 0x10000 else 0
        mp4a = _box(b"mp4a", struct.pack(">6xH8xHHHHI", 1, audio.channels, 16, 0, 0, rate),
                    _full_box(b"esds", 0, 0, es))
        if key_id is not None:
            mp4a = _protected(mp4a, key_id)
        tracks.append(_track(AUDIO_TRACK_ID, b"soun", b"SoundHandler", audio.sample_rate, 0, 0,
                             _full_box(b"smhd", 0, 0, bytes(4)), mp4a))
        trex.append(_full_box(b"trex", 0, 0, struct.pack(">IIIII", AUDIO_TRACK_ID, 1, 0, 0, 0)))
    mvhd = _full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, 1000, 0),
                     struct.pack(">IH10x", 0x10000, 0x0100), _MATRIX, bytes(24),
                     struct.pack(">I", len(tracks) + 1))
    ftyp = _box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6", b"isom", b"avc1", b"mp41")
    timeline = _box(b"uuid", TIMELINE_UUID, struct.pack(">Iq", 0, origin_us))
    protection = [] if key_id is None else [
        _full_box(b"pssh", 1, 0, COMMON_SYSTEM_ID, struct.pack(">I", 1), key_id, bytes(4))]
    return ftyp + _box(b"moov", mvhd, *tracks, _box(b"mvex", *trex), *protection, timeline)


def split_annexb(payload: bytes, pts_us: int) -> list[tuple[int, int]]:
    """(start, end) of each non-empty NAL unit of an Annex B access unit, trailing zeros removed."""
    find = payload.find
    first = find(START_CODE)
    if first < 0:
        raise annexb_error(pts_us, "no start code")
    if payload.count(0, 0, first) != first:
        raise annexb_error(pts_us, f"{first} bytes before the first start code are not all zero")
    nals = []
    start = first + 3
    while True:
        following = find(START_CODE, start)
        end = len(payload) if following < 0 else following
        while end > start and payload[end - 1] == 0:
            end -= 1
        if end > start:
            nals.append((start, end))
        if following < 0:
            break
        start = following + 3
    if not nals:
        raise annexb_error(pts_us, "no NAL unit after the start codes")
    return nals
