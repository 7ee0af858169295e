"""The base of every audio source: its format, its statistics and its capture and encoder threads.

Two threads per source. The capture thread only reads blocks from the device (or synthesises
them), stamps them and queues them; the encoder thread encodes and calls the sink. The queue
(``buffer_seconds`` of audio) absorbs a slow sink; when it is full a live source drops the block
and counts an overflow, as a sound card would, so capture itself never waits. The pts of the
blocks after a drop stay exact (the sample count goes on across the gap).

Sources (`recorder.capture.audio.sources`, `recorder.capture.audio.pyaudio_source`) subclass
`AudioSource`; it lives alone here so that every source module imports it and nothing imports back.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

from ..access_unit import AccessUnit
from ..clock import monotonic_us
from .aac_encoder import AacEncoder
from .errors import AudioError
from .sample_clock import DEFAULT_TOLERANCE_US, SampleClock

Sink = Callable[[AccessUnit], None]
log = logging.getLogger("recorder.audio.sources")  # the name log lines have always shown

BLOCK_FRAMES = 1024  # samples per channel read at a time: one AAC frame


@dataclass(frozen=True)
class AudioFormat:
    sample_rate: int = 48_000
    channels: int = 1
    bitrate_bps: int = 64_000


@dataclass(frozen=True)
class AudioStats:
    """What an audio source has done so far. Overflows are lost audio: report them."""

    blocks: int  # PCM blocks captured (each BLOCK_FRAMES samples per channel)
    units: int  # AAC frames handed to the sink
    overflows: int  # blocks lost: one per block dropped from a full queue, one per device
    #               overrun (which loses at least one block): the manifest's audio_overflow "blocks"
    lost_samples: int  # samples per channel known lost (a device overrun adds an unknown number)
    resyncs: int  # times the pts were re-anchored to the monotonic clock


_END = None  # queued after the last block


class AudioSource:
    """Base of every audio source: capture and encoder threads from ``start(sink)`` to ``stop()``.

    Subclasses yield PCM blocks (interleaved s16, BLOCK_FRAMES samples per channel) from `_blocks`
    and stamp each with ``self.clock`` as it arrives; a device that reports an overrun calls
    `_overflowed`. A failure on either thread ends the capture and is kept in ``error``.
    """

    description = "audio source"
    has_audio = True  # False only for NoAudio: the muxer then makes no audio track
    realtime = True  # a live source cannot wait: a full queue drops the block

    def __init__(self, audio: AudioFormat = AudioFormat(), buffer_seconds: float = 1.0,
                 tolerance_us: int | None = DEFAULT_TOLERANCE_US,
                 start_us: int | None = None, blocks: int | None = None) -> None:
        self.audio = audio
        self.encoder = AacEncoder(audio.sample_rate, audio.channels, audio.bitrate_bps)
        self.clock = SampleClock(audio.sample_rate, tolerance_us, start_us=start_us)
        self.limit = blocks  # stop after this many blocks (None: until stopped)
        capacity = max(2, math.ceil(buffer_seconds * audio.sample_rate / BLOCK_FRAMES))
        self._queue: queue.Queue[tuple[bytes, int] | None] = queue.Queue(capacity)
        self.error: BaseException | None = None
        self.finished = threading.Event()  # set when both threads have ended
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # guards the counters below
        self._blocks_captured = 0
        self._units = 0
        self._overflows = 0
        self._lost_samples = 0
        self._closed = False

    # -- what the controller uses ---------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    @property
    def channels(self) -> int:
        return self.audio.channels

    @property
    def audio_specific_config(self) -> bytes:
        """The AAC AudioSpecificConfig for the muxer's esds box (empty when there is no audio)."""
        return self.encoder.audio_specific_config

    @property
    def stats(self) -> AudioStats:
        with self._lock:
            return AudioStats(self._blocks_captured, self._units, self._overflows,
                              self._lost_samples, self.clock.resyncs)

    def start(self, sink: Sink) -> None:
        """Open the device (errors are raised here) and start capturing into ``sink``."""
        if self._closed:
            raise AudioError(f"{self.description} is closed")
        if self._threads:
            raise AudioError(f"{self.description} already started")
        self._prepare()
        self._threads = [
            threading.Thread(target=self._capture, name="audio-capture", daemon=True),
            threading.Thread(target=self._encode, args=(sink,), name="audio-encode", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop capturing, encode what is queued, and wait for both threads; safe to repeat."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout)

    def close(self) -> None:
        """Stop and release the device; safe to repeat."""
        self.stop()
        if self._threads and self._threads[0].is_alive():
            # releasing a device under a read in progress can crash PortAudio: leave it be
            raise AudioError(f"the capture thread of the {self.description} did not stop")
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- what subclasses provide ---------------------------------------------------------
    def _prepare(self) -> None:
        """Open the device on the caller's thread, so its errors reach the caller."""

    def _release(self) -> None:
        """Release the device (called once, after the threads ended)."""

    def _blocks(self) -> Iterator[tuple[bytes, int]]:
        raise NotImplementedError

    def _overflowed(self, lost_samples: int | None) -> None:
        """The device lost audio (``None``: how much is unknown, so re-anchor the clock)."""
        with self._lock:
            self._overflows += 1
            self._lost_samples += lost_samples or 0
        if lost_samples is None:
            self.clock.resync()
        else:
            self.clock.skip(lost_samples)
        log.warning("%s overflowed: %s samples lost", self.description,
                    "unknown" if lost_samples is None else lost_samples)

    # -- the two threads -----------------------------------------------------------------
    def _capture(self) -> None:
        try:
            for count, (pcm, pts_us) in enumerate(self._blocks(), 1):
                with self._lock:
                    self._blocks_captured += 1
                if self.realtime:
                    try:
                        self._queue.put_nowait((pcm, pts_us))
                    except queue.Full:
                        with self._lock:
                            self._overflows += 1
                            self._lost_samples += len(pcm) // (2 * self.channels)
                        log.warning("%s: the encoder fell behind, a block at pts_us=%d was lost",
                                    self.description, pts_us)
                else:
                    self._queue.put((pcm, pts_us))
                if self._stopping.is_set() or (self.limit is not None and count >= self.limit):
                    break
        except BaseException as exc:  # kept for the controller: never die silently
            self.error = exc
        finally:
            self._queue.put(_END)

    def _encode(self, sink: Sink) -> None:
        try:
            while (item := self._queue.get()) is not _END:
                pcm, pts_us = item
                for unit in self.encoder.encode(pcm, pts_us):
                    sink(unit)
                    with self._lock:
                        self._units += 1
            for unit in self.encoder.flush():
                sink(unit)
                with self._lock:
                    self._units += 1
        except BaseException as exc:
            self.error = self.error or exc
            self._stopping.set()
            while self._queue.get() is not _END:  # let the capture thread finish
                pass
        finally:
            self.finished.set()

    def _wait_until(self, target_us: int) -> bool:
        """Sleep until ``target_us`` on the monotonic clock; False if asked to stop meanwhile."""
        delay = (target_us - monotonic_us()) / 1e6
        return not (delay > 0 and self._stopping.wait(delay))
