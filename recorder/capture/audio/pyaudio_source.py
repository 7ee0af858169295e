"""The microphone through PyAudio (PortAudio, on Linux over ALSA): pick the input device by name or
index, check the format before opening it, read 1024-sample blocks and count every overrun.

PortAudio reports an overrun (the capture thread did not read in time and the sound card's
buffer overflowed) as a failed read; the samples lost are not known, so the block clock
re-anchors to the monotonic clock after each one. Initialising PortAudio makes ALSA and JACK print
probe messages on stderr; those are caught and logged at debug level instead.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .base import BLOCK_FRAMES, AudioFormat, AudioSource
from .errors import (
    AudioError,
    MicrophoneBusyError,
    MicrophoneNotFoundError,
    NoMicrophoneError,
    UnsupportedAudioFormatError,
)
from .sample_clock import DEFAULT_TOLERANCE_US

log = logging.getLogger("recorder.audio.pyaudio_source")  # the name log lines have always shown

# PortAudio error codes (portaudio.h, PaErrorCode), as PyAudio puts them in OSError.errno
PA_INVALID_CHANNEL_COUNT = -9998
PA_INVALID_SAMPLE_RATE = -9997
PA_INVALID_DEVICE = -9996
PA_DEVICE_UNAVAILABLE = -9985
PA_INPUT_OVERFLOWED = -9981


@dataclass(frozen=True)
class InputDevice:
    """One PortAudio device that can capture."""

    index: int
    name: str
    channels: int  # most input channels it offers
    default_sample_rate: int

    def __str__(self) -> str:
        return f"{self.index}: {self.name} ({self.channels} ch, {self.default_sample_rate} Hz)"


def load_pyaudio() -> Any:
    try:
        return importlib.import_module("pyaudio")
    except ImportError as exc:
        raise NoMicrophoneError(
            "PyAudio is not installed: pip install pyaudio (building it needs the Debian package "
            "portaudio19-dev)") from exc


_stderr_lock = threading.Lock()  # two redirections at once would restore the wrong descriptor


@contextlib.contextmanager
def _stderr_to_log() -> Iterator[None]:
    """Send what C libraries write on file descriptor 2 meanwhile to the debug log."""
    with _stderr_lock, tempfile.TemporaryFile() as caught:
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines():
                log.debug("PortAudio: %s", line)


def open_portaudio() -> Any:
    """A `pyaudio.PyAudio` (PortAudio initialised), quiet on stderr."""
    pyaudio = load_pyaudio()
    # PortAudio probes JACK; a camera must never have a JACK server started on its behalf
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    with _stderr_to_log():
        return pyaudio.PyAudio()


def input_devices(portaudio: Any) -> list[InputDevice]:
    """Every device of an initialised PortAudio that has input channels."""
    devices = []
    for index in range(portaudio.get_device_count()):
        info = portaudio.get_device_info_by_index(index)
        if int(info["maxInputChannels"]) > 0:
            devices.append(InputDevice(index, str(info["name"]), int(info["maxInputChannels"]),
                                       round(float(info["defaultSampleRate"]))))
    return devices


def list_input_devices() -> list[InputDevice]:
    """The input devices PortAudio sees now (for `bwv doctor` and error messages)."""
    portaudio = open_portaudio()
    try:
        return input_devices(portaudio)
    finally:
        portaudio.terminate()


def _listing(devices: list[InputDevice]) -> str:
    return "; ".join(str(device) for device in devices) or "none"


def choose_device(portaudio: Any, wanted: str | None) -> InputDevice:
    """The input device named by ``wanted``: None for the default, an index, or part of a name."""
    devices = input_devices(portaudio)
    if not devices:
        raise NoMicrophoneError("no audio input device found: plug in a microphone and check "
                                "`arecord -l`, or set audio.source = \"none\"")
    if wanted is None:
        try:
            default = int(portaudio.get_default_input_device_info()["index"])
        except (OSError, KeyError) as exc:
            raise NoMicrophoneError(
                f"there is no default input device: name one with audio.source = "
                f"\"pyaudio:NAME\" (input devices: {_listing(devices)})") from exc
        for device in devices:
            if device.index == default:
                return device
        return devices[0]
    if wanted.strip().isdigit():
        for device in devices:
            if device.index == int(wanted):
                return device
        raise MicrophoneNotFoundError(
            f"no input device with index {wanted} (input devices: {_listing(devices)})")
    matches = [d for d in devices if d.name.lower() == wanted.lower()] or [
        d for d in devices if wanted.lower() in d.name.lower()]
    if not matches:
        raise MicrophoneNotFoundError(
            f"no input device named like {wanted!r} (input devices: {_listing(devices)})")
    if len(matches) > 1:
        log.info("%d input devices match %r; using %s", len(matches), wanted, matches[0])
    return matches[0]


def open_error(exc: OSError | ValueError, device: InputDevice, audio: AudioFormat) -> AudioError:
    """The error to raise for PortAudio's refusal to open ``device`` in ``audio``'s format."""
    code = getattr(exc, "errno", None)
    text = str(exc).lower()
    if code == PA_DEVICE_UNAVAILABLE or "unavailable" in text or "busy" in text:
        return MicrophoneBusyError(
            f"the microphone {device.name!r} is in use by another program (find it with: "
            "fuser -v /dev/snd/*)")
    if code == PA_INVALID_SAMPLE_RATE or "sample rate" in text:
        return UnsupportedAudioFormatError(
            f"the microphone {device.name!r} cannot capture at {audio.sample_rate} Hz: set "
            f"audio.sample_rate to one it supports (its default is "
            f"{device.default_sample_rate} Hz)")
    if code == PA_INVALID_CHANNEL_COUNT or "channels" in text:
        return UnsupportedAudioFormatError(
            f"the microphone {device.name!r} cannot capture {audio.channels} channel(s): it has "
            f"{device.channels}; set audio.channels = 1")
    if code == PA_INVALID_DEVICE:
        return MicrophoneNotFoundError(f"the microphone {device.name!r} went away: {exc}")
    return AudioError(f"cannot open the microphone {device.name!r}: {exc}")


class PyAudioMicrophone(AudioSource):
    """A microphone through PortAudio. ``device``: None (the default input), an index, or part
    of a device name (case-insensitive; an exact name wins)."""

    description = "microphone"

    def __init__(self, audio: AudioFormat = AudioFormat(), device: str | None = None, *,
                 buffer_seconds: float = 1.0, tolerance_us: int | None = DEFAULT_TOLERANCE_US,
                 blocks: int | None = None) -> None:
        super().__init__(audio, buffer_seconds, tolerance_us, None, blocks)
        self.wanted = device
        self.device: InputDevice | None = None
        self._portaudio: Any = None
        self._stream: Any = None

    def _prepare(self) -> None:
        self._portaudio = open_portaudio()
        try:
            device = choose_device(self._portaudio, self.wanted)
            self.description = f"microphone {device.name!r}"
            pyaudio = load_pyaudio()
            try:
                self._portaudio.is_format_supported(
                    self.sample_rate, input_device=device.index, input_channels=self.channels,
                    input_format=pyaudio.paInt16)
                with _stderr_to_log():
                    self._stream = self._portaudio.open(
                        rate=self.sample_rate, channels=self.channels, format=pyaudio.paInt16,
                        input=True, input_device_index=device.index,
                        frames_per_buffer=BLOCK_FRAMES, start=False)
            except (OSError, ValueError) as exc:
                raise open_error(exc, device, self.audio) from exc
            self.device = device
        except BaseException:
            self._portaudio.terminate()
            self._portaudio = None
            raise

    def _blocks(self) -> Iterator[tuple[bytes, int]]:
        stream = self._stream
        # started here, not when opened: samples queued before the first read would arrive in a
        # burst and make the clock's anchor late
        with _stderr_to_log():
            stream.start_stream()
        while not self._stopping.is_set():
            try:
                pcm = stream.read(BLOCK_FRAMES, exception_on_overflow=True)
            except OSError as exc:
                if getattr(exc, "errno", None) != PA_INPUT_OVERFLOWED:
                    raise AudioError(f"{self.description} stopped delivering audio: {exc}") from exc
                self._overflowed(None)  # PyAudio drops the block it read: re-anchor on the next
                continue
            yield pcm, self.clock.stamp(BLOCK_FRAMES)

    def _release(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.stop_stream()
            stream.close()
        portaudio, self._portaudio = self._portaudio, None
        if portaudio is not None:
            portaudio.terminate()
