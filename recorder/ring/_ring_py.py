"""Pure-Python pre-event ring: the twin of the native ring (`native/ring.c`), same API and bytes.

This file is also the readable specification of the ring's rules; `native/ring.c` follows it
line for line, and the differential tests hold the two to the same results.

Storage. The ring holds each payload as one immutable ``bytes`` object: the very object pushed
when it is exactly ``bytes`` (no copy: the encoders' sources already made it, as picamera2's
``CircularOutput2`` keeps the encoder's), or one copy of any other bytes-like payload. pop()
hands that object back. What may be held is bounded by an *arena* of ``capacity_bytes`` that is
laid out but never allocated: each payload is given a contiguous place in it (one that does not
fit before its end goes to offset 0, leaving a gap), and a payload is stored only where it fits
without touching held ones. So the bytes held never exceed ``capacity_bytes``, evictions are
what a real arena would need, and the memory held stays flat however many AUs pass; the
payloads' places are kept for that accounting only. A capacity beyond the machine's physical
memory is refused, as an arena of that size could not be given.
Per-AU metadata lives in preallocated lists indexed by ``seq % max_units``, where ``seq`` counts
every AU ever stored. The oldest held AU has seq ``_head``, the next to be stored ``_tail``.

Rules.
- push checks, in this order: payload bytes-like, ring open, stream 0/1, payload not empty, payload
  not larger than the arena, pts_us strictly after the previous pts_us of the same stream.
- A video AU that is not a keyframe is kept only while its GOP is open (its keyframe and every video
  AU since were stored); otherwise it is dropped: counted as skipped while buffering, as overrun
  while consuming.
- Room is made by evicting a *group* from the old end: everything up to (not including) the next
  video keyframe, or everything if no keyframe follows; if the ring holds no video, one AU.
- While buffering, after each push: AUs older than the oldest keyframe go, then whole GOPs go while
  the GOP after the oldest one still starts ``seconds`` or more before the newest video pts (so at
  least ``seconds`` of video stays buffered when it exists). With no keyframe held, the ring holds
  audio only, aged the same way one AU at a time on audio pts.
- While consuming, nothing ages; pop() takes the oldest AU and frees it at once. Evicting an AU
  nobody consumed is data loss: it is counted in overrun_units/overrun_bytes.

Threads: one video producer, one audio producer, one consumer. ``_lock`` guards every attribute
below it; ``_readable`` (on the same lock) wakes a consumer blocked in pop().
"""

from __future__ import annotations

import math
import numbers
import os
import threading
import time
from collections.abc import Iterator

from ..capture.access_unit import AUDIO, VIDEO, AccessUnit, RingStats
from ..errors import (
    RingStateError,
    access_unit_too_large_error,
    empty_access_unit_error,
    invalid_stream_error,
    non_monotonic_pts_error,
    payload_type_error,
    ring_closed_error,
)

DEFAULT_MAX_UNITS = 65536
#: Longest single wait in pop(): a longer timeout is waited out a day at a time, so that no
#: clock or lock ever sees a number too large for it (both twins do the same).
MAX_WAIT_S = 86_400.0

#: What push() accepts: any contiguous bytes-like object.
Buffer = bytes | bytearray | memoryview


def _check_construction(seconds: float, capacity_bytes: int, max_units: int) -> int:
    """Validate constructor arguments; return the duration in microseconds."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be finite and >= 0, not {seconds!r}")
    if isinstance(capacity_bytes, bool) or not isinstance(capacity_bytes, int):
        raise TypeError(f"capacity_bytes must be an int, not {type(capacity_bytes).__name__}")
    if capacity_bytes < 1:
        raise ValueError(f"capacity_bytes must be >= 1, not {capacity_bytes}")
    if isinstance(max_units, bool) or not isinstance(max_units, int):
        raise TypeError(f"max_units must be an int, not {type(max_units).__name__}")
    if max_units < 2:
        raise ValueError(f"max_units must be >= 2, not {max_units}")
    return round(seconds * 1_000_000)


def _physical_memory() -> int | None:
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _check_capacity(capacity_bytes: int, max_units: int) -> None:
    """Refuse a capacity no machine here could hold (both twins: one rule, one error)."""
    memory = _physical_memory()
    if memory is not None and memory > 0 and capacity_bytes > memory:
        raise _allocation_error(capacity_bytes, max_units)


def _allocation_error(capacity_bytes: int, max_units: int) -> MemoryError:
    """The error of both twins for a ring whose arena or index cannot be allocated."""
    return MemoryError(f"cannot allocate a ring of {capacity_bytes} bytes indexing {max_units} "
                       "access units: lower capacity_bytes or max_units")


def _check_timeout(timeout: float | None) -> float | None:
    """Validate pop()'s timeout; return it in seconds (None: wait forever; +inf too, in effect)."""
    if timeout is None:
        return None
    kind = type(timeout)
    if kind is float and timeout >= 0 or kind is int and 0 <= timeout < 1 << 53:
        return float(timeout)  # the usual case, without the ABC checks (NaN is not >= 0)
    return _check_timeout_slow(timeout)


