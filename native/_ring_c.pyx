# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native pre-event ring (recorder.ring._ring_c): a thin Cython skin over native/ring.c.

Same API, rules, errors and bytes as recorder/ring/_ring_py.py. Locking is inside ring.c: every
function there takes the ring's pthread mutex itself, and none calls into Python or waits for the
GIL while holding it. So a thread may wait for the mutex with the GIL held, as push, pop, len(),
stats() and the properties do: the holder never needs the GIL to finish, and holds the mutex
only for one push or take. pop()'s wait for an access unit runs with the GIL released (the
condition wait gives the mutex up while it waits), and so does the one copy of a payload that is
not ``bytes`` when it is GIL_RELEASE_BYTES or more; smaller copies cost less than a GIL round trip.

The payloads: ring.c keeps order and accounting, this class keeps the ``bytes`` objects, one
reference in ``slots[seq % nmax]`` per AU held. Every change to the slots is made with the GIL
held, in the same call as the ring.c call that stored, evicted or took those AUs, and nothing in
between can run Python code (releasing an exact ``bytes`` runs none): so the slots always match
ring.c's head and tail as seen by any Python thread, with no lock of their own. Slots below
``first`` are empty; push() and end_consume() empty those below the head ring.c reports.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.stdint cimport SIZE_MAX, int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

from recorder import errors
from recorder.ring._ring_py import (DEFAULT_MAX_UNITS, _allocation_error, _check_capacity,
                                    _check_construction, _check_timeout)
from recorder.capture.access_unit import AccessUnit, RingStats

GIL_RELEASE_BYTES = 4096


cdef extern from "ring.h" nogil:
    enum:
        BWV_OK
        BWV_DROPPED
        BWV_ECLOSED
        BWV_ESTREAM
        BWV_EEMPTY
        BWV_ETOOBIG
        BWV_EPTS
        BWV_ENOMEM
        BWV_ESTATE
        BWV_NONE
        BWV_RETRY
        BWV_MODE_CONSUMING
        BWV_MODE_CLOSED

    ctypedef struct bwv_ring_stats:
        uint64_t units, bytes, video_units, keyframes
        int64_t span_us
        uint64_t pushed_units, pushed_bytes, consumed_units, consumed_bytes
        uint64_t evicted_units, evicted_bytes, skipped_units, overrun_units, overrun_bytes

    ctypedef struct bwv_ring:
        size_t cap   # cap and nmax never change after bwv_ring_init: read without the lock
        size_t nmax

    int bwv_ring_init(bwv_ring *r, size_t cap, size_t nmax, int64_t seconds_us)
    void bwv_ring_free(bwv_ring *r)
    int bwv_ring_push(bwv_ring *r, int stream, int64_t pts, int key, size_t n,
                      int64_t *last_pts, uint64_t *seq, uint64_t *head)
    int bwv_ring_begin_consume(bwv_ring *r)
    int bwv_ring_end_consume(bwv_ring *r, uint64_t *head)
    int bwv_ring_peek(bwv_ring *r, double timeout_s, uint64_t *seq, size_t *n)
    int bwv_ring_take(bwv_ring *r, uint64_t seq, size_t n, int *stream, int64_t *pts, int *key)
    void bwv_ring_close(bwv_ring *r)
    void bwv_ring_get_stats(bwv_ring *r, bwv_ring_stats *out)
    uint64_t bwv_ring_len(bwv_ring *r)
    int bwv_ring_mode(bwv_ring *r)


