"""Muting and bleeping ranges of audio: samples are replaced, never attenuated (a muted range is
digital silence before the AAC encoder; a bleeped one is a 1 kHz tone at -12 dBFS), so nothing
of what was said survives in them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .plan import Plan

BLEEP_HZ = 1000.0
BLEEP_LEVEL = 0.25


def apply(plan: Plan, samples: npt.NDArray[np.float32], start_s: float,
          rate: int) -> npt.NDArray[np.float32]:
    """``samples`` (channels x n, float) that begin ``start_s`` seconds after the first video
    frame, with the plan's mutes and bleeps applied (a copy when anything changed)."""
    count = samples.shape[-1]
    actions = plan.audio_action(start_s, start_s + count / rate)
    if not actions:
        return samples
    out = samples.copy()
    times = start_s + np.arange(count) / rate
    for kind, span in actions:
        inside = (times >= span.start) & (times < span.end)
        if kind == "mute":
            out[:, inside] = 0.0
        else:
            tone = BLEEP_LEVEL * np.sin(2 * np.pi * BLEEP_HZ * (times[inside] - span.start))
            out[:, inside] = tone.astype(np.float32)
    return out
