"""The fragmented-MP4 muxer in use, plain and encrypting ('cenc'): native
(recorder.storage._mux_c) if built, else its pure twin.

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
    from ._mux_cenc import EncryptingMp4Muxer
else:
    _CHOICE = load("mux")
    FragmentedMp4Muxer = _CHOICE.module.FragmentedMp4Muxer
    # the pure twin keeps its encrypting muxer in a module of its own (_mux_cenc)
    if _CHOICE.implementation == "pure":
        from ._mux_cenc import EncryptingMp4Muxer
    else:
        EncryptingMp4Muxer = _CHOICE.module.EncryptingMp4Muxer

IMPLEMENTATION = load("mux").implementation  # "native" or "pure": what muxes (and encrypts)

__all__ = [
    "AnnexBError", "AudioConfigError", "EncryptingMp4Muxer", "FragmentedMp4Muxer",
    "IMPLEMENTATION", "MuxClosedError", "MuxError",
    "MuxTimestampError", "MuxedFragment", "ParameterSetError", "VIDEO_TIMESCALE",
    "parse_audio_specific_config", "parse_sps",
]
