"""Audio capture: microphones (PortAudio through PyAudio, a synthetic tone, none) that stamp PCM on
the monotonic clock shared with video, encode it to AAC-LC and hand access units to a sink."""

from .aac_encoder import AacEncoder
from .errors import (
    AudioError,
    AudioSourceSpecError,
    MicrophoneBusyError,
    MicrophoneNotFoundError,
    NoMicrophoneError,
    UnsupportedAudioFormatError,
)
from .sample_clock import SampleClock
from .sources import (
    BLOCK_FRAMES,
    AudioFormat,
    AudioSource,
    AudioStats,
    NoAudio,
    SyntheticMicrophone,
    open_audio_source,
)

__all__ = [
    "BLOCK_FRAMES", "AacEncoder", "AudioError", "AudioFormat", "AudioSource",
    "AudioSourceSpecError", "AudioStats", "MicrophoneBusyError", "MicrophoneNotFoundError",
    "NoAudio", "NoMicrophoneError", "SampleClock", "SyntheticMicrophone",
    "UnsupportedAudioFormatError", "open_audio_source",
]
