"""Microphone and audio-encoder errors, each naming what is wrong and what to do about it."""

from __future__ import annotations

from ...errors import RecorderError


class AudioError(RecorderError):
    """Base class of the audio sources' and the AAC encoder's errors."""


class NoMicrophoneError(AudioError):
    """No audio input device exists (or PortAudio itself is missing)."""


class MicrophoneNotFoundError(AudioError, LookupError):
    """The microphone named in the settings is not an input device (the message lists those)."""


class MicrophoneBusyError(AudioError):
    """The microphone exists but another program holds it."""


class UnsupportedAudioFormatError(AudioError, ValueError):
    """The microphone or the AAC encoder cannot use the rate, channels or bit rate asked for."""


class AudioSourceSpecError(AudioError, ValueError):
    """An audio source specification that is not understood."""
