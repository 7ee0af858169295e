# cython: language_level=3, boundscheck=False, wraparound=False
"""Native fragmented-MP4 muxer (recorder.storage._mux_c): a Cython skin over native/mux.c.

Same API, rules, errors and bytes as recorder/storage/_mux_py.py. The rules (cuts, timestamps,
init segments) are not written here: the include below compiles recorder/storage/_mux_rules.py,
the file the pure twin runs, into this module as the typed base class ``MuxRules``. This skin only
fills its byte hooks: mux.c scans the Annex B payload (with the GIL released for payloads of
GIL_RELEASE_BYTES or more) and notes where its NAL units are, and when the fragment ends writes
moof and mdat straight from the access units (kept alive in ``_payloads``) into the returned
bytes, with the GIL released: one copy of every byte.

``Aes128Ctr`` and ``aes128_ctr`` give Python the AES-128-CTR routine the encrypting muxer uses
(mux.c's bwv_aes128_ctr over OpenSSL's libcrypto), for the tests and benches/bench_aes.py; their
pure twins are in recorder/storage/_mux_cenc.py.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint32_t
from libc.string cimport memcpy

include "../recorder/storage/_mux_rules.py"
from recorder.storage._mux_py import (AnnexBError, AudioConfigError, MuxClosedError, MuxedFragment,
                                      MuxError, MuxTimestampError, ParameterSetError)
from recorder.storage._mux_cenc import too_many_subsamples_error

GIL_RELEASE_BYTES = 4096

cdef int NAL_SPS = spec.NAL_SPS
cdef int NAL_PPS = spec.NAL_PPS


cdef extern from "mux.h" nogil:
    enum:
        BWV_MUX_OK
        BWV_MUX_ENOSTART
        BWV_MUX_ELEADING
        BWV_MUX_ENONAL
        BWV_MUX_ENOMEM
        BWV_MUX_ETOOBIG
        BWV_MUX_EEMPTY
        BWV_MUX_ESUBSAMPLES
        BWV_MUX_ECRYPTO

    ctypedef struct bwv_bytes:
        size_t len

    ctypedef struct bwv_run:
        size_t n

    ctypedef struct bwv_mux:
        bwv_bytes video_data, audio_data
        bwv_run video, audio
        size_t *nals
        size_t nal_count

    void *bwv_aes128_new(const uint8_t *key)
    void bwv_aes128_free(void *aes)
    int bwv_aes128_ctr(void *aes, const uint8_t *iv16, uint8_t *buf, size_t n)

    void bwv_mux_init(bwv_mux *m)
    void bwv_mux_free(bwv_mux *m)
    int bwv_mux_set_key(bwv_mux *m, const uint8_t *key)
    int bwv_mux_scan(bwv_mux *m, const uint8_t *p, size_t n, size_t *first)
    int bwv_mux_add_video(bwv_mux *m, const uint8_t *p, int64_t ticks, uint32_t cto, int key)
    int bwv_mux_add_audio(bwv_mux *m, const uint8_t *p, size_t n, int64_t ticks)
    size_t bwv_mux_fragment_size(const bwv_mux *m, size_t *moof)
    int bwv_mux_write_fragment(bwv_mux *m, uint8_t *out, uint32_t sequence,
                               uint32_t last_video_ticks, uint32_t audio_frame_ticks)


cdef class FragmentedMp4Muxer(MuxRules):
    """Turns access units into standalone fragmented-MP4 segments (see recorder/storage/_mux_py.py).

    ``audio_config``: the AAC AudioSpecificConfig (encoder extradata), or None for video only.
    ``segment_seconds``: a segment is cut at the first keyframe after this long.
    ``fragment_seconds``: a fragment is split after this long even inside a GOP.
    """

    cdef bwv_mux m
    cdef list _payloads  # video access units of the pending fragment: mux.c points into them

    def __cinit__(self, *args, **kwargs):
        bwv_mux_init(&self.m)
        self._payloads = []

    def __dealloc__(self):
        bwv_mux_free(&self.m)

    cpdef _scan(self, bytes payload, long long pts_us, bint key, sps, pps):
        cdef const uint8_t *data = <const uint8_t *> PyBytes_AS_STRING(payload)
        cdef size_t n = <size_t> len(payload)
        cdef size_t first = 0
        cdef int rc
        cdef size_t k
        cdef Py_ssize_t start, end
        cdef int kind
        if n >= GIL_RELEASE_BYTES:
            with nogil:
                rc = bwv_mux_scan(&self.m, data, n, &first)
        else:
            rc = bwv_mux_scan(&self.m, data, n, &first)
        if rc != BWV_MUX_OK:
            self._raise_scan_error(rc, pts_us, first)
        if key:
            for k in range(self.m.nal_count):
                start = <Py_ssize_t> self.m.nals[2 * k]
                end = <Py_ssize_t> self.m.nals[2 * k + 1]
                kind = data[start] & 0x1F
                if kind == NAL_SPS:
                    sps.append(payload[start:end])
                elif kind == NAL_PPS:
                    pps.append(payload[start:end])

    cpdef Py_ssize_t _video_count(self):
        return <Py_ssize_t> self.m.video.n

    cpdef _add_video(self, bytes payload, long long ticks, long long cto, bint key):
        cdef int rc = bwv_mux_add_video(&self.m, <const uint8_t *> PyBytes_AS_STRING(payload),
                                        ticks, <uint32_t> cto, key)
        if rc != BWV_MUX_OK:
            self._raise_add_error(rc)
        self._payloads.append(payload)

    cpdef _add_audio(self, bytes payload, long long ticks):
        cdef int rc = bwv_mux_add_audio(&self.m, <const uint8_t *> PyBytes_AS_STRING(payload),
                                        <size_t> len(payload), ticks)
        if rc != BWV_MUX_OK:
            self._raise_add_error(rc)

    cpdef bytes _write_fragment(self, bytes head, long long sequence, long long last_video_ticks):
        cdef size_t moof = 0
        cdef size_t size = bwv_mux_fragment_size(&self.m, &moof)
        cdef size_t head_len = <size_t> len(head)
        cdef bytes data
        cdef uint8_t *out
        if size == 0:
            raise spec.fragment_too_large_error(
                8 + self.m.video_data.len + self.m.audio_data.len)
        data = PyBytes_FromStringAndSize(NULL, <Py_ssize_t> (head_len + size))
        out = <uint8_t *> PyBytes_AS_STRING(data)
        if head_len:
            memcpy(out, PyBytes_AS_STRING(head), head_len)
        cdef int rc
        with nogil:
            rc = bwv_mux_write_fragment(&self.m, out + head_len, <uint32_t> sequence,
                                        <uint32_t> last_video_ticks, <uint32_t> self._audio_frame)
        self._payloads = []
        if rc != BWV_MUX_OK:
            self._raise_add_error(rc)
        return data

    cdef _raise_scan_error(self, int rc, long long pts_us, size_t first):
        if rc == BWV_MUX_ENOSTART:
            raise spec.annexb_error(pts_us, "no start code")
        if rc == BWV_MUX_ELEADING:
            raise spec.annexb_error(
                pts_us, f"{first} bytes before the first start code are not all zero")
        if rc == BWV_MUX_ENONAL:
            raise spec.annexb_error(pts_us, "no NAL unit after the start codes")
        self._raise_add_error(rc)

    cdef _raise_add_error(self, int rc):
        if rc == BWV_MUX_ENOMEM:
            raise MemoryError("cannot grow the fragment buffer")
        if rc == BWV_MUX_ETOOBIG:
            raise spec.fragment_too_large_error(self.m.video_data.len + self.m.audio_data.len)
        if rc == BWV_MUX_EEMPTY:  # the rules refuse empty access units before they get here
            raise SystemError("muxer was given an empty audio sample")
        if rc == BWV_MUX_ESUBSAMPLES:
            raise too_many_subsamples_error(self.m.nal_count)
        if rc == BWV_MUX_ECRYPTO:
            raise MuxError("OpenSSL's libcrypto failed to encrypt with AES-128-CTR")
        raise SystemError(f"muxer returned unknown code {rc}")


cdef class EncryptingMp4Muxer(FragmentedMp4Muxer):
    """`FragmentedMp4Muxer` whose segments are encrypted with ``content_key`` (ISO Common
    Encryption 'cenc'; recorder/storage/_mux_cenc.py is the pure twin and says how), AES-128-CTR
    through OpenSSL's libcrypto in the same pass that writes the fragment."""

    cdef bytes _key_id

    def __init__(self, audio_config=None, *, content_key, segment_seconds=30.0,
                 fragment_seconds=2.0):
        super().__init__(audio_config, segment_seconds=segment_seconds,
                         fragment_seconds=fragment_seconds)
        cdef bytes key = bytes(content_key.key)
        self._key_id = bytes(content_key.key_id)
        if len(key) != 16 or len(self._key_id) != 16:
            raise ValueError("a content key is 16 bytes with a 16-byte key id")
        if bwv_mux_set_key(&self.m, <const uint8_t *> PyBytes_AS_STRING(key)) != BWV_MUX_OK:
            raise MemoryError("cannot make a cipher context")

    cpdef _open_segment(self, long long dts_us):
        FragmentedMp4Muxer._open_segment(self, dts_us)
        self._init = spec.init_segment(self._sps, self._pps, self._audio_config,
                                       self._origin_us, self._key_id)


