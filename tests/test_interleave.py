"""The pts interleaver: streams ordered together, each stream's order kept, nothing lost."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from recorder import AUDIO, VIDEO, AccessUnit
from recorder.storage.interleave import PtsInterleaver


def unit(stream: int, pts: int) -> AccessUnit:
    return AccessUnit(stream, pts, stream == VIDEO, bytes([stream]))


def test_audio_that_arrives_before_an_earlier_keyframe_is_released_after_it() -> None:
    mux = PtsInterleaver()
    out = []
    out += mux.push(unit(AUDIO, 1_010))  # captured after the keyframe, arrived first
    out += mux.push(unit(VIDEO, 1_000))
    out += mux.push(unit(AUDIO, 1_031))
    out += mux.push(unit(VIDEO, 1_033))
    out += mux.flush()
    assert [u.pts_us for u in out] == [1_000, 1_010, 1_031, 1_033]


def test_a_silent_stream_holds_the_other_only_for_max_wait() -> None:
    mux = PtsInterleaver(max_wait_us=100)
    released = []
    for pts in range(0, 300, 10):
        released += mux.push(unit(VIDEO, pts))
    assert [u.pts_us for u in released] == list(range(0, 200, 10))
    assert len(mux) == 10


def test_video_only_passes_through_when_only_video_is_interleaved() -> None:
    mux = PtsInterleaver(frozenset({VIDEO}))
    assert mux.push(unit(VIDEO, 5)) == [unit(VIDEO, 5)]
    assert mux.push(unit(AUDIO, 1)) == [unit(AUDIO, 1)]


arrivals = st.lists(st.tuples(st.sampled_from([VIDEO, AUDIO]), st.integers(1, 40_000)), max_size=200)


@settings(max_examples=300, deadline=None)
@given(steps=arrivals, max_wait=st.integers(0, 100_000))
def test_order_is_kept_per_stream_nothing_is_lost_and_both_streams_are_merged_by_pts(
        steps: list[tuple[int, int]], max_wait: int) -> None:
    mux = PtsInterleaver(max_wait_us=max_wait)
    clock = {VIDEO: 0, AUDIO: 0}
    pushed: list[AccessUnit] = []
    out: list[AccessUnit] = []
    for stream, step in steps:
        clock[stream] += step
        pushed.append(unit(stream, clock[stream]))
        released = mux.push(pushed[-1])
        # nothing released is later than anything still held
        if released and mux.pending():
            assert released[-1].pts_us <= min(u.pts_us for u in mux.pending())
        assert [u.pts_us for u in released] == sorted(u.pts_us for u in released)
        out += released
    out += mux.flush()
    assert sorted(out, key=id) == sorted(pushed, key=id)
    for stream in (VIDEO, AUDIO):
        mine = [u.pts_us for u in out if u.stream == stream]
        assert mine == sorted(mine)
