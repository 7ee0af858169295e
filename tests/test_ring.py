"""Behaviour of the pre-event ring, run against both implementations (ids native and pure)."""

from __future__ import annotations

import array
import os
import sys
import threading
import time
from types import ModuleType
from typing import Any

import pytest

from recorder import AUDIO, VIDEO, AccessUnit
from recorder.errors import (
    AccessUnitTooLargeError,
    EmptyAccessUnitError,
    InvalidStreamError,
    NonMonotonicPtsError,
    PayloadTypeError,
    RingClosedError,
    RingStateError,
)

FRAME_US = 33_333  # 30 fps
AAC_US = 21_333  # 1024 samples at 48 kHz


def payload(tag: int, size: int) -> bytes:
    """Distinct, checkable bytes for AU number ``tag``."""
    pattern = tag.to_bytes(4, "little")
    return (pattern * (size // 4 + 1))[:size]


def push_video(ring: Any, frames: range, gop: int, size: int = 100) -> list[AccessUnit]:
    """Push frames numbered ``frames`` at 30 fps with a keyframe every ``gop``; return them."""
    pushed = []
    for n in frames:
        unit = AccessUnit(VIDEO, n * FRAME_US, n % gop == 0, payload(n, size))
        ring.push(*unit)
        pushed.append(unit)
    return pushed


def take_all(ring: Any) -> list[AccessUnit]:
    if not ring.consuming:
        ring.begin_consume()
    return list(ring.drain())


# -- buffering: duration, keyframes, bytes -----------------------------------------------------


def test_drain_yields_everything_from_the_oldest_keyframe_in_push_order(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=10, capacity_bytes=1 << 20)
    pushed = push_video(ring, range(45), gop=15)
    assert take_all(ring) == pushed


def test_drained_units_are_bytes_equal_to_what_was_pushed(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=10, capacity_bytes=1 << 16)
    ring.push(VIDEO, 0, True, bytearray(b"\x00\x00\x00\x01\x65key"))
    ring.push(VIDEO, FRAME_US, False, memoryview(b"\x00\x00\x01\x41delta"))
    ring.push(AUDIO, 5, True, array.array("h", [1, -1, 2]))
    units = take_all(ring)
    assert [u.payload for u in units] == [b"\x00\x00\x00\x01\x65key", b"\x00\x00\x01\x41delta",
                                          array.array("h", [1, -1, 2]).tobytes()]
    assert all(type(u.payload) is bytes for u in units)


def test_keeps_at_least_seconds_of_video_and_at_most_one_gop_more(ring_impl: ModuleType) -> None:
    gop = 30
    ring = ring_impl.PreEventRing(seconds=3, capacity_bytes=1 << 22)
    push_video(ring, range(600), gop=gop)
    units = take_all(ring)
    span_us = units[-1].pts_us - units[0].pts_us
    assert units[0].is_keyframe
    assert 3_000_000 <= span_us < 3_000_000 + gop * FRAME_US
    assert units[-1].pts_us == 599 * FRAME_US


def test_byte_cap_evicts_whole_gops_so_the_oldest_video_is_a_keyframe(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=5_000)
    pushed = push_video(ring, range(200), gop=10, size=97)
    units = take_all(ring)
    assert units[0].is_keyframe
    assert sum(len(u.payload) for u in units) <= 5_000
    assert units == pushed[-len(units):]
    stats = ring.stats()
    assert stats.evicted_units + stats.consumed_units == 200
    assert stats.overrun_units == 0


def test_max_units_bounds_the_index_like_the_byte_cap(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=100, capacity_bytes=1 << 20, max_units=25)
    push_video(ring, range(100), gop=10)
    units = take_all(ring)
    assert len(units) <= 25
    assert units[0].is_keyframe and units[-1].pts_us == 99 * FRAME_US


def test_zero_seconds_keeps_only_the_gop_in_progress(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=0, capacity_bytes=1 << 20)
    pushed = push_video(ring, range(47), gop=10)
    assert take_all(ring) == pushed[40:]


def test_video_before_any_keyframe_is_skipped_while_buffering(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=5, capacity_bytes=1 << 16)
    pushed = push_video(ring, range(3, 25), gop=10)  # frames 3..9 have no keyframe
    assert ring.stats().skipped_units == 7
    assert take_all(ring) == pushed[7:]


def test_audio_older_than_the_oldest_keyframe_goes_with_it(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=0.5, capacity_bytes=1 << 20)
    for n in range(90):
        ring.push(VIDEO, n * FRAME_US, n % 15 == 0, payload(n, 50))
        ring.push(AUDIO, n * FRAME_US + 1, False, payload(1000 + n, 20))
    units = take_all(ring)
    assert units[0].stream == VIDEO and units[0].is_keyframe
    first_pts = units[0].pts_us
    assert all(u.pts_us >= first_pts for u in units)
    assert [u.stream for u in units].count(AUDIO) == [u.stream for u in units].count(VIDEO)


def test_audio_pushed_before_the_first_keyframe_is_dropped_when_video_starts(
        ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=5, capacity_bytes=1 << 16)
    for n in range(5):
        ring.push(AUDIO, n * AAC_US, False, payload(n, 10))
    ring.push(VIDEO, 200_000, True, payload(99, 10))
    units = take_all(ring)
    assert [u.stream for u in units] == [VIDEO]


def test_audio_only_pushes_are_bounded_by_audio_duration(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 20)
    for n in range(500):
        ring.push(AUDIO, n * AAC_US, False, payload(n, 300))
    units = take_all(ring)
    span = units[-1].pts_us - units[0].pts_us
    assert 1_000_000 <= span < 1_000_000 + AAC_US
    assert units[-1].payload == payload(499, 300)


def test_audio_only_with_zero_seconds_keeps_the_newest_frame(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=0, capacity_bytes=1 << 12)
    for n in range(10):
        ring.push(AUDIO, n * AAC_US, False, payload(n, 30))
    assert [u.payload for u in take_all(ring)] == [payload(9, 30)]


def test_stats_count_what_is_held(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=10, capacity_bytes=1 << 16)
    push_video(ring, range(20), gop=10, size=10)
    ring.push(AUDIO, 5, False, b"abc")
    stats = ring.stats()
    assert (stats.units, stats.bytes, stats.video_units, stats.keyframes) == (21, 203, 20, 2)
    assert stats.span_us == 5 - 0
    assert (stats.pushed_units, stats.pushed_bytes) == (21, 203)
    assert len(ring) == 21


# -- wrap-around ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 33, 64])
def test_wrap_around_at_every_offset_keeps_bytes_and_keyframes(ring_impl: ModuleType,
                                                               size: int) -> None:
    capacity = 128
    for start in range(capacity - size + 1):
        ring = ring_impl.PreEventRing(seconds=1000, capacity_bytes=capacity)
        pushed = []
        if start:
            ring.push(VIDEO, 0, True, payload(0, start))  # moves the write offset to `start`
            pushed.append(AccessUnit(VIDEO, 0, True, payload(0, start)))
        for n in range(1, 12):
            unit = AccessUnit(VIDEO, n * FRAME_US, n % 3 == 1, payload(n, size))
            ring.push(*unit)
            pushed.append(unit)
        units = take_all(ring)
        assert units, f"start={start}"
        assert units[0].is_keyframe, f"start={start}"
        assert units == pushed[-len(units):], f"start={start}"
        assert units[-1] == pushed[-1]


def test_output_after_many_wraps_starts_at_a_keyframe_with_whole_gops(ring_impl: ModuleType) -> None:
    # picamera2 #226: a dump after the buffer had wrapped was unplayable.
    ring = ring_impl.PreEventRing(seconds=1000, capacity_bytes=10_000)
    sizes = [2_000 if n % 8 == 0 else 150 + (n * 37) % 400 for n in range(1000)]
    pushed = [AccessUnit(VIDEO, n * FRAME_US, n % 8 == 0, payload(n, sizes[n]))
              for n in range(1000)]
    for unit in pushed:
        ring.push(*unit)
    units = take_all(ring)
    assert units[0].is_keyframe
    assert units == pushed[-len(units):]  # contiguous: nothing missing inside a GOP


# -- consume mode (recording) ------------------------------------------------------------------


def test_consume_mode_takes_live_units_without_gap_or_duplicate(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 20)
    pushed = push_video(ring, range(60), gop=15)
    ring.begin_consume()
    got = list(ring.drain())
    assert got[0].is_keyframe
    pre = pushed.index(got[0])
    live = push_video(ring, range(60, 90), gop=15)
    got += list(ring.drain())
    assert got == pushed[pre:] + live


def test_nothing_ages_while_consuming(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=0.1, capacity_bytes=1 << 20)
    ring.begin_consume()
    pushed = push_video(ring, range(100), gop=10)
    assert list(ring.drain()) == pushed
    assert ring.stats().evicted_units == 0


def test_writer_falling_behind_counts_overrun_and_resumes_at_a_keyframe(
        ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1_000)
    ring.begin_consume()
    pushed = push_video(ring, range(40), gop=5, size=100)  # 4000 bytes into a 1000-byte ring
    stats = ring.stats()
    assert stats.overrun_units > 0 and stats.overrun_bytes == stats.overrun_units * 100
    got = list(ring.drain())
    assert got[0].is_keyframe
    assert got == pushed[-len(got):]
    assert stats.overrun_units + len(got) == 40


def test_delta_frames_after_their_keyframe_was_overrun_are_dropped_and_counted(
        ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=250)
    ring.begin_consume()
    ring.push(VIDEO, 0, True, payload(0, 100))
    ring.push(VIDEO, FRAME_US, False, payload(1, 100))
    ring.push(VIDEO, 2 * FRAME_US, False, payload(2, 100))  # evicts the open GOP: lost
    ring.push(VIDEO, 3 * FRAME_US, False, payload(3, 100))  # no keyframe to decode from
    ring.push(VIDEO, 4 * FRAME_US, True, payload(4, 100))
    stats = ring.stats()
    assert stats.overrun_units == 4 and stats.overrun_bytes == 400
    assert [u.pts_us for u in ring.drain()] == [4 * FRAME_US]


def test_units_left_at_end_consume_are_trimmed_to_a_keyframe_and_age_again(
        ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=10, capacity_bytes=1 << 16)
    ring.begin_consume()
    pushed = push_video(ring, range(25), gop=10)
    assert ring.pop(timeout=10) == pushed[0]
    ring.end_consume()
    assert take_all(ring) == pushed[10:]


def test_pop_waits_for_a_producer_thread(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 16)
    ring.begin_consume()
    timer = threading.Timer(0.05, ring.push, (VIDEO, 0, True, b"late"))
    timer.start()
    started = time.monotonic()
    unit = ring.pop(timeout=10)
    timer.join(10)
    assert unit == AccessUnit(VIDEO, 0, True, b"late")
    # woken by the push, not by the timeout running out (a lost notify would take 10 s)
    assert time.monotonic() - started < 5


def test_pop_returns_none_after_its_timeout(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 16)
    ring.begin_consume()
    assert ring.pop(timeout=0.01) is None
    assert ring.pop(timeout=0) is None


@pytest.mark.parametrize("timeout", [float("nan"), -1, -0.001, float("-inf")])
def test_pop_refuses_a_nan_or_negative_timeout(ring_impl: ModuleType, timeout: float) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 16)
    ring.begin_consume()
    ring.push(VIDEO, 0, True, b"held")
    with pytest.raises(ValueError, match=r"timeout must be None or a number >= 0, not"):
        ring.pop(timeout=timeout)
    assert ring.pop(timeout=0) == AccessUnit(VIDEO, 0, True, b"held")  # the refusal took nothing
    # on the empty ring, where a wait would begin: refused at once, not waited on (in a thread of
    # its own, so that a wait fails the test instead of hanging it)
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(ring.pop(timeout=timeout))
        except BaseException as exc:  # checked below
            outcome.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(10)
    assert not caller.is_alive(), f"pop(timeout={timeout}) waited instead of refusing"
    assert len(outcome) == 1 and isinstance(outcome[0], ValueError), outcome


@pytest.mark.parametrize("timeout", ["1", b"1", [1]])
def test_pop_refuses_a_timeout_that_is_not_a_number(ring_impl: ModuleType, timeout: object) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 16)
    ring.begin_consume()
    with pytest.raises(TypeError, match="timeout must be None or a number, not"):
        ring.pop(timeout=timeout)


