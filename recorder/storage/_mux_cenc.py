"""The pure-Python muxer twin with ISO Common Encryption (ISO/IEC 23001-7), scheme 'cenc':
AES-128-CTR under a recording's content key, samples encrypted as they are added.

Same rules and timeline as `FragmentedMp4Muxer`; what differs is written here:

* Init segment: ``encv``/``enca`` sample entries with ``sinf`` (``frma``, ``schm`` 'cenc' 1.0,
  ``schi``/``tenc``: protected, 8-byte per-sample IVs, the key id as default KID), and a ``pssh``
  of the W3C common system naming the key id (`_mux_format.init_segment`).
* Samples: a video sample's NAL units stay length-prefixed; for each slice (NAL types 1-5) the
  4-byte length, the 1-byte NAL header and the first ``(size - 1) % 16`` bytes after it are clear
  and the rest, a whole number of 16-byte blocks, is encrypted; other NAL units (SPS, PPS, SEI,
  AUD) are wholly clear. Adjacent clear bytes are merged into one subsample. An AAC frame is
  encrypted whole. The protected bytes of one sample are one AES-CTR stream whose initial
  counter block is the sample's 8-byte IV followed by 8 zero bytes.
* IVs: ``track_id`` (1 byte) then the sample's number in its track, counted from 1 over the
  whole recording (7 bytes), big-endian. Every sample of a recording has its own IV under a key
  used by that recording only, so no counter block is used twice; and both twins derive the
  same IV from the same sample.
* Fragment: each ``traf`` gains, after ``trun``, ``saiz`` (the size of each sample's auxiliary
  information), ``saio`` (one offset, from the ``moof``, to the first IV) and ``senc`` (flags 2,
  subsamples, on video; flags 0 on audio), in that order.
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from ..integrity.content_key import ContentKey
from ._mux_format import AUDIO_TRACK_ID, CENC_IV_BYTES, VIDEO_TRACK_ID, MuxError, init_segment
from ._mux_py import FragmentedMp4Muxer

SENC_USE_SUBSAMPLES = 0x2
MAX_CLEAR_BYTES = 0xFFFF  # BytesOfClearData is 16 bits
# a saiz entry is one byte: 8 (IV) + 2 (count) + 6 per subsample must stay <= 255
MAX_SUBSAMPLES = (255 - CENC_IV_BYTES - 2) // 6
_VCL_TYPES = frozenset(range(1, 6))


class TooManySubsamplesError(MuxError, ValueError):
    """A video frame of more slices than one sample's encryption information can describe."""


def too_many_subsamples_error(count: int) -> TooManySubsamplesError:
    return TooManySubsamplesError(
        f"a video frame of {count} NAL units needs more than the {MAX_SUBSAMPLES} encrypted "
        "parts an encrypted sample can describe: configure the encoder for fewer slices per "
        "frame")


class Aes128Ctr:
    """AES-128-CTR under one 16-byte key with ``cryptography``: the pure twin of
    ``recorder.storage._mux_c.Aes128Ctr`` (the native muxer's routine), the same bytes. ``iv``
    is the whole 16-byte first counter block, incremented as a 128-bit big-endian number."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError(f"an AES-128 key is 16 bytes, not {len(key)}")
        self._algorithm = algorithms.AES(bytes(key))

    def _encryptor(self, iv: bytes) -> CipherContext:
        if len(iv) != 16:
            raise ValueError(f"an AES-CTR counter block is 16 bytes, not {len(iv)}")
        return Cipher(self._algorithm, modes.CTR(bytes(iv))).encryptor()

    def apply(self, iv: bytes, buffer: bytearray | memoryview) -> None:
        """Encrypt (or decrypt: the same) the writable ``buffer`` in place."""
        view = memoryview(buffer).cast("B")
        view[:] = self._encryptor(iv).update(view)

    def encrypt(self, iv: bytes, data: bytes | bytearray | memoryview) -> bytes:
        """``data`` encrypted (or decrypted), as new bytes."""
        encryptor = self._encryptor(iv)
        return encryptor.update(data) + encryptor.finalize()


def aes128_ctr(key: bytes, iv: bytes, data: bytes | bytearray | memoryview) -> bytes:
    """``data`` encrypted (or decrypted) with AES-128-CTR under ``key`` from counter block ``iv``
    (16 bytes each): ``Aes128Ctr(key).encrypt(iv, data)``."""
    return Aes128Ctr(key).encrypt(iv, data)


def sample_iv(track_id: int, sample_number: int) -> bytes:
    """The 8-byte IV of a track's ``sample_number``-th sample (from 1) in the recording."""
    return (track_id << 56 | sample_number).to_bytes(CENC_IV_BYTES, "big")


