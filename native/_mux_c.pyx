# cython: language_level=3, boundscheck=False, wraparound=False
"""Native fragmented-MP4 muxer (recorder.storage._mux_c): a Cython skin over native/mux.c.

Same API, rules, errors and bytes as recorder/storage/_mux_py.py, which also builds the init segment
(ftyp + moov, once per segment) and the error messages for both twins. Per access unit this skin
runs the cut and timestamp rules in C types; mux.c scans the Annex B payload (with the GIL
released for payloads of GIL_RELEASE_BYTES or more) and notes where its NAL units are, and when the
fragment ends writes moof and mdat straight from the access units (kept alive in ``_payloads``)
into the returned bytes, with the GIL released: one copy of every byte.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint32_t
from libc.string cimport memcpy

from recorder.storage import _mux_py as spec
from recorder.errors import empty_access_unit_error
from recorder.storage._mux_py import (AnnexBError, AudioConfigError, MuxClosedError, MuxedFragment,
                              MuxError, MuxTimestampError, ParameterSetError)

GIL_RELEASE_BYTES = 4096

cdef int VIDEO = 0
cdef int AUDIO = 1
cdef int64_t VIDEO_TIMESCALE = spec.VIDEO_TIMESCALE
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

    ctypedef struct bwv_bytes:
        size_t len

    ctypedef struct bwv_run:
        size_t n

    ctypedef struct bwv_mux:
        bwv_bytes video_data, audio_data
        bwv_run video, audio
        size_t *nals
        size_t nal_count

    void bwv_mux_init(bwv_mux *m)
    void bwv_mux_free(bwv_mux *m)
    int bwv_mux_scan(bwv_mux *m, const uint8_t *p, size_t n, size_t *first)
    int bwv_mux_add_video(bwv_mux *m, const uint8_t *p, int64_t ticks, uint32_t cto, int key)
    int bwv_mux_add_audio(bwv_mux *m, const uint8_t *p, size_t n, int64_t ticks)
    size_t bwv_mux_fragment_size(const bwv_mux *m, size_t *moof)
    void bwv_mux_write_fragment(bwv_mux *m, uint8_t *out, uint32_t sequence,
                                uint32_t last_video_ticks, uint32_t audio_frame_ticks)
    int64_t bwv_mux_ticks(int64_t us, int64_t timescale)


cdef class FragmentedMp4Muxer:
    """Turns access units into standalone fragmented-MP4 segments (see recorder/storage/_mux_py.py).

    ``audio_config``: the AAC AudioSpecificConfig (encoder extradata), or None for video only.
    ``segment_seconds``: a segment is cut at the first keyframe after this long.
    ``fragment_seconds``: a fragment is split after this long even inside a GOP.
    """

    cdef bwv_mux m
    cdef object _audio_config
    cdef int64_t _audio_rate, _audio_frame, _segment_us, _fragment_us
    cdef bint _closed, _started, _fragment_is_first
    cdef int64_t _origin_us, _segment_start_us, _fragment_start_us
    cdef list _sps, _pps
    cdef list _payloads  # video access units of the pending fragment: mux.c points into them
    cdef bytes _init
    cdef long _segment
    cdef uint32_t _sequence
    cdef int64_t _last_v_ticks, _last_a_ticks, _last_v_dts_us, _last_a_pts_us, _last_v_delta
    cdef int64_t _min_pts, _max_pts
    cdef public long dropped_units

    def __cinit__(self):
        bwv_mux_init(&self.m)

    def __init__(self, audio_config=None, *, segment_seconds=30.0, fragment_seconds=2.0):
        self._segment_us, self._fragment_us = spec.check_construction(
            audio_config, segment_seconds, fragment_seconds)
        self._audio_config = None if audio_config is None else bytes(audio_config)
        self._audio_rate = 0
        self._audio_frame = 0
        if self._audio_config is not None:
            info = spec.parse_audio_specific_config(self._audio_config)
            self._audio_rate, self._audio_frame = info.sample_rate, info.frame_samples
        self._closed = False
        self._started = False
        self._origin_us = 0
        self._sps = []
        self._pps = []
        self._payloads = []
        self._init = b""
        self._segment = 0
        self._sequence = 0
        self._segment_start_us = 0
        self._fragment_start_us = 0
        self._fragment_is_first = True
        self._last_v_ticks = -1
        self._last_a_ticks = -1
        self._last_v_dts_us = 0
        self._last_a_pts_us = 0
        self._last_v_delta = spec.DEFAULT_VIDEO_TICKS
        self._min_pts = 0
        self._max_pts = 0
        self.dropped_units = 0

    def __dealloc__(self):
        bwv_mux_free(&self.m)

    @property
    def closed(self):
        return self._closed

    @property
    def segment(self):
        """1-based number of the segment being written (0 before the first keyframe)."""
        return self._segment

    def push(self, int stream, int64_t pts_us, is_keyframe, payload, dts_us=None):
        """Add one access unit; return the fragment it completed, if any."""
        cdef Py_buffer view
        if self._closed:
            raise spec.closed_error()
        if stream != VIDEO and stream != AUDIO:
            raise spec.stream_error(stream)
        if stream == AUDIO and self._audio_config is None:
            raise spec.audio_to_video_only_error()
        if type(payload) is not bytes:  # a bytearray could change before the fragment is written
            payload = bytes(memoryview(payload))
        if not payload:
            raise empty_access_unit_error(stream, pts_us)
        if stream == VIDEO:
            return self._push_video(pts_us, 1 if is_keyframe else 0, <bytes> payload,
                                    pts_us if dts_us is None else <int64_t> dts_us)
        self._push_audio(pts_us, <bytes> payload)
        return None

    cdef object _push_video(self, int64_t pts_us, bint key, bytes payload, int64_t dts_us):
        cdef const uint8_t *data = <const uint8_t *> PyBytes_AS_STRING(payload)
        cdef size_t n = <size_t> len(payload)
        cdef size_t first = 0
        cdef int rc
        cdef size_t k
        cdef Py_ssize_t start, end
        cdef int kind
        cdef int64_t ticks, delta
        cdef uint32_t cto
        cdef list sps, pps
        cdef bint changed
        if n >= GIL_RELEASE_BYTES:
            with nogil:
                rc = bwv_mux_scan(&self.m, data, n, &first)
        else:
            rc = bwv_mux_scan(&self.m, data, n, &first)
        if rc != BWV_MUX_OK:
            self._raise_scan_error(rc, pts_us, first)
        if pts_us < dts_us:
            raise spec.pts_before_dts_error(pts_us, dts_us)
        sps = []
        pps = []
        if key:
            for k in range(self.m.nal_count):
                start = <Py_ssize_t> self.m.nals[2 * k]
                end = <Py_ssize_t> self.m.nals[2 * k + 1]
                kind = data[start] & 0x1F
                if kind == NAL_SPS:
                    sps.append(payload[start:end])
                elif kind == NAL_PPS:
                    pps.append(payload[start:end])
        done = None
        if not self._started:
            if not key:
                self.dropped_units += 1
                return None
            if not sps or not pps:
                raise spec.missing_parameter_sets_error(pts_us)
            self._origin_us = dts_us
            ticks = 0
        else:
            ticks = bwv_mux_ticks(dts_us - self._origin_us, VIDEO_TIMESCALE)
            if ticks <= self._last_v_ticks:
                raise spec.timestamp_error(VIDEO, "dts_us", dts_us, self._last_v_dts_us)
            changed = (sps or self._sps) != self._sps or (pps or self._pps) != self._pps
            delta = ticks - self._last_v_ticks
            if key and (changed or dts_us - self._segment_start_us >= self._segment_us):
                done = self._finish_fragment(delta, True)
            elif key or dts_us - self._fragment_start_us >= self._fragment_us:
                done = self._finish_fragment(delta, False)
            self._last_v_delta = delta
        if not self._started or (done is not None and done.ends_segment):
            self._sps = sps or self._sps
            self._pps = pps or self._pps
            self._open_segment(dts_us)
        self._last_v_ticks = ticks
        self._last_v_dts_us = dts_us
        if self.m.video.n == 0:
            self._fragment_start_us = dts_us
            self._min_pts = self._max_pts = pts_us
        elif pts_us < self._min_pts:
            self._min_pts = pts_us
        elif pts_us > self._max_pts:
            self._max_pts = pts_us
        cto = <uint32_t> (bwv_mux_ticks(pts_us - self._origin_us, VIDEO_TIMESCALE) - ticks)
        rc = bwv_mux_add_video(&self.m, data, ticks, cto, key)
        if rc != BWV_MUX_OK:
            self._raise_add_error(rc)
        self._payloads.append(payload)
        return done

    cdef _raise_scan_error(self, int rc, int64_t pts_us, size_t first):
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
        raise SystemError(f"muxer returned unknown code {rc}")

    cdef _open_segment(self, int64_t dts_us):
        self._init = spec.init_segment(self._sps, self._pps, self._audio_config,
                                       self._origin_us)
        self._segment += 1
        self._segment_start_us = dts_us
        self._fragment_is_first = True
        self._started = True

    cdef _push_audio(self, int64_t pts_us, bytes payload):
        cdef int64_t ticks
        cdef int rc
        if not self._started or pts_us < self._origin_us:
            self.dropped_units += 1
            return
        ticks = bwv_mux_ticks(pts_us - self._origin_us, self._audio_rate)
        if ticks <= self._last_a_ticks:
            raise spec.timestamp_error(AUDIO, "pts_us", pts_us, self._last_a_pts_us)
        self._last_a_ticks = ticks
        self._last_a_pts_us = pts_us
        rc = bwv_mux_add_audio(&self.m, <const uint8_t *> PyBytes_AS_STRING(payload),
                               <size_t> len(payload), ticks)
        if rc == BWV_MUX_EEMPTY:
            raise empty_access_unit_error(AUDIO, pts_us)
        if rc != BWV_MUX_OK:
            self._raise_add_error(rc)

    def close(self):
        """End the recording: return its last fragment (None if nothing was muxed). Idempotent."""
        if self._closed:
            return None
        self._closed = True
        if self.m.video.n == 0:
            return None
        return self._finish_fragment(self._last_v_delta, True)

    cdef object _finish_fragment(self, int64_t last_video_ticks, bint ends_segment):
        cdef size_t moof = 0
        cdef size_t size = bwv_mux_fragment_size(&self.m, &moof)
        cdef size_t head = <size_t> len(self._init) if self._fragment_is_first else 0
        cdef bytes data
        cdef uint8_t *out
        if size == 0:
            raise spec.fragment_too_large_error(
                8 + self.m.video_data.len + self.m.audio_data.len)
        self._sequence += 1
        data = PyBytes_FromStringAndSize(NULL, <Py_ssize_t> (head + size))
        out = <uint8_t *> PyBytes_AS_STRING(data)
        if head:
            memcpy(out, PyBytes_AS_STRING(self._init), head)
        with nogil:
            bwv_mux_write_fragment(&self.m, out + head, self._sequence,
                                   <uint32_t> last_video_ticks, <uint32_t> self._audio_frame)
        self._payloads = []
        fragment = MuxedFragment(self._segment, self._sequence, data, self._fragment_is_first,
                                 ends_segment, self._min_pts, self._max_pts)
        self._fragment_is_first = False
        return fragment