@pytest.mark.parametrize("timeout", [1e300, float("inf"), 2.0**63, 1e10])
def test_pop_with_a_huge_timeout_waits_until_a_push_wakes_it(ring_impl: ModuleType,
                                                             timeout: float) -> None:
    """A timeout far beyond any clock (or time_t) still means: wait, and return what comes."""
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 16)
    ring.begin_consume()
    outcome: list[object] = []

    def consume() -> None:
        try:
            outcome.append(ring.pop(timeout=timeout))
        except BaseException as exc:  # reported below, not lost in the thread
            outcome.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    consumer.join(0.3)
    assert consumer.is_alive(), f"pop(timeout={timeout}) returned early: {outcome}"
    # pushed from a thread of its own, that takes the ring's lock (the native one with the GIL
    # held): a pop() spinning on that lock, or on the GIL, fails the test, not hangs it
    woken = payload(1, 8192)
    producer = threading.Thread(target=ring.push, args=(VIDEO, 0, True, woken), daemon=True)
    producer.start()
    producer.join(30)
    consumer.join(30)
    assert not producer.is_alive(), "push() could not take the ring's lock from a waiting pop()"
    assert not consumer.is_alive(), "the push did not wake pop()"
    assert outcome == [AccessUnit(VIDEO, 0, True, woken)]


