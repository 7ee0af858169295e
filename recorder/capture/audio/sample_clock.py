"""Audio timestamps: counted in samples from an anchor on the monotonic clock, re-anchored when
the count and the clock disagree by more than a tolerance.

A sound card's crystal, not the CPU, paces capture, so the sample count gives exact spacing
(1024 samples are 21333.3 µs at 48 kHz, every time) while the monotonic clock, read when a block
arrives, gives the origin that the video's timestamps share. Reading the clock is only ever late
(the capture thread waited for the CPU), never early, so:

- a block that arrives *earlier* than its counted time by more than the tolerance proves the count
  is ahead (the device's clock runs fast): re-anchor at once;
- a block that arrives *later* by more than the tolerance may just be a late thread; only when
  every block of a whole window is that late, and about equally late (samples were lost, or
  the device's clock runs slow) is the count behind: re-anchor then. A thread that was held up
  (a CPU busy elsewhere for longer than the window) reads the blocks the device kept meanwhile
  one after another, each less late than the one before: that is catching up, not lost time,
  and moving the count forward there would put a gap in audio that was all captured.

Each re-anchor is counted (``resyncs``); pts never go backwards, so after a re-anchor to an
earlier time the next pts is one microsecond after the last.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ..clock import monotonic_us

DEFAULT_TOLERANCE_US = 20_000  # well inside one video frame (33 ms at 30 fps)
DEFAULT_WINDOW = 8  # blocks: 170 ms of 1024-sample blocks at 48 kHz


class SampleClock:
    """Stamps consecutive blocks of samples with ``pts_us`` of their first sample.

    ``tolerance_us=None`` trusts the sample count alone (no re-anchoring): for sources that are
    not paced in real time. ``start_us`` fixes the first block's pts instead of reading the clock.
    """

    def __init__(self, sample_rate: int, tolerance_us: int | None = DEFAULT_TOLERANCE_US,
                 window: int = DEFAULT_WINDOW, clock_us: Callable[[], int] = monotonic_us,
                 start_us: int | None = None) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, not {sample_rate}")
        self.sample_rate = sample_rate
        self.tolerance_us = tolerance_us
        self.clock_us = clock_us
        self.samples = 0  # samples stamped so far (including those skipped)
        self.resyncs = 0
        self._anchor_samples = 0
        self._anchor_us = start_us
        self._late: deque[int] = deque(maxlen=window)
        self._last_pts: int | None = None
        self._resync_next = False

    def _counted_us(self, samples: int) -> int:
        assert self._anchor_us is not None
        return self._anchor_us + (samples - self._anchor_samples) * 1_000_000 // self.sample_rate

    def stamp(self, frames: int) -> int:
        """pts_us of the first sample of a block of ``frames`` samples that has just arrived."""
        block_us = frames * 1_000_000 // self.sample_rate
        arrived_us = self.clock_us() - block_us  # when its first sample was captured, at the latest
        if self._anchor_us is None:
            self._anchor_us = arrived_us
            self._anchor_samples = self.samples
        pts = self._counted_us(self.samples)
        if self._resync_next:
            pts = self._reanchor(arrived_us)
        elif self.tolerance_us is not None:
            drift = arrived_us - pts
            self._late.append(drift)
            if drift < -self.tolerance_us or (
                    len(self._late) == self._late.maxlen and min(self._late) > self.tolerance_us
                    and not self._catching_up()):
                pts = self._reanchor(arrived_us)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        self.samples += frames
        return pts

    def _catching_up(self) -> bool:
        """Whether the window's blocks came faster than real time, the lateness falling by more
        than the tolerance from its first block to its last: a held-up thread reading what the
        device kept (lost samples or a slow clock keep every block about equally late)."""
        assert self.tolerance_us is not None
        return self._late[-1] < self._late[0] - self.tolerance_us

    def skip(self, frames: int) -> None:
        """``frames`` samples were lost at a known point: keep counting across the gap."""
        self.samples += frames

    def resync(self) -> None:
        """Samples were lost, how many is unknown: take the next block's pts from the clock."""
        self._resync_next = True

    def _reanchor(self, arrived_us: int) -> int:
        self._resync_next = False
        self._anchor_us = arrived_us
        self._anchor_samples = self.samples
        self._late.clear()
        self.resyncs += 1
        return arrived_us
