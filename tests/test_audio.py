"""Audio without hardware: the AAC encoder decoded back, the sample clock, the synthetic and silent
sources, overflow counting with a stalled sink, the source factory, and PortAudio error mapping."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from recorder import AUDIO, AccessUnit
from recorder.capture.audio import (
    AacEncoder,
    AudioFormat,
    AudioSourceSpecError,
    MicrophoneBusyError,
    MicrophoneNotFoundError,
    NoAudio,
    NoMicrophoneError,
    SampleClock,
    SyntheticMicrophone,
    UnsupportedAudioFormatError,
    open_audio_source,
)
from recorder.capture.audio import pyaudio_source
from recorder.capture.audio.pyaudio_source import (InputDevice, PyAudioMicrophone, choose_device,
                                                   open_error)
from support.audio import RATE, best_alignment, chirp, decode, to_s16

FRAME_US = 1024 * 1_000_000 / RATE



def capture(source: Any, timeout: float = 30) -> list[AccessUnit]:
    units: list[AccessUnit] = []
    source.start(units.append)
    assert source.finished.wait(timeout), "audio threads did not finish"
    source.close()
    assert source.error is None, source.error
    return units


# -- the AAC encoder ----------------------------------------------------------------------------

def test_encoder_exposes_an_aac_lc_audio_specific_config_for_the_rate_and_channels() -> None:
    for rate, channels, index in ((48_000, 1, 3), (44_100, 2, 4), (16_000, 1, 8)):
        asc = AacEncoder(rate, channels).audio_specific_config
        object_type, frequency_index, channel_config = asc[0] >> 3, (
            (asc[0] & 7) << 1) | (asc[1] >> 7), (asc[1] >> 3) & 0xF
        assert (object_type, frequency_index, channel_config) == (2, index, channels)


def test_encoded_chirp_decodes_back_aligned_to_its_capture_time() -> None:
    encoder = AacEncoder(RATE, 1, 96_000)
    signal = chirp(RATE)  # one second
    pcm = to_s16(signal)
    units: list[AccessUnit] = []
    start_us = 5_000_000
    for first in range(0, RATE, 1000):  # blocks that are not whole AAC frames
        block = pcm[2 * first:2 * min(RATE, first + 1000)]
        units += encoder.encode(block, start_us + first * 1_000_000 // RATE)
    units += encoder.flush()
    assert all(u.stream == AUDIO and u.is_keyframe for u in units)
    # the priming frame is kept, stamped one frame before the first sample
    assert units[0].pts_us == start_us - round(FRAME_US) - 1
    assert units[1].pts_us == start_us
    decoded = decode(units, encoder.audio_specific_config)[0]
    # decoded sample k plays at units[0].pts_us + k / RATE: sample 1024 is the first captured one
    lag, correlation = best_alignment(decoded[1024:1024 + RATE], signal, 64)
    assert lag == 0 and correlation > 0.95


def test_encoder_pts_are_spaced_one_frame_apart_without_drift() -> None:
    encoder = AacEncoder(RATE, 2)
    silence = bytes(4 * 1024)
    units: list[AccessUnit] = []
    for n in range(300):
        units += encoder.encode(silence, 1_000_000 + n * 1024 * 1_000_000 // RATE)
    units += encoder.flush()
    pts = np.array([u.pts_us for u in units[1:]])
    expected = 1_000_000 + np.arange(len(pts)) * 1024 * 1_000_000 // RATE
    assert np.array_equal(pts, expected)
    assert len(units) == 1 + 300  # the priming frame, then one frame per 1024 samples


def test_encoder_follows_a_gap_in_the_input_timeline() -> None:
    encoder = AacEncoder(RATE, 1)
    tone = to_s16(0.3 * np.sin(2 * np.pi * 440 * np.arange(1024) / RATE))
    units: list[AccessUnit] = []
    for n in range(10):
        units += encoder.encode(tone, n * 21_333)  # 21333 us apart: the encoder's own spacing
    units += encoder.encode(tone, 10_000_000)  # a jump: samples were lost before this block
    for n in range(1, 5):
        units += encoder.encode(tone, 10_000_000 + n * 1024 * 1_000_000 // RATE)
    units += encoder.flush()
    pts = [u.pts_us for u in units]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    assert 10_000_000 in pts  # the frame decoding to the first block after the gap


def test_encoder_refuses_three_channels_torn_samples_and_rates_aac_lacks() -> None:
    with pytest.raises(UnsupportedAudioFormatError, match="1 or 2 channels"):
        AacEncoder(RATE, 3)
    with pytest.raises(ValueError, match="not whole 2-channel"):
        AacEncoder(RATE, 2).encode(b"\x00" * 6, 0)
    with pytest.raises(UnsupportedAudioFormatError, match="refused 1000 Hz"):
        AacEncoder(1000, 1)


def test_both_aac_coders_give_back_the_signal() -> None:
    signal = chirp(RATE // 2)
    for coder in ("fast", "twoloop"):
        encoder = AacEncoder(RATE, 1, 64_000, coder=coder)
        units = encoder.encode(to_s16(signal), 0) + encoder.flush()
        decoded = decode(units, encoder.audio_specific_config)[0][1024:1024 + len(signal)]
        assert best_alignment(decoded, signal, 8)[1] > 0.95


# -- the sample clock ---------------------------------------------------------------------------

class FakeClock:
    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def run_clock(clock: SampleClock, fake: FakeClock, arrivals: list[int]) -> list[int]:
    stamps = []
    for arrival in arrivals:
        fake.now = arrival
        stamps.append(clock.stamp(1024))
    return stamps


def test_sample_clock_counts_samples_from_the_first_arrival() -> None:
    fake = FakeClock()
    clock = SampleClock(RATE, clock_us=fake)
    jitter = [0, 3000, 0, 9000, 1000, 0, 15_000, 0, 2000, 0]  # late reads, never more than 20 ms
    arrivals = [1_021_333 + round(n * FRAME_US) + jitter[n] for n in range(10)]
    stamps = run_clock(clock, fake, arrivals)
    assert stamps == [1_000_000 + n * 1024 * 1_000_000 // RATE for n in range(10)]
    assert clock.resyncs == 0


def test_sample_clock_reanchors_when_blocks_stay_late() -> None:
    fake = FakeClock()
    clock = SampleClock(RATE, tolerance_us=20_000, window=4, clock_us=fake)
    arrivals = [1_021_333 + round(n * FRAME_US) + (50_000 if n >= 3 else 0) for n in range(10)]
    stamps = run_clock(clock, fake, arrivals)
    assert clock.resyncs == 1
    assert stamps[:6] == [1_000_000 + n * 1024 * 1_000_000 // RATE for n in range(6)]
    assert stamps[6] == arrivals[6] - 21_333  # the 4th late block in a row re-anchors
    assert all(b - a == 21_333 or b - a == 21_334 for a, b in zip(stamps[6:], stamps[7:]))


def test_a_thread_held_up_longer_than_the_window_catches_up_without_a_gap() -> None:
    """The capture thread gets no CPU for 300 ms (the soak test saw it under load), then reads
    the blocks the device kept, one after another. Every block of a window is late, but less
    and less: no sample was lost, so the count stands and the audio has no gap (a re-anchor
    here once put 83 ms of nothing into a recording, and bwv verify failed it)."""
    fake = FakeClock()
    clock = SampleClock(RATE, tolerance_us=20_000, clock_us=fake)
    counted = [1_000_000 + n * 1024 * 1_000_000 // RATE for n in range(40)]
    stall_ends = counted[10] + 300_000
    arrivals = [max(c + 21_333, stall_ends + 500 * max(n - 10, 0) if n >= 10 else 0)
                for n, c in enumerate(counted)]
    stamps = run_clock(clock, fake, arrivals)
    assert clock.resyncs == 0
    assert stamps == counted


def test_sample_clock_reanchors_at_once_when_the_count_runs_ahead_and_never_goes_back() -> None:
    fake = FakeClock()
    clock = SampleClock(RATE, tolerance_us=20_000, clock_us=fake)
    # a device delivering twice as fast as real time
    arrivals = [1_021_333 + round(n * FRAME_US / 2) for n in range(12)]
    stamps = run_clock(clock, fake, arrivals)
    assert clock.resyncs >= 1
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert max(abs(s - (a - 21_333)) for s, a in zip(stamps, arrivals)) <= 20_000 + 21_334


def test_sample_clock_skips_known_losses_and_resyncs_unknown_ones() -> None:
    fake = FakeClock()
    clock = SampleClock(RATE, clock_us=fake)
    first = run_clock(clock, fake, [1_021_333])[0]
    clock.skip(2048)
    after_gap = run_clock(clock, fake, [1_021_333 + 3 * 21_333])[0]
    assert after_gap == first + 3 * 1024 * 1_000_000 // RATE
    clock.resync()
    assert run_clock(clock, fake, [9_000_000])[0] == 9_000_000 - 21_333
    assert clock.resyncs == 1


def test_sample_clock_without_tolerance_trusts_the_count() -> None:
    clock = SampleClock(RATE, tolerance_us=None, start_us=0)
    assert [clock.stamp(1024) for _ in range(3)] == [0, 21_333, 42_666]
    assert clock.resyncs == 0


# -- the synthetic and silent sources -----------------------------------------------------------

def test_synthetic_tone_round_trips_through_aac_at_its_frequency() -> None:
    source = SyntheticMicrophone(AudioFormat(RATE, 1, 64_000), frequency_hz=1000.0,
                                 realtime=False, blocks=94, start_us=2_000_000)
    units = capture(source)
    assert source.stats.blocks == 94 and source.stats.overflows == 0
    assert source.stats.units == len(units) == 1 + 94  # priming + one per block
    samples = decode(units, source.audio_specific_config)[0][1024:1024 + 94 * 1024]
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    peak_hz = np.argmax(spectrum) * RATE / len(samples)
    assert abs(peak_hz - 1000.0) < 2.0
    assert 0.4 < np.sqrt(2) * np.sqrt(np.mean(samples ** 2)) < 0.6  # the 0.5 amplitude survives


def test_synthetic_pts_are_monotonic_and_spaced_by_1024_samples() -> None:
    units = capture(SyntheticMicrophone(AudioFormat(44_100, 2), realtime=False, blocks=50,
                                        start_us=0))
    pts = [u.pts_us for u in units]
    assert pts[1:] == [n * 1024 * 1_000_000 // 44_100 for n in range(len(pts) - 1)]
    assert pts[0] < 0  # the priming frame, before the first sample


def test_synthetic_clicks_land_on_their_second_marks_after_decoding() -> None:
    source = SyntheticMicrophone(AudioFormat(RATE, 1, 96_000), frequency_hz=100.0, amplitude=0.05,
                                 click_interval_s=0.5, realtime=False, blocks=100, start_us=0)
    units = capture(source)
    decoded = decode(units, source.audio_specific_config)[0]
    start = units[0].pts_us  # decoded sample k plays at start + k / RATE microseconds
    loud = np.flatnonzero(np.abs(decoded) > 0.5)
    onsets = [k for i, k in enumerate(loud) if i == 0 or k - loud[i - 1] > RATE // 10]
    times_us = [start + k * 1_000_000 / RATE for k in onsets]
    assert len(times_us) == 5
    for n, time_us in enumerate(times_us):
        assert abs(time_us - n * 500_000) < 1_000  # within a millisecond of the mark


def test_realtime_synthetic_stamps_on_the_monotonic_clock() -> None:
    from recorder.capture.clock import monotonic_us

    before = monotonic_us()
    source = SyntheticMicrophone(blocks=5)
    units = capture(source)
    after = monotonic_us()
    assert len(units) == 6
    assert before - 2 * FRAME_US < units[0].pts_us < units[-1].pts_us < after


def test_stalled_sink_counts_overflows_and_keeps_pts_exact_across_the_gap() -> None:
    source = SyntheticMicrophone(buffer_seconds=0.05)  # a 3-block queue
    release = threading.Event()
    units: list[AccessUnit] = []

    def stalled(unit: AccessUnit) -> None:
        release.wait(10)
        units.append(unit)

    def wait_for(condition: Any) -> None:  # at most 10 s: a hang fails, slowness does not
        pause = threading.Event()
        for _ in range(200):
            if condition():
                return
            pause.wait(0.05)

    source.start(stalled)
    wait_for(lambda: source.stats.overflows >= 3)  # the queue is full and drops blocks
    release.set()
    captured = source.stats.blocks
    wait_for(lambda: source.stats.blocks >= captured + 3)  # blocks after the gap get through
    source.close()
    stats = source.stats
    assert source.error is None
    assert stats.overflows >= 3 and stats.lost_samples == 1024 * stats.overflows
    pts = [u.pts_us for u in units]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    steps = [round((b - a) / FRAME_US) for a, b in zip(pts[1:], pts[2:])]
    assert max(steps) > 1  # the lost blocks left a gap of whole frames, not a shift
    assert stats.units == len(units)


def test_no_audio_starts_and_stops_without_a_unit() -> None:
    units: list[AccessUnit] = []
    with NoAudio() as source:
        source.start(units.append)
        source.stop()
        assert source.finished.wait(5)
    assert units == [] and source.audio_specific_config == b"" and not source.has_audio


def test_a_source_refuses_a_second_start_and_a_closed_start() -> None:
    source = SyntheticMicrophone(realtime=False, blocks=1)
    capture(source)
    with pytest.raises(Exception, match="closed"):
        source.start(lambda unit: None)


def test_a_failing_sink_ends_capture_with_the_error_kept() -> None:
    def broken(unit: AccessUnit) -> None:
        raise OSError("disk gone")

    source = SyntheticMicrophone(realtime=False, blocks=1000)
    source.start(broken)
    assert source.finished.wait(10)
    source.close()
    assert isinstance(source.error, OSError)


# -- the factory --------------------------------------------------------------------------------

def test_factory_understands_every_spec() -> None:
    assert isinstance(open_audio_source("none"), NoAudio)
    synthetic = open_audio_source("synthetic")
    assert isinstance(synthetic, SyntheticMicrophone) and synthetic.frequency_hz == 440.0
    tone = open_audio_source("synthetic:1000", AudioFormat(16_000))
    assert isinstance(tone, SyntheticMicrophone) and tone.frequency_hz == 1000.0
    assert tone.sample_rate == 16_000
    named = open_audio_source("pyaudio:USB Audio")
    assert isinstance(named, PyAudioMicrophone) and named.wanted == "USB Audio"
    assert isinstance(open_audio_source("pyaudio:3"), PyAudioMicrophone)
    assert open_audio_source("pyaudio").wanted is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("spec, message", [
    ("microphone", "not understood"),
    ("synthetic:loud", "not a frequency"),
    ("synthetic:30000", "half the sample rate"),
    ("none:x", "not understood"),
])
def test_factory_refuses_bad_specs_saying_what_is_allowed(spec: str, message: str) -> None:
    with pytest.raises(AudioSourceSpecError, match=message):
        open_audio_source(spec)


# -- PortAudio device choice and errors, against a fake PyAudio ---------------------------------

class FakePortAudio:
    def __init__(self, devices: list[tuple[str, int]], default: int | None) -> None:
        self.devices = devices
        self.default = default

    def get_device_count(self) -> int:
        return len(self.devices)

    def get_device_info_by_index(self, index: int) -> dict[str, Any]:
        name, inputs = self.devices[index]
        return {"index": index, "name": name, "maxInputChannels": inputs,
                "defaultSampleRate": 44100.0}

    def get_default_input_device_info(self) -> dict[str, Any]:
        if self.default is None:
            raise OSError("No Default Input Device Available")
        return self.get_device_info_by_index(self.default)


DEVICES = [("HDMI out", 0), ("USB Audio Device: Mic (hw:1,0)", 1), ("default", 32),
           ("usb audio loopback", 2)]


def test_device_is_chosen_by_default_index_exact_name_or_name_part() -> None:
    portaudio = FakePortAudio(DEVICES, default=2)
    assert choose_device(portaudio, None).name == "default"
    assert choose_device(portaudio, "3").name == "usb audio loopback"
    assert choose_device(portaudio, "usb audio").name == "USB Audio Device: Mic (hw:1,0)"
    assert choose_device(portaudio, "USB AUDIO LOOPBACK").index == 3


def test_missing_device_errors_list_the_input_devices() -> None:
    portaudio = FakePortAudio(DEVICES, default=2)
    with pytest.raises(MicrophoneNotFoundError, match=r"like 'webcam'.*1: USB Audio Device"):
        choose_device(portaudio, "webcam")
    with pytest.raises(MicrophoneNotFoundError, match=r"index 0 .*input devices: 1: USB"):
        choose_device(portaudio, "0")  # HDMI out has no input channels
    with pytest.raises(NoMicrophoneError, match="no audio input device found"):
        choose_device(FakePortAudio([("HDMI out", 0)], None), None)
    with pytest.raises(NoMicrophoneError, match="no default input device.*pyaudio:NAME"):
        choose_device(FakePortAudio(DEVICES, None), None)


def test_portaudio_refusals_become_errors_that_say_what_to_do() -> None:
    device = InputDevice(1, "USB Mic", 1, 44_100)
    audio = AudioFormat(48_000, 2)
    busy = open_error(OSError(-9985, "Device unavailable"), device, audio)
    assert isinstance(busy, MicrophoneBusyError) and "in use by another program" in str(busy)
    rate = open_error(ValueError("Invalid sample rate"), device, audio)
    assert isinstance(rate, UnsupportedAudioFormatError)
    assert "48000 Hz" in str(rate) and "default is 44100 Hz" in str(rate)
    channels = open_error(ValueError("Invalid number of channels"), device, audio)
    assert isinstance(channels, UnsupportedAudioFormatError)
    assert "audio.channels = 1" in str(channels)


def test_missing_pyaudio_is_a_no_microphone_error_naming_the_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_module(name: str) -> None:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(pyaudio_source.importlib, "import_module", no_module)
    with pytest.raises(NoMicrophoneError, match="pip install pyaudio.*portaudio19-dev"):
        PyAudioMicrophone().start(lambda unit: None)


class OverflowingStream:
    """A PortAudio stream that overruns on every third read."""

    def __init__(self) -> None:
        self.reads = 0

    def start_stream(self) -> None:
        pass

    def read(self, frames: int, exception_on_overflow: bool = True) -> bytes:
        self.reads += 1
        if self.reads % 3 == 0 and exception_on_overflow:
            raise OSError(-9981, "Input overflowed")
        return bytes(2 * frames)


def test_portaudio_overruns_are_counted_and_reanchor_the_clock() -> None:
    source = PyAudioMicrophone(tolerance_us=None)  # the fake is not paced: trust the count
    source._stream = OverflowingStream()
    blocks: Iterator[tuple[bytes, int]] = source._blocks()
    stamps = [next(blocks)[1] for _ in range(8)]
    assert source.stats.overflows == 3 and source.clock.resyncs == 3  # reads 3, 6 and 9
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