def test_len_and_stats_stay_consistent_while_threads_push_and_pop(ring_impl: ModuleType) -> None:
    """len() is read under the ring's lock: never torn, never negative, never above max_units."""
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 16, max_units=64)
    ring.begin_consume()
    stop = threading.Event()

    def produce() -> None:
        pts = 0
        while not stop.is_set():
            pts += 1
            ring.push(AUDIO, pts, False, b"a")

    def consume() -> None:
        while not stop.is_set():
            ring.pop(timeout=0.01)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(5_000):
            assert 0 <= len(ring) <= 64
            stats = ring.stats()
            assert 0 <= stats.units <= 64
            assert stats.units == stats.pushed_units - stats.consumed_units - stats.overrun_units
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert ring.stats().pushed_units > 0


def test_two_producers_and_one_consumer_lose_nothing_when_room_suffices(
        ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 24)
    ring.begin_consume()
    video = [AccessUnit(VIDEO, n * FRAME_US, n % 30 == 0, payload(n, 5_000 + n)) for n in range(600)]
    audio = [AccessUnit(AUDIO, n * AAC_US, False, payload(n, 300)) for n in range(900)]

    def produce(units: list[AccessUnit]) -> None:
        for unit in units:
            ring.push(*unit)

    producers = [threading.Thread(target=produce, args=(units,)) for units in (video, audio)]
    for thread in producers:
        thread.start()
    got: list[AccessUnit] = []
    while len(got) < len(video) + len(audio):
        unit = ring.pop(timeout=10)
        assert unit is not None, "consumer starved"
        got.append(unit)
    for thread in producers:
        thread.join(10)
    assert not any(thread.is_alive() for thread in producers)
    assert [u for u in got if u.stream == VIDEO] == video
    assert [u for u in got if u.stream == AUDIO] == audio
    assert ring.stats().overrun_units == 0


