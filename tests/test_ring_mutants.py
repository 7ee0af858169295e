"""The pre-event ring's exact rules, pinned so that a one-token change to either twin fails.

Written against the survivors of a mutation run (mutmut) of ``recorder/ring/_ring_py.py``: the
exact ``seconds`` boundary of ageing, ``stats()``/``len()`` after eviction and pop, eviction by
bytes with audio only, payloads that fit exactly at the end of the arena or in the gap at its
start, the smallest legal rings, and the waits of pop(). Every assertion is an exact value.

Every test body runs in a thread of its own with a time limit (`bounded`): a change that makes
push() loop or pop() wait forever fails the test in seconds instead of hanging the run.
"""

from __future__ import annotations

import array
import functools
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from recorder import AUDIO, VIDEO, AccessUnit
from recorder.capture.access_unit import RingStats
from recorder.errors import (
    AccessUnitTooLargeError,
    NonMonotonicPtsError,
    PayloadTypeError,
    RingClosedError,
    RingStateError,
)

LIMIT_S = 5.0  # far above any test here (milliseconds), far below a hang


def bounded(test: Callable[..., None]) -> Callable[..., None]:
    """Run the test body in a daemon thread and fail if it has not finished in `LIMIT_S`."""
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        call_within(LIMIT_S, test, *args, **kwargs)
    return wrapper