cdef class PreEventRing:
    """A pre-event buffer of access units, bounded by duration (video pts) and by bytes.

    ``seconds``: how much video to keep while buffering (at least this much once available, at
    most one GOP more). ``capacity_bytes``: the most payload bytes held at once. ``max_units``:
    how many AUs the ring can index at once.
    """

    cdef bwv_ring r
    cdef bint ready
    cdef double _seconds
    cdef PyObject **slots  # the payload of AU seq, a bytes reference, at seq % nmax
    cdef uint64_t first    # slots of seqs below it are empty

    def __cinit__(self, seconds, capacity_bytes, max_units=DEFAULT_MAX_UNITS):
        self.ready = False
        self.slots = NULL
        seconds_us = _check_construction(seconds, capacity_bytes, max_units)
        _check_capacity(capacity_bytes, max_units)
        if capacity_bytes > SIZE_MAX or max_units > SIZE_MAX:
            raise _allocation_error(capacity_bytes, max_units)
        if bwv_ring_init(&self.r, capacity_bytes, max_units, seconds_us) != BWV_OK:
            raise _allocation_error(capacity_bytes, max_units)
        self.ready = True
        self.slots = <PyObject **> calloc(self.r.nmax, sizeof(PyObject *))
        if self.slots == NULL:
            raise _allocation_error(capacity_bytes, max_units)
        self.first = 0
        self._seconds = seconds

    def __dealloc__(self):
        if self.slots != NULL:
            if self.ready:  # the payloads still held, and no other slot, hold references
                self._release_below(self.first + bwv_ring_len(&self.r))
            free(self.slots)
            self.slots = NULL
        if self.ready:
            bwv_ring_free(&self.r)

    cdef inline void _release_below(self, uint64_t head):
        """Let go of the payloads of every AU below ``head`` (evicted: ring.c moved past them)."""
        cdef size_t i
        while self.first < head:
            i = self.first % self.r.nmax
            Py_XDECREF(self.slots[i])
            self.slots[i] = NULL
            self.first += 1

    @property
    def seconds(self):
        return self._seconds

    @property
    def capacity_bytes(self):
        return self.r.cap

    @property
    def max_units(self):
        return self.r.nmax

    @property
    def consuming(self):
        return bool(bwv_ring_mode(&self.r) & BWV_MODE_CONSUMING)

    @property
    def closed(self):
        return bool(bwv_ring_mode(&self.r) & BWV_MODE_CLOSED)

    def __len__(self):
        return <Py_ssize_t> bwv_ring_len(&self.r)  # at most nmax

    def push(self, int stream, int64_t pts_us, is_keyframe, payload):
        """Store one access unit, evicting old ones as the rules say. A ``bytes`` payload is held
        as it is (it is immutable); any other bytes-like payload is copied once into ``bytes``."""
        cdef Py_buffer view
        cdef int rc
        cdef int key = 1 if is_keyframe else 0
        cdef int64_t last = 0
        cdef uint64_t seq = 0, head = 0
        cdef size_t n
        cdef bytes data
        if type(payload) is bytes:
            data = <bytes> payload
            n = <size_t> len(data)
        else:
            try:
                PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
            except (TypeError, BufferError, ValueError):
                raise errors.payload_type_error(payload) from None
            try:
                n = <size_t> view.len
                data = self._copy(view.buf, n) if n <= self.r.cap else None
            finally:
                PyBuffer_Release(&view)
        rc = bwv_ring_push(&self.r, stream, pts_us, key, n, &last, &seq, &head)
        if rc < 0:
            self._raise_push_error(rc, stream, pts_us, n, last)
        self._release_below(head)
        if rc == BWV_OK:  # seq's slot was emptied above: its previous AU is below the head
            Py_INCREF(data)
            self.slots[seq % self.r.nmax] = <PyObject *> data

    cdef bytes _copy(self, const void *src, size_t n):
        """One copy of a payload that is not ``bytes``, without the GIL when it is large."""
        cdef bytes out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t> n)
        cdef char *dst = PyBytes_AS_STRING(out)
        if n < GIL_RELEASE_BYTES:
            memcpy(dst, src, n)
        else:
            with nogil:
                memcpy(dst, src, n)
        return out

    cdef _raise_push_error(self, int rc, int stream, int64_t pts_us, size_t n, int64_t last):
        if rc == BWV_ECLOSED:
            raise errors.ring_closed_error()
        if rc == BWV_ESTREAM:
            raise errors.invalid_stream_error(stream)
        if rc == BWV_EEMPTY:
            raise errors.empty_access_unit_error(stream, pts_us)
        if rc == BWV_ETOOBIG:
            raise errors.access_unit_too_large_error(stream, pts_us, n, self.r.cap)
        if rc == BWV_EPTS:
            raise errors.non_monotonic_pts_error(stream, pts_us, last)
        raise SystemError(f"ring push returned unknown code {rc}")

    def begin_consume(self):
        """Switch to consume mode (recording): stop ageing; pop()/drain() take AUs from the oldest."""
        cdef int rc = bwv_ring_begin_consume(&self.r)
        if rc == BWV_ECLOSED:
            raise errors.ring_closed_error()
        if rc == BWV_ESTATE:
            raise errors.RingStateError("begin_consume() called while already consuming")

    def end_consume(self):
        """Back to buffering: AUs not taken stay, trimmed to start at a keyframe, and age again."""
        cdef uint64_t head = 0
        if bwv_ring_end_consume(&self.r, &head) == BWV_ESTATE:
            raise errors.RingStateError("end_consume() called while not consuming")
        self._release_below(head)

    def pop(self, timeout=None):
        """Take the oldest AU, waiting up to ``timeout`` seconds (None: forever) for one.

        Returns None on timeout, or when the ring is closed and empty (see ``closed``).
        ``timeout`` must be None or a number >= 0 (NaN and negative numbers are refused); any
        larger number, even infinity, is honoured.
        """
        cdef double wait_s
        if timeout is None:
            wait_s = -1.0
        elif type(timeout) is float and <double> timeout >= 0:  # NaN fails this: checked below
            wait_s = <double> timeout
        else:
            seconds = _check_timeout(timeout)
            wait_s = -1.0 if seconds is None else <double> seconds
        return self._pop(wait_s)

    cdef object _pop(self, double wait_s):
        """pop() with a checked timeout in seconds (< 0: forever)."""
        cdef uint64_t seq
        cdef size_t n, i
        cdef int rc, stream, key
        cdef int64_t pts
        cdef object out
        while True:
            # an AU already held is taken without letting the GIL go; only a wait releases it
            rc = bwv_ring_peek(&self.r, 0.0, &seq, &n)
            if rc == BWV_NONE and wait_s != 0:
                with nogil:
                    rc = bwv_ring_peek(&self.r, wait_s, &seq, &n)
            if rc == BWV_ESTATE:
                raise errors.RingStateError("pop() needs consume mode: call begin_consume() first")
            if rc == BWV_NONE:
                return None
            rc = bwv_ring_take(&self.r, seq, n, &stream, &pts, &key)
            if rc == BWV_OK:
                # every AU below seq was released by the call that evicted or took it
                i = seq % self.r.nmax
                out = <object> self.slots[i]  # a new reference: the slot's is let go below
                Py_XDECREF(self.slots[i])
                self.slots[i] = NULL
                self.first = seq + 1
                return AccessUnit(stream, pts, bool(key), out)
            # the AU was evicted (overrun) between peek and take: take the next one

    def drain(self):
        """Yield every AU held, oldest first, until the ring is momentarily empty (consume mode)."""
        while True:
            unit = self._pop(0.0)
            if unit is None:
                return
            yield unit

    def close(self):
        """Refuse further pushes. AUs held can still be popped; then pop() returns None. Idempotent."""
        bwv_ring_close(&self.r)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def stats(self):
        """A consistent snapshot of the ring's counters."""
        cdef bwv_ring_stats s
        bwv_ring_get_stats(&self.r, &s)
        return RingStats(s.units, s.bytes, s.video_units, s.keyframes, s.span_us,
                         s.pushed_units, s.pushed_bytes, s.consumed_units, s.consumed_bytes,
                         s.evicted_units, s.evicted_bytes, s.skipped_units,
                         s.overrun_units, s.overrun_bytes)

    def __repr__(self):
        cdef int flags = bwv_ring_mode(&self.r)
        mode = ("closed" if flags & BWV_MODE_CLOSED
                else "consuming" if flags & BWV_MODE_CONSUMING else "buffering")
        return (f"<PreEventRing {mode} seconds={self._seconds:g} "
                f"capacity_bytes={self.r.cap} units={len(self)}>")