def subsamples(nal_sizes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(clear, protected) byte counts of a video sample, from its NAL units' (type, size);
    each NAL unit takes its 4-byte length too."""
    layout: list[tuple[int, int]] = []
    clear = 0
    for nal_type, size in nal_sizes:
        if nal_type in _VCL_TYPES and size > 16:
            body = size - 1
            clear += 4 + 1 + body % 16
            while clear > MAX_CLEAR_BYTES:
                layout.append((MAX_CLEAR_BYTES, 0))
                clear -= MAX_CLEAR_BYTES
            layout.append((clear, body - body % 16))
            clear = 0
        else:
            clear += 4 + size
    while clear > MAX_CLEAR_BYTES:
        layout.append((MAX_CLEAR_BYTES, 0))
        clear -= MAX_CLEAR_BYTES
    if clear or not layout:
        layout.append((clear, 0))
    return layout


class EncryptingMp4Muxer(FragmentedMp4Muxer):
    """`FragmentedMp4Muxer` whose segments are encrypted with ``content_key`` ('cenc')."""

    def __init__(self, audio_config: bytes | None = None, *, content_key: ContentKey,
                 segment_seconds: float = 30.0, fragment_seconds: float = 2.0) -> None:
        super().__init__(audio_config, segment_seconds=segment_seconds,
                         fragment_seconds=fragment_seconds)
        self._key_id = content_key.key_id
        self._aes = Aes128Ctr(content_key.key)
        self._v_number = 0
        self._a_number = 0
        self._v_aux: list[bytes] = []
        self._a_aux: list[bytes] = []

    def _open_segment(self, dts_us: int) -> None:
        super()._open_segment(dts_us)
        self._init = init_segment(self._sps, self._pps, self._audio_config, self._origin_us,
                                  self._key_id)

    def _encrypt(self, iv: bytes, data: bytes) -> bytes:
        return self._aes.encrypt(iv + bytes(16 - CENC_IV_BYTES), data)

    def _add_video(self, payload: bytes, ticks: int, cto: int, key: bool) -> None:
        sample = b"".join((end - start).to_bytes(4, "big") + payload[start:end]
                          for start, end in self._nals)
        layout = subsamples([(payload[start] & 0x1F, end - start) for start, end in self._nals])
        if len(layout) > MAX_SUBSAMPLES:
            raise too_many_subsamples_error(len(self._nals))
        self._v_number += 1
        iv = sample_iv(VIDEO_TRACK_ID, self._v_number)
        clear_parts, protected_parts = [], []
        position = 0
        for clear, protected in layout:
            clear_parts.append(sample[position:position + clear])
            protected_parts.append(sample[position + clear:position + clear + protected])
            position += clear + protected
        ciphertext = self._encrypt(iv, b"".join(protected_parts))
        out, cut = [], 0
        for clear_part, protected_part in zip(clear_parts, protected_parts):
            out.append(clear_part)
            out.append(ciphertext[cut:cut + len(protected_part)])
            cut += len(protected_part)
        self._v_parts.append(b"".join(out))
        self._v_bytes += len(sample)
        self._v_ticks.append(ticks)
        self._v_cto.append(cto)
        self._v_sizes.append(len(sample))
        self._v_keys.append(key)
        self._v_aux.append(iv + struct.pack(">H", len(layout)) + b"".join(
            struct.pack(">HI", clear, protected) for clear, protected in layout))

    def _add_audio(self, payload: bytes, ticks: int) -> None:
        self._a_number += 1
        iv = sample_iv(AUDIO_TRACK_ID, self._a_number)
        super()._add_audio(self._encrypt(iv, payload), ticks)
        self._a_aux.append(iv)

    @staticmethod
    def _aux_boxes(aux: list[bytes], senc_flags: int, at: int) -> bytes:
        """``saiz``, ``saio`` and ``senc`` of one track's samples; ``at`` is where they start,
        counted from the ``moof``."""
        sizes = {len(info) for info in aux}
        if len(sizes) == 1:
            saiz = struct.pack(">I4sIBI", 17, b"saiz", 0, len(aux[0]), len(aux))
        else:
            saiz = struct.pack(">I4sIBI", 17 + len(aux), b"saiz", 0, 0, len(aux)) \
                + bytes(len(info) for info in aux)
        senc_at = at + len(saiz) + 20
        saio = struct.pack(">I4sIII", 20, b"saio", 0, 1, senc_at + 16)
        body = b"".join(aux)
        senc = struct.pack(">I4sII", 16 + len(body), b"senc", senc_flags, len(aux)) + body
        return saiz + saio + senc

    @staticmethod
    def _aux_size(aux: list[bytes]) -> int:
        same = len({len(info) for info in aux}) == 1
        return (17 if same else 17 + len(aux)) + 20 + 16 + sum(len(info) for info in aux)

    def _traf_tail_size(self, track_id: int) -> int:
        return self._aux_size(self._v_aux if track_id == VIDEO_TRACK_ID else self._a_aux)

    def _traf_tail(self, track_id: int, at: int) -> bytes:
        if track_id == VIDEO_TRACK_ID:
            return self._aux_boxes(self._v_aux, SENC_USE_SUBSAMPLES, at)
        return self._aux_boxes(self._a_aux, 0, at)

    def _start_fragment(self) -> None:
        super()._start_fragment()
        self._v_aux, self._a_aux = [], []