def call_within(limit_s: float, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args)``'s result (or exception), or a failure if it blocks past ``limit_s``."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, function(*args, **kwargs)))
        except BaseException as exc:  # re-raised in the caller's thread below
            outcome.append((False, exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit_s)
    if thread.is_alive():
        pytest.fail(f"{function.__name__} still running after {limit_s} s: it hangs")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def data(tag: int, size: int) -> bytes:
    """``size`` bytes that differ for each ``tag``: an overwritten payload cannot pass."""
    return bytes((tag * 31 + i) % 251 for i in range(size))


def drain(ring: Any) -> list[tuple[int, int, bool, bytes]]:
    """Everything held, oldest first, as (stream, pts_us, is_keyframe, payload)."""
    if not ring.consuming:
        ring.begin_consume()
    return [tuple(unit) for unit in ring.drain()]


def pts_held(ring: Any) -> list[int]:
    return [unit[1] for unit in drain(ring)]


def stats(units: int = 0, bytes_: int = 0, video: int = 0, keys: int = 0, span: int = 0,
          pushed: tuple[int, int] = (0, 0), consumed: tuple[int, int] = (0, 0),
          evicted: tuple[int, int] = (0, 0), skipped: int = 0,
          overrun: tuple[int, int] = (0, 0)) -> RingStats:
    return RingStats(units, bytes_, video, keys, span, *pushed, *consumed, *evicted, skipped,
                     *overrun)


# -- ageing: the exact `seconds` boundary ------------------------------------------------------


@bounded
def test_a_gop_goes_exactly_when_the_next_one_starts_seconds_before_the_newest_frame(
        ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 16)
    ring.push(VIDEO, 0, True, data(0, 10))
    ring.push(VIDEO, 500_000, True, data(1, 10))
    ring.push(VIDEO, 1_499_999, False, data(2, 10))  # 999,999 us after the second GOP: kept
    assert ring.stats() == stats(3, 30, 3, 2, 1_499_999, pushed=(3, 30))
    ring.push(VIDEO, 1_500_000, False, data(3, 10))  # exactly 1 s after it: the first GOP goes
    assert ring.stats() == stats(3, 30, 3, 1, 1_000_000, pushed=(4, 40), evicted=(1, 10))
    assert len(ring) == 3
    assert drain(ring) == [(VIDEO, 500_000, True, data(1, 10)),
                           (VIDEO, 1_499_999, False, data(2, 10)),
                           (VIDEO, 1_500_000, False, data(3, 10))]


@bounded
def test_one_push_ages_out_every_gop_that_is_old_enough_and_no_more(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=0.25, capacity_bytes=1 << 16)
    # with seconds = 10 s nothing ages; then 0.25 s: consecutive GOPs of 2 frames, 100 ms apart
    for n in range(8):  # keyframes at 0, 200, 400, 600 ms; deltas at 100, 300, 500, 700 ms
        ring.push(VIDEO, n * 100_000, n % 2 == 0, data(n, 5))
    # newest 700 ms: a GOP goes while the next starts >= 250 ms before it: 200 and 400 ms do
    # (500, 300 ms before), 600 ms does not (100 ms): GOPs at 0, 200 go, 400 stays
    assert ring.stats() == stats(4, 20, 4, 2, 300_000, pushed=(8, 40), evicted=(4, 20))
    assert pts_held(ring) == [400_000, 500_000, 600_000, 700_000]


@bounded
def test_ageing_every_other_gop_is_not_enough(ring_impl: ModuleType) -> None:
    """Keyframes only (GOPs of one frame) with seconds 0.1: exactly the frames of the last
    100 ms and the one before them stay, after every push."""
    ring = ring_impl.PreEventRing(seconds=0.1, capacity_bytes=1 << 16)
    for n in range(12):
        ring.push(VIDEO, n * 40_000, True, data(n, 3))
        held = [k for k in range(n + 1) if (n * 40_000) - (k + 1) * 40_000 < 100_000]
        assert (len(ring), ring.stats().keyframes) == (len(held), len(held)), n
    assert pts_held(ring) == [320_000, 360_000, 400_000, 440_000]


@bounded
def test_seconds_are_rounded_to_the_nearest_microsecond(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=0.0000016, capacity_bytes=1 << 10)  # 1.6 us -> 2 us
    for pts in (0, 10, 11):
        ring.push(VIDEO, pts, True, data(pts, 1))
    assert pts_held(ring) == [0, 10, 11]  # the GOP at 10 starts 1 us before 11: < 2, all stay
    ring = ring_impl.PreEventRing(seconds=0.0000016, capacity_bytes=1 << 10)
    for pts in (0, 10, 12):
        ring.push(VIDEO, pts, True, data(pts, 1))
    assert pts_held(ring) == [10, 12]  # 12 - 10 >= 2: the GOP at 0 goes; 12 - 12 < 2


@bounded
def test_audio_only_ages_one_unit_at_a_time_at_the_exact_boundary(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 16)
    for pts in (0, 500_000, 1_000_000, 1_499_999):
        ring.push(AUDIO, pts, False, data(pts % 97, 7))
    assert ring.stats() == stats(4, 28, 0, 0, 1_499_999, pushed=(4, 28))
    ring.push(AUDIO, 1_500_000, False, data(1, 7))  # 1 s after the second: the first goes
    assert ring.stats() == stats(4, 28, 0, 0, 1_000_000, pushed=(5, 35), evicted=(1, 7))
    ring.push(AUDIO, 2_500_000, False, data(2, 7))  # 1 s after 1,500,000: three go
    assert ring.stats() == stats(2, 14, 0, 0, 1_000_000, pushed=(6, 42), evicted=(4, 28))
    assert pts_held(ring) == [1_500_000, 2_500_000]


@bounded
def test_audio_pushed_as_a_keyframe_is_still_audio(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=0, capacity_bytes=1 << 10)
    ring.push(AUDIO, 0, True, b"a")
    ring.push(AUDIO, 1, True, b"b")
    assert ring.stats() == stats(1, 1, 0, 0, 0, pushed=(2, 2), evicted=(1, 1))
    assert drain(ring) == [(AUDIO, 1, True, b"b")]  # its flag is kept, it is no keyframe


@bounded
def test_video_left_without_its_keyframe_is_evicted_with_the_audio(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=10, capacity_bytes=1 << 10)
    ring.begin_consume()
    ring.push(VIDEO, 0, True, b"K")
    ring.push(AUDIO, 1, False, b"a")
    ring.push(VIDEO, 2, False, b"d")
    assert ring.pop(timeout=0) == (VIDEO, 0, True, b"K")
    ring.end_consume()  # a delta with no keyframe to start from: everything goes
    assert ring.stats() == stats(0, 0, 0, 0, 0, pushed=(3, 3), consumed=(1, 1), evicted=(2, 2))
    assert len(ring) == 0
    ring.push(VIDEO, 3, False, b"x")  # its GOP is gone: skipped
    ring.push(AUDIO, 4, False, b"y")
    assert ring.stats().skipped_units == 1
    assert drain(ring) == [(AUDIO, 4, False, b"y")]


@bounded
def test_end_consume_trims_to_the_first_held_keyframe_and_ages(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=0.05, capacity_bytes=1 << 10)
    ring.begin_consume()
    for n in range(9):  # keyframes at 0, 30, 60 ms
        ring.push(VIDEO, n * 10_000, n % 3 == 0, data(n, 2))
    assert ring.pop(timeout=0) == (VIDEO, 0, True, data(0, 2))
    assert ring.stats() == stats(8, 16, 8, 2, 70_000, pushed=(9, 18), consumed=(1, 2))
    ring.end_consume()  # 10, 20 ms go (no keyframe); the GOP at 30 ms: 80 - 60 < 50, stays
    assert ring.stats() == stats(6, 12, 6, 2, 50_000, pushed=(9, 18), consumed=(1, 2),
                                 evicted=(2, 4))
    assert pts_held(ring) == [30_000, 40_000, 50_000, 60_000, 70_000, 80_000]


# -- eviction by bytes and by count ------------------------------------------------------------


@bounded
def test_audio_only_is_evicted_one_unit_at_a_time_for_room(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=100)
    for n in range(3):
        ring.push(AUDIO, n, False, data(n, 30))
    assert ring.stats() == stats(3, 90, span=2, pushed=(3, 90))
    ring.push(AUDIO, 3, False, data(3, 30))  # 10 bytes free at the end, 0 at the start: one goes
    assert ring.stats() == stats(3, 90, span=2, pushed=(4, 120), evicted=(1, 30))
    ring.push(AUDIO, 4, False, data(4, 60))  # needs the next two to go
    assert ring.stats() == stats(2, 90, span=1, pushed=(5, 180), evicted=(3, 90))
    assert drain(ring) == [(AUDIO, 3, False, data(3, 30)), (AUDIO, 4, False, data(4, 60))]
    assert ring.stats() == stats(0, 0, pushed=(5, 180), consumed=(2, 90), evicted=(3, 90))


@bounded
def test_a_payload_that_fills_the_end_of_the_arena_exactly_evicts_nothing(
        ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=100)
    ring.push(AUDIO, 0, False, data(0, 40))
    ring.push(AUDIO, 1, False, data(1, 60))
    assert ring.stats() == stats(2, 100, span=1, pushed=(2, 100))
    assert drain(ring) == [(AUDIO, 0, False, data(0, 40)), (AUDIO, 1, False, data(1, 60))]


@bounded
def test_exact_fits_at_the_wrap_keep_every_byte(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=100)
    for n in range(3):  # offsets 0, 30, 60; 10 bytes free at the end
        ring.push(AUDIO, n, False, data(n, 30))
    ring.push(AUDIO, 3, False, data(3, 30))  # the first goes; fits exactly at 0..30
    ring.push(AUDIO, 4, False, data(4, 30))  # wrapped: the gap 30..60 after the second goes
    assert ring.stats() == stats(3, 90, span=2, pushed=(5, 150), evicted=(2, 60))
    ring.push(AUDIO, 5, False, data(5, 30))  # wrapped, no gap: the third goes, 60..90 fits
    ring.push(AUDIO, 6, False, data(6, 10))  # fits exactly in 90..100, after the newest
    assert ring.stats() == stats(4, 100, span=3, pushed=(7, 190), evicted=(3, 90))
    assert drain(ring) == [(AUDIO, n, False, data(n, 30)) for n in (3, 4, 5)] + [
        (AUDIO, 6, False, data(6, 10))]


@bounded
def test_a_payload_one_byte_too_large_for_the_gap_evicts(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=100)
    ring.push(AUDIO, 0, False, data(0, 30))
    ring.push(AUDIO, 1, False, data(1, 59))  # 11 bytes free at the end
    ring.push(AUDIO, 2, False, data(2, 11))  # exactly those
    assert ring.stats().evicted_units == 0
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=100)
    ring.push(AUDIO, 0, False, data(0, 30))
    ring.push(AUDIO, 1, False, data(1, 59))
    ring.push(AUDIO, 2, False, data(2, 12))  # one byte more: the first goes, it fits at 0
    assert ring.stats() == stats(2, 71, span=1, pushed=(3, 101), evicted=(1, 30))
    assert drain(ring) == [(AUDIO, 1, False, data(1, 59)), (AUDIO, 2, False, data(2, 12))]


