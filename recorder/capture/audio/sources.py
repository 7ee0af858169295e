"""Audio sources: each captures PCM on its own thread, stamps it on the monotonic clock, encodes it
to AAC and hands every frame to a sink (the pre-event ring's push) as an access unit.

Every source is an `AudioSource` (`recorder.capture.audio.base`): a capture thread and an encoder
thread with a queue between them.

`open_audio_source(spec, ...)` understands "synthetic", "synthetic:HZ" and "none"; "pyaudio",
"pyaudio:NAME" and "pyaudio:INDEX" are in `recorder.capture.audio.pyaudio_source`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from ..clock import monotonic_us
from .base import BLOCK_FRAMES, AudioFormat, AudioSource, AudioStats, Sink
from .errors import AudioSourceSpecError
from .pyaudio_source import PyAudioMicrophone
from .sample_clock import DEFAULT_TOLERANCE_US

__all__ = ["BLOCK_FRAMES", "AudioFormat", "AudioSource", "AudioStats", "NoAudio",
           "PyAudioMicrophone", "Sink", "SyntheticMicrophone", "open_audio_source"]


class SyntheticMicrophone(AudioSource):
    """A sine tone (and, if asked, a click every ``click_interval_s``) with no hardware.

    ``realtime=True`` paces blocks by the monotonic clock as a sound card would; ``realtime=False``
    makes them as fast as the encoder takes them, stamped from ``start_us`` (tests, benches).
    A click is ``click_samples`` samples at full scale starting exactly on its second mark, for
    audio/video sync checks.
    """

    description = "synthetic microphone"

    def __init__(self, audio: AudioFormat = AudioFormat(), frequency_hz: float = 440.0,
                 amplitude: float = 0.5, click_interval_s: float | None = None,
                 click_samples: int = 48, realtime: bool = True, *,
                 buffer_seconds: float = 1.0, start_us: int | None = None,
                 blocks: int | None = None) -> None:
        if not 0 < frequency_hz < audio.sample_rate / 2:
            raise AudioSourceSpecError(
                f"tone of {frequency_hz} Hz is not between 0 and half the sample rate "
                f"({audio.sample_rate / 2:g} Hz)")
        super().__init__(audio, buffer_seconds,
                         DEFAULT_TOLERANCE_US if realtime else None, start_us, blocks)
        self.realtime = realtime
        self.frequency_hz = frequency_hz
        self.amplitude = amplitude
        self.click_interval_s = click_interval_s
        self.click_samples = click_samples

    def signal(self, first: int, count: int) -> npt.NDArray[np.float64]:
        """Samples ``first`` to ``first + count`` of the (mono) signal, floats in [-1, 1]."""
        n = np.arange(first, first + count)
        wave = self.amplitude * np.sin(2 * np.pi * self.frequency_hz * n / self.sample_rate)
        if self.click_interval_s is not None:
            period = round(self.click_interval_s * self.sample_rate)
            wave[(n % period) < self.click_samples] = 1.0
        return wave

    def _blocks(self) -> Iterator[tuple[bytes, int]]:
        first = 0
        start_us = monotonic_us()
        while not self._stopping.is_set():
            if self.realtime:
                due = start_us + (first + BLOCK_FRAMES) * 1_000_000 // self.sample_rate
                if not self._wait_until(due):
                    return
            mono = np.round(self.signal(first, BLOCK_FRAMES) * 32767).astype("<i2")
            pcm = np.repeat(mono, self.channels).tobytes()
            yield pcm, self.clock.stamp(BLOCK_FRAMES)
            first += BLOCK_FRAMES


class NoAudio(AudioSource):
    """No microphone: starts and stops, never calls the sink (audio.source = "none")."""

    description = "no audio"
    has_audio = False

    @property
    def audio_specific_config(self) -> bytes:
        return b""

    def _blocks(self) -> Iterator[tuple[bytes, int]]:
        self._stopping.wait()
        return iter(())


def open_audio_source(spec: str, audio: AudioFormat = AudioFormat(),
                      realtime: bool = True) -> AudioSource:
    """The source named by an ``audio.source`` value (other than "auto")."""
    kind, _, argument = spec.partition(":")
    if kind == "none" and not argument:
        return NoAudio(audio)
    if kind == "synthetic":
        if not argument:
            return SyntheticMicrophone(audio, realtime=realtime)
        try:
            frequency = float(argument)
        except ValueError:
            frequency = math.nan
        if not math.isfinite(frequency):
            raise AudioSourceSpecError(
                f"audio source {spec!r}: {argument!r} is not a frequency in Hz "
                "(e.g. synthetic:440)")
        return SyntheticMicrophone(audio, frequency, realtime=realtime)
    if kind == "pyaudio":
        return PyAudioMicrophone(audio, device=argument or None)
    raise AudioSourceSpecError(
        f"audio source {spec!r} is not understood: use pyaudio, pyaudio:NAME, pyaudio:INDEX, "
        "synthetic, synthetic:HZ or none")
