"""The fragmented-MP4 muxer in use: native (recorder.storage._mux_c) if built, else its pure twin.

Both implementations take the same access units and return the same bytes; the rules are written
down in recorder/storage/_mux_py.py. The choice is made once by recorder._native under
RECORDER_NATIVE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._mux_py import (
    AnnexBError,
    AudioConfigError,
    MuxClosedError,
    MuxedFragment,
    MuxError,
    MuxTimestampError,
    ParameterSetError,
    VIDEO_TIMESCALE,
    parse_audio_specific_config,
    parse_sps,
)
from .._native import load

if TYPE_CHECKING:  # the fully typed pure twin is the type source for both implementations
    from ._mux_py import FragmentedMp4Muxer
else:
    FragmentedMp4Muxer = load("mux").module.FragmentedMp4Muxer

__all__ = [
    "AnnexBError", "AudioConfigError", "FragmentedMp4Muxer", "MuxClosedError", "MuxError",
    "MuxTimestampError", "MuxedFragment", "ParameterSetError", "VIDEO_TIMESCALE",
    "parse_audio_specific_config", "parse_sps",
]
