"""Audio checks shared by the microphone tests: AAC frames decoded back, a known chirp as 16-bit
samples, and the lag at which a decoded signal best matches it."""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt

from recorder import AccessUnit

RATE = 48_000


def decode(units: list[AccessUnit], asc: bytes, channels: int = 1) -> npt.NDArray[np.float32]:
    """Decode raw AAC frames (as a muxer would hand them to a decoder) to float samples."""
    decoder = av.CodecContext.create("aac", "r")
    decoder.extradata = asc
    chunks = []
    for unit in units:
        for frame in decoder.decode(av.Packet(unit.payload)):
            chunks.append(frame.to_ndarray()[:channels])
    return np.concatenate(chunks, axis=1)


def chirp(samples: int, rate: int = RATE) -> npt.NDArray[np.float64]:
    """A 200 Hz to 4 kHz sweep: not periodic, so there is one right alignment."""
    t = np.arange(samples) / rate
    duration = samples / rate
    return 0.5 * np.sin(2 * np.pi * (200 * t + (4000 - 200) * t * t / (2 * duration)))


def to_s16(signal: npt.NDArray[np.float64]) -> bytes:
    return np.round(signal * 32767).astype("<i2").tobytes()


def best_alignment(decoded: npt.NDArray[np.float32],
                   known: npt.NDArray[np.float64], max_lag: int) -> tuple[int, float]:
    """(lag, correlation): decoded[lag + k] best matches known[k], |lag| <= max_lag."""
    best = (0, -1.0)
    n = len(known) - 2 * max_lag
    for lag in range(-max_lag, max_lag + 1):
        start = max_lag + lag
        a = decoded[start:start + n]
        b = known[max_lag:max_lag + n]
        r = float(np.corrcoef(a, b)[0, 1])
        if r > best[1]:
            best = (lag, r)
    return best