@bounded
def test_a_delta_that_evicts_its_own_keyframe_is_skipped(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=150)
    ring.push(VIDEO, 0, True, data(0, 100))
    ring.push(VIDEO, 1, False, data(1, 100))  # room only by evicting its keyframe: GOP broken
    assert ring.stats() == stats(0, 0, pushed=(2, 200), evicted=(1, 100), skipped=1)
    ring.push(VIDEO, 2, True, data(2, 100))
    assert drain(ring) == [(VIDEO, 2, True, data(2, 100))]


@bounded
def test_room_is_made_by_whole_groups_up_to_the_next_keyframe(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=100)
    for n, key in enumerate([True, False, False, True, False]):
        ring.push(VIDEO, n, key, data(n, 20))
    ring.push(AUDIO, 5, False, data(5, 20))  # fills the arena (100 bytes)
    ring.push(VIDEO, 6, False, data(6, 20))  # the GOP at 0 goes: three frames
    assert ring.stats() == stats(4, 80, 3, 1, 3, pushed=(7, 140), evicted=(3, 60))
    assert pts_held(ring) == [3, 4, 5, 6]


@bounded
def test_while_consuming_room_is_made_from_the_oldest_unconsumed_up_to_a_keyframe(
        ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=100)
    ring.begin_consume()
    for n, key in enumerate([True, False, False, True, False]):
        ring.push(VIDEO, n, key, data(n, 20))
    assert ring.pop(timeout=0) == (VIDEO, 0, True, data(0, 20))  # the oldest is now a delta
    ring.push(VIDEO, 5, False, data(5, 20))  # fits at 0
    ring.push(VIDEO, 6, False, data(6, 40))  # frames 1 and 2 are lost, not frame 3's GOP
    assert ring.stats() == stats(4, 100, 4, 1, 3, pushed=(7, 160), consumed=(1, 20),
                                 overrun=(2, 40))
    assert pts_held(ring) == [3, 4, 5, 6]