cdef class Aes128Ctr:
    """AES-128-CTR under one 16-byte key, through the routine the encrypting muxer uses (mux.c's
    bwv_aes128_ctr: OpenSSL's libcrypto; the key is expanded once, here). ``iv`` is the whole
    16-byte first counter block, incremented as a 128-bit big-endian number. Buffers of
    GIL_RELEASE_BYTES or more are encrypted with the GIL released; one object serves one call
    at a time (another thread's call meanwhile raises RuntimeError)."""

    cdef void *aes
    cdef bint busy

    def __cinit__(self, key):
        cdef bytes raw = bytes(key)
        if len(raw) != 16:
            raise ValueError(f"an AES-128 key is 16 bytes, not {len(raw)}")
        self.aes = bwv_aes128_new(<const uint8_t *> PyBytes_AS_STRING(raw))
        if self.aes == NULL:
            raise MemoryError("OpenSSL's libcrypto could not make an AES-128-CTR context")

    def __dealloc__(self):
        bwv_aes128_free(self.aes)

    cdef int _run(self, const uint8_t *iv, uint8_t *buf, size_t n) except -1:
        cdef int rc
        if self.busy:
            raise RuntimeError("this Aes128Ctr is in use by another thread")
        self.busy = True
        try:
            if n >= GIL_RELEASE_BYTES:
                with nogil:
                    rc = bwv_aes128_ctr(self.aes, iv, buf, n)
            else:
                rc = bwv_aes128_ctr(self.aes, iv, buf, n)
        finally:
            self.busy = False
        if rc != BWV_MUX_OK:
            raise MuxError("OpenSSL's libcrypto failed to encrypt with AES-128-CTR")
        return 0

    def apply(self, iv, buffer) -> None:
        """Encrypt (or decrypt: the same) the writable ``buffer`` in place."""
        cdef bytes counter = _counter_block(iv)
        cdef Py_buffer view
        PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE)
        try:
            self._run(<const uint8_t *> PyBytes_AS_STRING(counter), <uint8_t *> view.buf,
                      <size_t> view.len)
        finally:
            PyBuffer_Release(&view)

    def encrypt(self, iv, data) -> bytes:
        """``data`` (any bytes-like object) encrypted (or decrypted), as new bytes."""
        cdef bytes counter = _counter_block(iv)
        cdef Py_buffer view
        cdef bytes out
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:  # not from view.buf: CPython would hand back its shared object of a 1-byte data
            out = PyBytes_FromStringAndSize(NULL, view.len)
            memcpy(PyBytes_AS_STRING(out), view.buf, <size_t> view.len)
        finally:
            PyBuffer_Release(&view)
        self._run(<const uint8_t *> PyBytes_AS_STRING(counter),
                  <uint8_t *> PyBytes_AS_STRING(out), <size_t> len(out))
        return out


cdef bytes _counter_block(iv):
    cdef bytes block = iv if type(iv) is bytes else bytes(iv)
    if len(block) != 16:
        raise ValueError(f"an AES-CTR counter block is 16 bytes, not {len(block)}")
    return block


def aes128_ctr(key, iv, data) -> bytes:
    """``data`` encrypted (or decrypted) with AES-128-CTR under ``key`` from counter block ``iv``
    (16 bytes each): ``Aes128Ctr(key).encrypt(iv, data)``."""
    return Aes128Ctr(key).encrypt(iv, data)