# -- payloads: held, not copied -------------------------------------------------------------------


def test_a_bytes_payload_is_held_and_popped_as_the_very_object(ring_impl: ModuleType) -> None:
    """bytes cannot change: the ring keeps the caller's object (no copy) and hands it back."""
    ring = ring_impl.PreEventRing(seconds=10, capacity_bytes=1 << 16)
    key, delta = payload(1, 500), payload(2, 300)
    ring.push(VIDEO, 0, True, key)
    ring.push(VIDEO, FRAME_US, False, delta)
    units = take_all(ring)
    assert units[0].payload is key and units[1].payload is delta


def test_any_other_payload_is_copied_once_when_pushed(ring_impl: ModuleType) -> None:
    """A bytearray (or a view of one, a subclass of bytes) may change after push(): what pops is
    what was pushed, as exact ``bytes``."""

    class Tagged(bytes):
        pass

    ring = ring_impl.PreEventRing(seconds=10, capacity_bytes=1 << 16)
    source = bytearray(payload(1, 5000))  # above the native twin's GIL-release size
    small = bytearray(b"\x00\x00\x01\x41delta")
    tagged = Tagged(b"tagged")
    ring.push(VIDEO, 0, True, source)
    ring.push(VIDEO, FRAME_US, False, memoryview(small))
    ring.push(AUDIO, 0, True, tagged)
    source[:] = bytes(len(source))
    small[0] = 0xFF
    units = take_all(ring)
    assert [u.payload for u in units] == [payload(1, 5000), b"\x00\x00\x01\x41delta", b"tagged"]
    assert all(type(u.payload) is bytes for u in units)