@bounded
def test_max_units_holds_exactly_that_many(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=1 << 10, max_units=3)
    for n in range(10):
        ring.push(AUDIO, n, False, data(n, 4))
        assert len(ring) == min(n + 1, 3)
    assert ring.stats() == stats(3, 12, span=2, pushed=(10, 40), evicted=(7, 28))
    assert drain(ring) == [(AUDIO, n, False, data(n, 4)) for n in (7, 8, 9)]


@bounded
def test_the_index_wraps_many_times_with_keyframes_kept_in_step(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=1 << 12, max_units=5)
    for n in range(40):  # GOPs of 3: the index of units and that of keyframes both wrap
        ring.push(VIDEO, n, n % 3 == 0, data(n, 3))
    assert ring.stats() == stats(4, 12, 4, 2, 3, pushed=(40, 120), evicted=(36, 108))
    assert drain(ring) == [(VIDEO, n, n % 3 == 0, data(n, 3)) for n in (36, 37, 38, 39)]


# -- the smallest legal rings -----------------------------------------------------------------


@bounded
def test_the_smallest_legal_ring_holds_one_byte_and_two_units(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=0, capacity_bytes=1, max_units=2)
    assert (ring.seconds, ring.capacity_bytes, ring.max_units) == (0.0, 1, 2)
    ring.push(AUDIO, 0, False, b"a")
    ring.push(AUDIO, 1, False, b"b")
    assert ring.stats() == stats(1, 1, pushed=(2, 2), evicted=(1, 1))
    with pytest.raises(AccessUnitTooLargeError, match=r"access unit of 2 bytes \(stream 1, "
                                                      r"pts_us=2\) .*\(1 bytes\)"):
        ring.push(AUDIO, 2, False, b"cc")
    assert drain(ring) == [(AUDIO, 1, False, b"b")]