def _check_timeout_slow(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be None or a number, not {type(timeout).__name__}")
    try:
        seconds = float(timeout)
    except OverflowError:  # an int beyond any float
        seconds = math.inf if timeout > 0 else -math.inf
    if not seconds >= 0:  # NaN fails this too
        raise ValueError(f"timeout must be None or a number >= 0, not {timeout!r}")
    return seconds


class PreEventRing:
    """A pre-event buffer of access units, bounded by duration (video pts) and by bytes.

    ``seconds``: how much video to keep while buffering (at least this much once available, at
    most one GOP more). ``capacity_bytes``: the most payload bytes held at once. ``max_units``:
    how many AUs the ring can index at once.
    """

    __slots__ = (
        "_seconds", "_seconds_us", "_cap", "_nmax", "_data", "_lock", "_readable", "_waiters",
        "_streams", "_keys", "_pts", "_offs", "_lens", "_kseq", "_khead", "_ktail",
        "_head", "_tail", "_last_pts", "_gop_open", "_last_key_seq", "_video_held",
        "_held_bytes", "_consuming", "_closed",
        "_pushed_units", "_pushed_bytes", "_consumed_units", "_consumed_bytes",
        "_evicted_units", "_evicted_bytes", "_skipped_units", "_overrun_units", "_overrun_bytes",
    )

    def __init__(self, seconds: float, capacity_bytes: int,
                 max_units: int = DEFAULT_MAX_UNITS) -> None:
        self._seconds_us = _check_construction(seconds, capacity_bytes, max_units)
        _check_capacity(capacity_bytes, max_units)
        self._seconds = float(seconds)
        self._cap = capacity_bytes
        self._nmax = max_units
        try:
            self._data: list[bytes | None] = [None] * max_units  # the payloads held
            self._streams = [0] * max_units
            self._keys = [False] * max_units
            self._pts = [0] * max_units
            self._offs = [0] * max_units
            self._lens = [0] * max_units
            self._kseq = [0] * max_units  # seqs of held video keyframes, a ring of its own
        except (MemoryError, OverflowError):
            raise _allocation_error(capacity_bytes, max_units) from None
        self._lock = threading.Lock()
        self._readable = threading.Condition(self._lock)
        self._waiters = 0
        self._khead = 0
        self._ktail = 0
        self._head = 0
        self._tail = 0
        self._last_pts: list[int | None] = [None, None]
        self._gop_open = False
        self._last_key_seq = -1
        self._video_held = 0
        self._held_bytes = 0
        self._consuming = False
        self._closed = False
        self._pushed_units = self._pushed_bytes = 0
        self._consumed_units = self._consumed_bytes = 0
        self._evicted_units = self._evicted_bytes = 0
        self._skipped_units = 0
        self._overrun_units = self._overrun_bytes = 0

    # -- properties -------------------------------------------------------------------------

    @property
    def seconds(self) -> float:
        return self._seconds

    @property
    def capacity_bytes(self) -> int:
        return self._cap

    @property
    def max_units(self) -> int:
        return self._nmax

    @property
    def consuming(self) -> bool:
        with self._lock:
            return self._consuming

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def __len__(self) -> int:
        with self._lock:  # _tail and _head read together, as one state
            return self._tail - self._head

    # -- producers ----------------------------------------------------------------------------

    def push(self, stream: int, pts_us: int, is_keyframe: bool, payload: Buffer) -> None:
        """Store one access unit, evicting old ones as the rules say. A ``bytes`` payload is held
        as it is (it is immutable); any other bytes-like payload is copied once into ``bytes``."""
        if type(payload) is bytes:
            data = payload
            size = len(payload)
        else:
            try:
                view = memoryview(payload)
            except TypeError:
                raise payload_type_error(payload) from None
            if not view.c_contiguous:
                raise payload_type_error(payload)
            size = view.nbytes
            # copied before the lock, unless push() will refuse it for its size anyway
            data = view.tobytes() if size <= self._cap else b""
        with self._lock:
            if self._closed:
                raise ring_closed_error()
            if stream != VIDEO and stream != AUDIO:
                raise invalid_stream_error(stream)
            if size == 0:
                raise empty_access_unit_error(stream, pts_us)
            if size > self._cap:
                raise access_unit_too_large_error(stream, pts_us, size, self._cap)
            last = self._last_pts[stream]
            if last is not None and pts_us <= last:
                raise non_monotonic_pts_error(stream, pts_us, last)
            self._last_pts[stream] = pts_us
            self._pushed_units += 1
            self._pushed_bytes += size
            key = bool(is_keyframe) and stream == VIDEO
            if stream == VIDEO and not key and not self._gop_open:
                self._drop(size)
                return
            while True:
                offset = self._space_for(size) if self._tail - self._head < self._nmax else -1
                if offset >= 0:
                    break
                self._evict_group()
                if stream == VIDEO and not key and not self._gop_open:
                    self._drop(size)
                    return
            seq = self._tail
            i = seq % self._nmax
            self._data[i] = data
            self._streams[i] = stream
            self._keys[i] = bool(is_keyframe)
            self._pts[i] = pts_us
            self._offs[i] = offset
            self._lens[i] = size
            self._tail = seq + 1
            self._held_bytes += size
            if stream == VIDEO:
                self._video_held += 1
                if key:
                    self._kseq[self._ktail % self._nmax] = seq
                    self._ktail += 1
                    self._last_key_seq = seq
                    self._gop_open = True
            if self._consuming:
                if self._waiters:
                    self._readable.notify()
            else:
                self._age()

    def _drop(self, size: int) -> None:
        if self._consuming:
            self._overrun_units += 1
            self._overrun_bytes += size
        else:
            self._skipped_units += 1

    def _space_for(self, size: int) -> int:
        """Offset where ``size`` bytes fit contiguously without touching held AUs, or -1."""
        if self._tail == self._head:
            return 0
        oldest = self._offs[self._head % self._nmax]
        j = (self._tail - 1) % self._nmax
        newest = self._offs[j]
        end = newest + self._lens[j]
        if newest >= oldest:  # held bytes run from oldest to end, free space on both sides
            if size <= self._cap - end:
                return end
            return 0 if size <= oldest else -1
        return end if size <= oldest - end else -1  # wrapped: free space is one gap

    def _evict_one(self) -> None:
        seq = self._head
        i = seq % self._nmax
        size = self._lens[i]
        self._data[i] = None
        if self._streams[i] == VIDEO:
            self._video_held -= 1
            if self._keys[i]:
                self._khead += 1
            if seq >= self._last_key_seq:
                self._gop_open = False
        self._head = seq + 1
        self._held_bytes -= size
        if self._consuming:
            self._overrun_units += 1
            self._overrun_bytes += size
        else:
            self._evicted_units += 1
            self._evicted_bytes += size

    def _next_keyframe_after_head(self) -> int:
        """Seq of the first held keyframe after the oldest AU, or -1."""
        k = self._khead
        if k < self._ktail and self._kseq[k % self._nmax] == self._head:
            k += 1
        return self._kseq[k % self._nmax] if k < self._ktail else -1

    def _evict_group(self) -> None:
        if self._video_held == 0:
            self._evict_one()
            return
        stop = self._next_keyframe_after_head()
        if stop < 0:
            stop = self._tail
        while self._head < stop:
            self._evict_one()

    def _age(self) -> None:
        """Buffering only: start at a keyframe, then keep at least ``seconds`` of video."""
        nmax = self._nmax
        if self._khead < self._ktail:
            first_key = self._kseq[self._khead % nmax]
            while self._head < first_key:
                self._evict_one()
            newest = self._last_pts[VIDEO]
            assert newest is not None
            while self._ktail - self._khead >= 2:
                second_key = self._kseq[(self._khead + 1) % nmax]
                if newest - self._pts[second_key % nmax] < self._seconds_us:
                    break
                while self._head < second_key:
                    self._evict_one()
        elif self._video_held:
            while self._tail > self._head:  # video with no keyframe to start from
                self._evict_one()
        else:
            newest_audio = self._last_pts[AUDIO]
            while (self._tail - self._head >= 2 and newest_audio is not None
                   and newest_audio - self._pts[(self._head + 1) % nmax] >= self._seconds_us):
                self._evict_one()

    # -- consumer -----------------------------------------------------------------------------

    def begin_consume(self) -> None:
        """Switch to consume mode (recording): stop ageing; pop()/drain() take AUs from the oldest."""
        with self._lock:
            if self._closed:
                raise ring_closed_error()
            if self._consuming:
                raise RingStateError("begin_consume() called while already consuming")
            self._consuming = True

    def end_consume(self) -> None:
        """Back to buffering: AUs not taken stay, trimmed to start at a keyframe, and age again."""
        with self._lock:
            if not self._consuming:
                raise RingStateError("end_consume() called while not consuming")
            self._consuming = False
            self._age()

    def pop(self, timeout: float | None = None) -> AccessUnit | None:
        """Take the oldest AU, waiting up to ``timeout`` seconds (None: forever) for one.

        Returns None on timeout, or when the ring is closed and empty (see ``closed``).
        ``timeout`` must be None or a number >= 0 (NaN and negative numbers are refused); any
        larger number, even infinity, is honoured.
        """
        seconds = _check_timeout(timeout)
        with self._lock:
            if not self._consuming:
                raise RingStateError("pop() needs consume mode: call begin_consume() first")
            if self._tail == self._head and not self._closed and seconds != 0:
                self._wait_readable(seconds)
            if self._tail == self._head:
                return None
            seq = self._head
            i = seq % self._nmax
            size = self._lens[i]
            stream = self._streams[i]
            data = self._data[i]
            assert data is not None
            self._data[i] = None
            unit = AccessUnit(stream, self._pts[i], self._keys[i], data)
            if stream == VIDEO:
                self._video_held -= 1
                if self._keys[i]:
                    self._khead += 1
            self._head = seq + 1
            self._held_bytes -= size
            self._consumed_units += 1
            self._consumed_bytes += size
            return unit

    def _wait_readable(self, seconds: float | None) -> None:
        """Wait (lock held) for an AU or close(), up to ``seconds`` (None: forever)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        self._waiters += 1
        try:
            while self._tail == self._head and not self._closed:
                if deadline is None:
                    self._readable.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._readable.wait(min(remaining, MAX_WAIT_S))
        finally:
            self._waiters -= 1

    def drain(self) -> Iterator[AccessUnit]:
        """Yield every AU held, oldest first, until the ring is momentarily empty (consume mode)."""
        while True:
            unit = self.pop(timeout=0)
            if unit is None:
                return
            yield unit

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Refuse further pushes. AUs held can still be popped; then pop() returns None. Idempotent."""
        with self._lock:
            self._closed = True
            self._readable.notify_all()

    def __enter__(self) -> PreEventRing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stats(self) -> RingStats:
        """A consistent snapshot of the ring's counters."""
        with self._lock:
            units = self._tail - self._head
            span = 0
            if units:
                span = (self._pts[(self._tail - 1) % self._nmax]
                        - self._pts[self._head % self._nmax])
            return RingStats(
                units, self._held_bytes, self._video_held, self._ktail - self._khead, span,
                self._pushed_units, self._pushed_bytes, self._consumed_units, self._consumed_bytes,
                self._evicted_units, self._evicted_bytes, self._skipped_units,
                self._overrun_units, self._overrun_bytes,
            )

    def __repr__(self) -> str:
        with self._lock:
            mode = "closed" if self._closed else "consuming" if self._consuming else "buffering"
            units = self._tail - self._head
        return (f"<PreEventRing {mode} seconds={self._seconds:g} "
                f"capacity_bytes={self._cap} units={units}>")