def test_the_ring_lets_go_of_every_payload_it_no_longer_holds(ring_impl: ModuleType) -> None:
    """Evicted while buffering, aged by end_consume(), overrun while consuming, popped, dropped,
    or held when the ring goes: the ring keeps no reference to any of them afterwards."""
    frames = [payload(n, 200) for n in range(8)]

    def counts() -> list[int]:
        return [sys.getrefcount(frame) for frame in frames]

    baseline = counts()

    def extra() -> list[int]:
        return [now - before for now, before in zip(counts(), baseline)]

    ring = ring_impl.PreEventRing(seconds=0, capacity_bytes=500, max_units=4)
    ring.push(VIDEO, 0, True, frames[0])
    ring.push(VIDEO, FRAME_US, True, frames[1])  # seconds=0: frames[0]'s GOP is evicted
    assert extra()[:2] == [0, 1]
    ring.begin_consume()
    ring.push(VIDEO, 2 * FRAME_US, True, frames[2])
    ring.push(VIDEO, 3 * FRAME_US, True, frames[3])  # 800 bytes > 500: frames[1] overrun
    assert extra()[:4] == [0, 0, 1, 1]
    popped = ring.pop(timeout=0)
    assert popped is not None and popped.payload is frames[2]
    assert extra()[2] == 1  # the popped unit's, not the ring's
    del popped
    ring.push(VIDEO, 4 * FRAME_US, True, frames[4])
    ring.end_consume()  # ages: only frames[4]'s GOP stays
    assert extra()[:5] == [0, 0, 0, 0, 1]
    ring.push(VIDEO, 5 * FRAME_US, True, frames[5])
    ring.push(VIDEO, 6 * FRAME_US, False, frames[6])
    assert extra()[4:7] == [0, 1, 1]
    with pytest.raises(NonMonotonicPtsError):
        ring.push(VIDEO, 6 * FRAME_US, False, frames[7])  # refused: not held
    ring.close()
    assert extra()[7] == 0
    del ring  # the ring's last references go with it
    assert extra() == [0] * 8


