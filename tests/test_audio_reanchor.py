"""A starved audio thread must not end a recording (found by the soak test, issue 13).

Under CPU load the capture thread reads blocks late for a whole window, so the sample clock
re-anchors forward; when it catches up, the blocks arrive "early" and it re-anchors back, clamped
to one microsecond after the last block. The AAC encoder then stamped two consecutive frames one
microsecond apart: less than one tick of the audio track's timescale (20.8 µs at 48 kHz), so the
muxer refused the second (MuxTimestampError) and the writer stopped the recording on its own,
with two tracebacks in the log. The encoder now keeps its frames at least one tick apart.
"""

from __future__ import annotations

import numpy as np

from support import media

from recorder.capture.audio import AacEncoder
from recorder.capture.audio.sample_clock import SampleClock
from recorder.storage.mux import FragmentedMp4Muxer

RATE = 48_000
BLOCK = 1024
BLOCK_US = BLOCK * 1_000_000 // RATE
TICK_US = -(-1_000_000 // RATE)  # one tick of a 48 kHz timescale, rounded up: 21 µs


def starved_then_caught_up() -> list[int]:
    """Arrival times: 4 blocks on time, 10 read 60 ms late, then 6 on time again."""
    start = 1_000_000 + BLOCK_US
    late = [0] * 4 + [60_000] * 10 + [0] * 6
    return [start + n * BLOCK_US + delay for n, delay in enumerate(late)]


def stamped_units() -> list[tuple[int, bytes]]:
    now = [0]
    clock = SampleClock(RATE, clock_us=lambda: now[0])
    encoder = AacEncoder(RATE, 1)
    tone = (3000 * np.sin(np.arange(BLOCK) / 8)).astype("<i2").tobytes()
    units = []
    for arrival in starved_then_caught_up():
        now[0] = arrival
        units += encoder.encode(tone, clock.stamp(BLOCK))
    assert clock.resyncs == 2  # forward while starved, back when it caught up
    return [(unit.pts_us, unit.payload) for unit in units + encoder.flush()]


def test_aac_frames_stay_one_tick_apart_when_the_clock_reanchors_back() -> None:
    stamps = [pts for pts, _ in stamped_units()]
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert min(steps) >= TICK_US, steps


def test_the_muxer_takes_the_audio_of_a_starved_thread() -> None:
    """The muxer as the writer drives it: video from a keyframe first, then the audio."""
    config, _ = media.aac(seconds=1.0)
    video = media.h264(160, 120, fps=15.0, frames=8, gop=8, start_us=1_000_000)
    muxer = FragmentedMp4Muxer(config, segment_seconds=30.0, fragment_seconds=2.0)
    units = sorted([(u.pts_us, 0, u.is_keyframe, u.payload) for u in video]
                   + [(pts, 1, True, payload) for pts, payload in stamped_units()])
    for pts, stream, key, payload in units:
        muxer.push(stream, pts, key, payload)  # raised MuxTimestampError before
    assert muxer.close() is not None