@bounded
def test_two_units_fill_a_ring_of_max_units_two(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=1 << 10, max_units=2)
    ring.push(VIDEO, 0, True, b"K")
    ring.push(VIDEO, 1, False, b"d")
    assert ring.stats() == stats(2, 2, 2, 1, 1, pushed=(2, 2))
    ring.push(VIDEO, 2, True, b"L")  # the GOP at 0 goes whole
    assert ring.stats() == stats(1, 1, 1, 1, 0, pushed=(3, 3), evicted=(2, 2))


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"seconds": True, "capacity_bytes": 10}, TypeError, "seconds must be a number, not bool"),
    ({"seconds": float("inf"), "capacity_bytes": 10}, ValueError, r"not inf"),
    ({"seconds": -0.000001, "capacity_bytes": 10}, ValueError, r">= 0, not -1e-06"),
    ({"seconds": 1, "capacity_bytes": True}, TypeError, "capacity_bytes must be an int, not bool"),
    ({"seconds": 1, "capacity_bytes": -5}, ValueError, "capacity_bytes must be >= 1, not -5"),
    ({"seconds": 1, "capacity_bytes": 10, "max_units": True}, TypeError,
     "max_units must be an int, not bool"),
    ({"seconds": 1, "capacity_bytes": 10, "max_units": 2.0}, TypeError,
     "max_units must be an int, not float"),
    ({"seconds": 1, "capacity_bytes": 10, "max_units": 0}, ValueError,
     "max_units must be >= 2, not 0"),
])
def test_construction_refusals_at_the_limits(ring_impl: ModuleType, kwargs: dict[str, Any],
                                             error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        ring_impl.PreEventRing(**kwargs)


@pytest.mark.parametrize(("seconds", "expected"), [(0, 0.0), (2, 2.0), (0.5, 0.5)])
def test_seconds_of_the_smallest_legal_values(ring_impl: ModuleType, seconds: float,
                                              expected: float) -> None:
    ring = ring_impl.PreEventRing(seconds=seconds, capacity_bytes=1, max_units=2)
    assert ring.seconds == expected and type(ring.seconds) is float
    assert repr(ring) == (f"<PreEventRing buffering seconds={expected:g} capacity_bytes=1 "
                          "units=0>")


def test_the_default_max_units(ring_impl: ModuleType) -> None:
    assert ring_impl.PreEventRing(seconds=1, capacity_bytes=1).max_units == 65536
    assert ring_impl.DEFAULT_MAX_UNITS == 65536


# -- push: payloads and refusals ---------------------------------------------------------------


@bounded
def test_payloads_of_every_buffer_shape_are_stored_as_their_bytes(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=1 << 10)
    grid = memoryview(bytes(range(12))).cast("B", (3, 4))  # 2-D, contiguous
    words = array.array("I", [1, 2])
    ring.push(AUDIO, 0, False, grid)
    ring.push(AUDIO, 1, False, words)
    ring.push(AUDIO, 2, False, bytearray(b"xyz"))
    assert ring.stats() == stats(3, 23, span=2, pushed=(3, 23))
    assert drain(ring) == [(AUDIO, 0, False, bytes(range(12))),
                           (AUDIO, 1, False, words.tobytes()), (AUDIO, 2, False, b"xyz")]


@bounded
def test_a_refused_push_changes_nothing(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=10)
    ring.push(VIDEO, 5, True, b"k")
    before = ring.stats()
    with pytest.raises(NonMonotonicPtsError, match="pts_us=4 on stream 0 is not after the "
                                                   "previous pts_us=5"):
        ring.push(VIDEO, 4, True, b"x")
    with pytest.raises(AccessUnitTooLargeError):
        ring.push(VIDEO, 6, True, bytes(11))
    with pytest.raises(PayloadTypeError, match="not str"):
        ring.push(VIDEO, 6, True, "text")
    assert ring.stats() == before
    ring.push(VIDEO, 6, False, b"d")  # pts 6 was not taken by the refusals
    assert ring.stats() == stats(2, 2, 2, 1, 1, pushed=(2, 2))


@bounded
def test_skipped_and_overrun_deltas_are_counted_apart(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=1 << 10)
    ring.push(VIDEO, 0, False, data(0, 7))  # before any keyframe, buffering: skipped
    assert ring.stats() == stats(pushed=(1, 7), skipped=1)
    ring.begin_consume()
    ring.push(VIDEO, 1, False, data(1, 9))  # consuming: lost, an overrun
    assert ring.stats() == stats(pushed=(2, 16), skipped=1, overrun=(1, 9))


# -- pop: waits that end, and end on time ------------------------------------------------------


@bounded
def test_pop_waits_its_timeout_out_then_returns_none(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    ring.begin_consume()
    started = time.monotonic()
    assert ring.pop(timeout=0.2) is None
    assert 0.19 <= time.monotonic() - started < 5
    started = time.monotonic()
    assert ring.pop(timeout=0) is None
    assert time.monotonic() - started < 0.1


@bounded
def test_a_push_wakes_a_waiting_pop_at_once(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    ring.begin_consume()
    timer = threading.Timer(0.05, ring.push, (AUDIO, 7, False, b"a"))
    timer.start()
    started = time.monotonic()
    assert ring.pop(timeout=3) == (AUDIO, 7, False, b"a")
    assert time.monotonic() - started < 2  # not the timeout: the push woke it
    timer.join(LIMIT_S)
    # and the wait left no waiter behind: the next one is woken the same way
    timer = threading.Timer(0.05, ring.push, (AUDIO, 8, False, b"b"))
    timer.start()
    started = time.monotonic()
    assert ring.pop(timeout=3) == (AUDIO, 8, False, b"b")
    assert time.monotonic() - started < 2
    timer.join(LIMIT_S)


@bounded
def test_close_wakes_every_waiting_consumer(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    ring.begin_consume()
    results: list[object] = []
    consumers = [threading.Thread(target=lambda: results.append(ring.pop(timeout=30)),
                                  daemon=True) for _ in range(2)]
    for consumer in consumers:
        consumer.start()
    time.sleep(0.1)
    started = time.monotonic()
    ring.close()
    for consumer in consumers:
        consumer.join(5)
    assert not any(consumer.is_alive() for consumer in consumers)
    assert results == [None, None] and time.monotonic() - started < 5
    assert ring.pop() is None  # closed and empty: no wait


@bounded
def test_a_closed_ring_still_gives_what_it_holds_then_none(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=1 << 10)
    ring.push(VIDEO, 0, True, b"K")
    ring.push(AUDIO, 1, False, b"a")
    ring.close()
    assert ring.closed and not ring.consuming
    assert repr(ring) == "<PreEventRing closed seconds=100 capacity_bytes=1024 units=2>"
    with pytest.raises(RingClosedError, match="closed"):
        ring.begin_consume()
    with pytest.raises(RingClosedError, match="accepts no more"):
        ring.push(AUDIO, 2, False, b"b")


@bounded
def test_consuming_state_repr_and_drain_stop_when_empty(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=2.5, capacity_bytes=64)
    ring.begin_consume()
    assert ring.consuming and not ring.closed
    ring.push(VIDEO, 0, True, b"K")
    ring.push(VIDEO, 1, False, b"dd")
    assert repr(ring) == "<PreEventRing consuming seconds=2.5 capacity_bytes=64 units=2>"
    assert list(ring.drain()) == [AccessUnit(VIDEO, 0, True, b"K"),
                                  AccessUnit(VIDEO, 1, False, b"dd")]
    assert list(ring.drain()) == []
    assert ring.stats() == stats(0, 0, 0, 0, 0, pushed=(2, 3), consumed=(2, 3))
    ring.end_consume()
    assert not ring.consuming
    with pytest.raises(RingStateError, match="not consuming"):
        ring.end_consume()
    ring.push(VIDEO, 2, True, b"L")  # buffering again: ages as before, and the GOP reopened
    ring.push(VIDEO, 3, False, b"m")
    assert ring.stats() == stats(2, 2, 2, 1, 1, pushed=(4, 5), consumed=(2, 3))


@bounded
def test_pop_after_eviction_returns_the_units_in_order_and_counts_them(
        ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=0, capacity_bytes=1 << 10)
    for n in range(7):  # GOPs of 3; seconds 0 keeps only the GOP in progress
        ring.push(VIDEO, n * 10, n % 3 == 0, data(n, n + 1))
    assert ring.stats() == stats(1, 7, 1, 1, 0, pushed=(7, 28), evicted=(6, 21))
    ring.begin_consume()
    ring.push(AUDIO, 61, False, b"au")
    ring.push(VIDEO, 70, False, data(7, 8))
    assert ring.pop(timeout=0) == (VIDEO, 60, True, data(6, 7))
    assert ring.stats() == stats(2, 10, 1, 0, 9, pushed=(9, 38), consumed=(1, 7),
                                 evicted=(6, 21))
    assert len(ring) == 2
    assert ring.pop(timeout=0) == (AUDIO, 61, False, b"au")
    assert ring.pop(timeout=0) == (VIDEO, 70, False, data(7, 8))
    assert ring.pop(timeout=0) is None
    assert ring.stats() == stats(0, 0, 0, 0, 0, pushed=(9, 38), consumed=(3, 17),
                                 evicted=(6, 21))


@bounded
def test_pop_while_buffering_is_refused_without_waiting(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    with pytest.raises(RingStateError, match=r"pop\(\) needs consume mode"):
        ring.pop()
    with pytest.raises(RingStateError, match="already consuming"):
        ring.begin_consume() or ring.begin_consume()


@bounded
def test_pop_timeouts_of_every_type_at_their_limits(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    ring.begin_consume()
    with pytest.raises(TypeError, match="timeout must be None or a number, not bool"):
        ring.pop(timeout=True)
    with pytest.raises(ValueError, match="timeout must be None or a number >= 0, not -1000"):
        ring.pop(timeout=-10**400)  # an int beyond any float, below zero
    ring.push(AUDIO, 0, False, b"a")
    ring.push(AUDIO, 1, False, b"b")
    assert ring.pop(timeout=10**400) == (AUDIO, 0, False, b"a")  # beyond any float: forever
    assert ring.pop(timeout=0) == (AUDIO, 1, False, b"b")


@bounded
def test_a_one_second_pop_waits_for_the_push(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    ring.begin_consume()
    timer = threading.Timer(0.05, ring.push, (AUDIO, 3, False, b"c"))
    timer.start()
    assert ring.pop(timeout=1) == (AUDIO, 3, False, b"c")
    timer.join(LIMIT_S)


@bounded
def test_repr_counts_the_units_held_after_eviction_and_pop(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=1 << 10, max_units=3)
    for n in range(5):
        ring.push(AUDIO, n, False, b"x")
    assert repr(ring) == "<PreEventRing buffering seconds=100 capacity_bytes=1024 units=3>"
    ring.begin_consume()
    ring.pop(timeout=0)
    assert repr(ring) == "<PreEventRing consuming seconds=100 capacity_bytes=1024 units=2>"