def test_a_dropped_unit_is_not_held(ring_impl: ModuleType) -> None:
    delta = payload(3, 100)
    before = sys.getrefcount(delta)
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 16)
    ring.push(VIDEO, 0, False, delta)  # no keyframe to decode it from: skipped
    assert ring.stats().skipped_units == 1 and len(ring) == 0
    assert sys.getrefcount(delta) == before


def test_capacity_bounds_what_is_held_and_is_not_allocated_up_front(ring_impl: ModuleType) -> None:
    """capacity_bytes is the most the ring may hold, not memory taken at construction; a capacity
    beyond the machine's physical memory is refused as one that could not be allocated."""
    if not hasattr(os, "sysconf") or "SC_PHYS_PAGES" not in os.sysconf_names:
        pytest.skip("the system does not say how much physical memory it has")
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    with pytest.raises(MemoryError, match=f"cannot allocate a ring of {memory + 1} bytes"):
        ring_impl.PreEventRing(seconds=1, capacity_bytes=memory + 1, max_units=16)
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=memory, max_units=16)
    assert ring.capacity_bytes == memory  # would have taken all the memory if allocated


# -- start/stop/close (picamera2 failure modes) ------------------------------------------------


def test_begin_consume_twice_is_refused(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    ring.begin_consume()
    with pytest.raises(RingStateError, match="already consuming"):
        ring.begin_consume()


def test_double_stop_is_refused_and_changes_nothing(ring_impl: ModuleType) -> None:
    # picamera2 #572: a second stop() wrote extra data.
    ring = ring_impl.PreEventRing(seconds=10, capacity_bytes=1 << 16)
    push_video(ring, range(20), gop=10)
    ring.begin_consume()
    list(ring.drain())
    ring.end_consume()
    before = ring.stats()
    with pytest.raises(RingStateError, match="not consuming"):
        ring.end_consume()
    assert ring.stats() == before


def test_pop_while_buffering_is_refused(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    with pytest.raises(RingStateError, match="begin_consume"):
        ring.pop()
    with pytest.raises(RingStateError):
        next(ring.drain())


def test_close_flushes_everything_held_then_signals_the_end(ring_impl: ModuleType) -> None:
    # picamera2 #1403: output missing after close. Closing must not lose what the writer has not
    # taken yet: pop() keeps returning it, then None.
    ring = ring_impl.PreEventRing(seconds=10, capacity_bytes=1 << 16)
    ring.begin_consume()
    pushed = push_video(ring, range(12), gop=6)
    ring.close()
    assert ring.closed
    with pytest.raises(RingClosedError):
        ring.push(VIDEO, 10**9, True, b"after close")
    got = []
    while (unit := ring.pop()) is not None:  # no timeout: must not block once closed
        got.append(unit)
    assert got == pushed
    ring.close()  # idempotent


def test_close_wakes_a_blocked_consumer(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    ring.begin_consume()
    result: list[object] = []
    consumer = threading.Thread(target=lambda: result.append(ring.pop()))
    consumer.start()
    threading.Timer(0.05, ring.close).start()
    consumer.join(10)
    assert not consumer.is_alive() and result == [None]


def test_context_manager_closes(ring_impl: ModuleType) -> None:
    with ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10) as ring:
        ring.push(VIDEO, 0, True, b"k")
    assert ring.closed
    with pytest.raises(RingClosedError):
        ring.begin_consume()


# -- errors ---------------------------------------------------------------------------------


def test_too_large_an_access_unit_is_refused_with_its_size(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=100)
    with pytest.raises(AccessUnitTooLargeError, match=r"101 bytes .* larger than the whole ring \(100"):
        ring.push(VIDEO, 0, True, bytes(101))
    ring.push(VIDEO, 0, True, bytes(100))  # exactly the arena fits


def test_non_monotonic_pts_is_refused_per_stream(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    ring.push(VIDEO, 1000, True, b"k")
    ring.push(AUDIO, 10, False, b"a")  # each stream has its own order
    with pytest.raises(NonMonotonicPtsError, match="pts_us=1000 on stream 0 .* previous pts_us=1000"):
        ring.push(VIDEO, 1000, False, b"p")
    with pytest.raises(NonMonotonicPtsError, match="stream 1"):
        ring.push(AUDIO, 9, False, b"a")
    assert ring.stats().pushed_units == 2


@pytest.mark.parametrize("bad", ["text", 12, None, [1, 2], object()])
def test_a_payload_that_is_not_bytes_like_is_refused(ring_impl: ModuleType, bad: object) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    with pytest.raises(PayloadTypeError, match=f"not {type(bad).__name__}"):
        ring.push(VIDEO, 0, True, bad)


def test_a_non_contiguous_payload_is_refused(ring_impl: ModuleType) -> None:
    np = pytest.importorskip("numpy")
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    with pytest.raises(PayloadTypeError, match="contiguous"):
        ring.push(VIDEO, 0, True, np.arange(16, dtype=np.uint8)[::2])


def test_empty_access_unit_is_refused(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    with pytest.raises(EmptyAccessUnitError, match="empty access unit on stream 0 at pts_us=7"):
        ring.push(VIDEO, 7, True, b"")


@pytest.mark.parametrize("stream", [-1, 2, 7])
def test_unknown_stream_is_refused(ring_impl: ModuleType, stream: int) -> None:
    ring = ring_impl.PreEventRing(seconds=1, capacity_bytes=1 << 10)
    with pytest.raises(InvalidStreamError, match=f"not {stream}"):
        ring.push(stream, 0, True, b"x")


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"seconds": -1, "capacity_bytes": 10}, ValueError, "seconds must be finite and >= 0"),
    ({"seconds": float("nan"), "capacity_bytes": 10}, ValueError, "seconds must be finite"),
    ({"seconds": "30", "capacity_bytes": 10}, TypeError, "seconds must be a number"),
    ({"seconds": 1, "capacity_bytes": 0}, ValueError, "capacity_bytes must be >= 1"),
    ({"seconds": 1, "capacity_bytes": 1.5}, TypeError, "capacity_bytes must be an int"),
    ({"seconds": 1, "capacity_bytes": 10, "max_units": 1}, ValueError, "max_units must be >= 2"),
])
def test_bad_construction_arguments_name_the_argument(ring_impl: ModuleType, kwargs: dict[str, Any],
                                                      error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        ring_impl.PreEventRing(**kwargs)


@pytest.mark.parametrize(("capacity_bytes", "max_units"), [
    (1024, 2**61), (1024, 2**62 + 1), (1024, 2**64 + 7), (1024, 2**100),
    (2**62, 16), (2**64, 16), (2**100, 16),
])
def test_a_ring_too_large_to_allocate_is_refused_with_its_size(
        ring_impl: ModuleType, capacity_bytes: int, max_units: int) -> None:
    """Sizes whose byte counts overflow (or cannot be allocated) fail cleanly, never a tiny ring."""
    with pytest.raises(MemoryError, match=(f"cannot allocate a ring of {capacity_bytes} bytes "
                                           f"indexing {max_units} access units")):
        ring_impl.PreEventRing(seconds=1, capacity_bytes=capacity_bytes, max_units=max_units)


def test_properties_and_repr(ring_impl: ModuleType) -> None:
    ring = ring_impl.PreEventRing(seconds=30, capacity_bytes=4096, max_units=64)
    assert (ring.seconds, ring.capacity_bytes, ring.max_units) == (30.0, 4096, 64)
    assert not ring.consuming and not ring.closed
    assert repr(ring) == "<PreEventRing buffering seconds=30 capacity_bytes=4096 units=0>"
