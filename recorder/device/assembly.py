"""The device program, assembled from settings: sources -> ring -> controller -> recordings.

`Device` owns every part and their threads. `bwv record` (the scripted, headless run) and
`bwv run` (the program a camera runs from boot) drive it from `recorder.cli.record`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import PreEventRing
from ..board import Board, BoardEvent, BoardEventKind, BoardSettings
from ..capture.access_unit import AUDIO, VIDEO, AccessUnit
from ..capture.audio import AudioFormat, AudioSource, open_audio_source
from ..capture.camera import VideoFormat, VideoSource, open_video_source
from ..capture.clock import monotonic_us
from ..errors import RecorderError
from ..private_files import make_private_dir
from ..integrity.keys import DeviceKey
from ..integrity.content_key import EncryptionPublicKey
from ..settings import Settings, SettingsError
from ..storage.faults import describe, is_card_fault
from ..storage.recording import FileRecording, RecordingFactory, recover_interrupted
from ..storage.writer_lock import WriterLock
from .controller import Controller, RingSize, free_bytes, ring_size

log = logging.getLogger("recorder.device")  # the name log lines have always shown

AAC_FRAME_SAMPLES = 1024


class DeviceError(RecorderError):
    """The device could not be assembled (a source, the storage, the key)."""


class RingTooLargeError(DeviceError):
    """The settings ask for a pre-event buffer the camera's memory cannot hold."""


RING_MEMORY_LIMIT = 0.5  # of physical memory: more is refused (the rest needs room too)
RING_MEMORY_WARNING = 0.25  # of physical memory: more is allowed, with a warning


def physical_memory() -> int:
    """Bytes of RAM, or 0 when the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def ring_size_for(settings: Settings, has_audio: bool, memory_bytes: int | None = None
                  ) -> RingSize:
    """The pre-event ring for the configured rates (``camera.bitrate_bps``, ``audio.bitrate_bps``
    when there is audio, ``camera.fps``) and ``recording.pre_event_s``. The settings allow up to
    50 Mbit/s and 120 s, over 1 GB: a ring above half the camera's memory is refused with a
    message naming the settings to lower, one above a quarter is logged as a warning."""
    audio_rate = settings["audio.sample_rate"] / AAC_FRAME_SAMPLES if has_audio else 0.0
    size = ring_size(settings["recording.pre_event_s"], settings["camera.bitrate_bps"],
                     settings["audio.bitrate_bps"] if has_audio else 0, settings["camera.fps"],
                     audio_rate, settings["camera.keyframe_interval_s"])
    memory = physical_memory() if memory_bytes is None else memory_bytes
    if memory <= 0:
        return size
    needed_mb, memory_mb = size.capacity_bytes >> 20, memory >> 20
    what = (f"the pre-event buffer needs {needed_mb} MB for recording.pre_event_s = "
            f"{settings['recording.pre_event_s']:g} at camera.bitrate_bps = "
            f"{settings['camera.bitrate_bps']}")
    if size.capacity_bytes > memory * RING_MEMORY_LIMIT:
        raise RingTooLargeError(f"{what}: more than half of this camera's {memory_mb} MB of "
                                "memory; lower one of them")
    if size.capacity_bytes > memory * RING_MEMORY_WARNING:
        log.warning("%s: over a quarter of this camera's %d MB of memory", what, memory_mb)
    return size


def on_raspberry_pi() -> bool:
    try:
        return "Raspberry Pi" in Path("/proc/device-tree/model").read_text(errors="ignore")
    except OSError:
        return False


def video_format(settings: Settings) -> VideoFormat:
    return VideoFormat(settings["camera.width"], settings["camera.height"], settings["camera.fps"],
                       settings["camera.bitrate_bps"], settings["camera.keyframe_interval_s"])


def video_source(settings: Settings, realtime: bool = True) -> VideoSource:
    spec = settings["camera.source"]
    if spec == "auto":
        spec = "picamera2" if on_raspberry_pi() else "synthetic"
    return open_video_source(spec, video_format(settings), realtime=realtime)


def audio_source(settings: Settings, realtime: bool = True) -> AudioSource:
    """The microphone named by ``audio.source`` ("none" gives a source with ``has_audio`` False)."""
    spec = settings["audio.source"]
    if spec == "auto":
        spec = "pyaudio" if on_raspberry_pi() else "synthetic"
    audio = AudioFormat(settings["audio.sample_rate"], settings["audio.channels"],
                        settings["audio.bitrate_bps"])
    return open_audio_source(spec, audio, realtime=realtime)


class MediaClock:
    """Time as the video says it is: the pts of the newest video unit (for --fast runs, where
    sources run ahead of the wall clock but stamp frames as if captured in real time)."""

    def __init__(self) -> None:
        self.latest_us: int | None = None
        self._changed = threading.Condition()

    def see(self, unit: AccessUnit) -> None:
        if unit.stream == VIDEO:
            with self._changed:
                self.latest_us = unit.pts_us
                self._changed.notify_all()

    def wait_until(self, pts_us: int, give_up: Callable[[], bool]) -> None:
        """Block until the video has reached ``pts_us``, or until ``give_up()`` says to stop
        waiting (checked at least every 50 ms)."""
        with self._changed:
            while (self.latest_us is None or self.latest_us < pts_us) and not give_up():
                self._changed.wait(0.05)

    def __call__(self) -> int:
        return self.latest_us if self.latest_us is not None else 0


def count_sealed(recordings: Path) -> int:
    """How many sealed recordings are in ``recordings`` (those an upload would send)."""
    from ..uploader import find_sealed_recordings

    return len(find_sealed_recordings(recordings)[0])


@dataclass
class Device:
    """Every part of a running camera. Build with `Device.build`, then `start()`, then `close()`."""

    settings: Settings
    ring: Any
    video: VideoSource
    audio: AudioSource
    controller: Controller
    recordings_dir: Path
    clock: Callable[[], int]
    media_clock: MediaClock
    realtime: bool = True
    closing: threading.Event = field(default_factory=threading.Event)
    writer_lock: WriterLock | None = None  # held from build() until close()

    @classmethod
    def build(cls, settings: Settings, board: Board, *, realtime: bool = True,
              recordings_dir: Path | None = None) -> Device:
        """Everything a camera needs; ``realtime=False`` lets file and synthetic sources run
        as fast as they can, with the controller on media time.

        A card that is read-only, failing or full as the camera starts does not stop it: the
        device buffers with the fault shown, without the lock and without recovery (it never
        touches a recordings directory it has not locked), and takes both once the controller's
        retry finds the card usable (`probe_storage`)."""
        data_dir = settings.data_dir
        recordings = recordings_dir or data_dir / "recordings"
        lock: WriterLock | None = None
        fault: OSError | None = None
        try:
            make_private_dir(recordings)
            lock = WriterLock.acquire(recordings)  # before recovery: never seal a live recording
        except OSError as exc:
            if not is_card_fault(exc):
                raise
            fault = exc
        try:
            device = cls._assemble(settings, board, realtime, recordings, locked=lock is not None)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        device.writer_lock = lock
        if fault is not None:
            log.error("the recordings directory %s cannot be used: %s", recordings,
                      describe(fault))
            device.controller.storage_unusable(fault)
        return device

    @classmethod
    def _assemble(cls, settings: Settings, board: Board, realtime: bool,
                  recordings: Path, locked: bool = True) -> Device:
        """`build` once ``recordings`` is locked for this process (or, not ``locked``, once its
        card was found unusable: then nothing in it is touched)."""
        data_dir = settings.data_dir
        key = DeviceKey.load_or_create(data_dir)
        video = video_source(settings, realtime)
        audio = audio_source(settings, realtime)
        try:
            size = ring_size_for(settings, audio.has_audio)
        except BaseException:  # settings the memory cannot hold: release the microphone
            video.stop()
            audio.close()
            raise
        ring = PreEventRing(settings["recording.pre_event_s"], size.capacity_bytes, size.max_units)
        board_settings = BoardSettings.from_mapping(settings.board)
        media_clock = MediaClock()
        clock: Callable[[], int] = monotonic_us if realtime else media_clock
        for path in recover_interrupted(recordings, key) if locked else ():
            log.warning("sealed %s, which a power cut or crash had left open", path)
        factory = RecordingFactory(recordings, key, settings,
                                   audio.audio_specific_config if audio.has_audio else None,
                                   encrypt_for=recording_encryption_key(settings))
        opener = _Opener(factory)
        controller = Controller(
            ring, board, opener.open,
            min_free_bytes=int(settings["storage.min_free_mb"] * 1024 * 1024),
            storage=lambda: free_bytes(recordings), clock_us=clock,
            audio_in_pre_event=settings["audio.in_pre_event"],
            stealth_allowed=board_settings.stealth_allowed,
            audio_overflows=lambda: audio.stats.overflows,
            audio_resyncs=lambda: audio.stats.resyncs,
            upload=station_upload(settings, key, recordings),
            kept=lambda: count_sealed(recordings),
            recover=lambda: recover_interrupted(recordings, key))
        device = cls(settings, ring, video, audio, controller, recordings, clock, media_clock,
                     realtime)
        opener.device = device
        controller.probe = device.probe_storage
        return device

    def probe_storage(self) -> None:
        """Raise (OSError, or RecordingsBusyError) unless a recording could be made now: the
        recordings directory is there, locked by this process, and takes a file, written and
        synced. The controller calls it to retry a card that failed."""
        make_private_dir(self.recordings_dir)
        if self.writer_lock is None:  # the card was unusable at start: lock it now
            self.writer_lock = WriterLock.acquire(self.recordings_dir)
            log.info("recordings directory %s locked: the card can be written", self.recordings_dir)
        probe = self.recordings_dir / PROBE_NAME
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"bwv storage probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        probe.unlink()

    def start(self) -> None:
        self.video.start(self._sink)
        self.audio.start(self._sink)
        if self.controller.board.docked:  # switched on in the dock: upload straight away
            self.controller.handle(BoardEvent(BoardEventKind.DOCKED, time.monotonic(), "dock"))

    def _sink(self, unit: AccessUnit) -> None:
        if unit.stream == AUDIO and not self.realtime:
            # Unpaced sources run as fast as they can, and audio encodes far faster than video:
            # hold each audio unit until the video has caught up with it, so that both streams
            # cover the same stretch of media time (else the audio runs seconds ahead of the
            # video, and of the times the manifest gives each segment).
            self.media_clock.wait_until(unit.pts_us, self._stop_pacing)
        self.media_clock.see(unit)
        self.controller.push(unit)

    def _stop_pacing(self) -> bool:
        return self.closing.is_set() or self.video.finished.is_set()

    def close(self) -> None:
        """Stop and seal any recording, then stop the sources. Safe to call twice."""
        self.closing.set()
        try:
            self.controller.stop_recording("recorder shutting down")
            self.video.stop()
            self.audio.stop()
            self.ring.close()
        finally:
            if self.writer_lock is not None:  # sealed (or failed for good): the next may start
                self.writer_lock.release()


PROBE_NAME = ".bwv-probe"


class _Opener:
    """Opens recordings for the controller, never in a directory this process has not locked
    (after a start on an unusable card, the lock is taken by `Device.probe_storage`)."""

    def __init__(self, factory: RecordingFactory) -> None:
        self.factory = factory
        self.device: Device | None = None

    def open(self) -> FileRecording:
        if self.device is not None and self.device.writer_lock is None:
            self.device.probe_storage()
        return self.factory.open()


def recording_encryption_key(settings: Settings) -> EncryptionPublicKey | None:
    """The station's encryption key from ``station.public_key``: recordings are encrypted for
    it. None when no station is pinned, or its pin (from a station before encryption) has no
    encryption key. A pin that does not read is a SettingsError: a camera meant to be paired
    never records in the clear because of a typo."""
    from ..integrity.keys import PublicKeyFormatError
    from ..integrity.station_pin import parse_pin

    text = str(settings["station.public_key"])
    if not text.strip():
        return None
    try:
        return parse_pin(text).encryption_key
    except PublicKeyFormatError as exc:
        raise SettingsError(f"station.public_key: {exc}") from None


def station_upload(settings: Settings, key: DeviceKey,
                   recordings: Path) -> Callable[[], bool] | None:
    """What the controller runs when docked: upload every sealed recording to ``station.url``
    (an https station checked against ``station.cafile`` when set), deleting each local copy
    only once the station has verified it. None without a station. A missing CA file fails each
    upload with a message naming it, and the camera keeps recording."""
    url = str(settings["station.url"])
    if not url:
        return None
    cafile = settings.cafile
    if cafile is not None and not cafile.is_file():
        log.error("station.cafile = %s does not exist: uploads will fail until it does", cafile)
    pin_text = str(settings["station.public_key"])

    def upload() -> bool:
        from ..integrity.keys import PublicKeyFormatError
        from ..integrity.station_pin import parse_pin
        from ..uploader import HOW_TO_PIN, Uploader  # httpx is loaded only when uploading

        try:
            pin = parse_pin(pin_text) if pin_text.strip() else None
        except PublicKeyFormatError as exc:
            log.error("station.public_key: %s: nothing is uploaded until it is fixed", exc)
            return False
        if pin is None:
            log.warning("no station key pinned (station.public_key): recordings are uploaded "
                        "but none is deleted; %s", HOW_TO_PIN)
        with Uploader(url, key, settings.device_id, recordings, pin=pin,
                      cafile=cafile) as uploader:
            summary = uploader.upload_all()
        for outcome in summary.outcomes:
            log.info("upload: %s", outcome)
            if outcome.kept_files:
                log.warning("uploaded and verified %s; kept its directory because it holds "
                            "files that are not part of the recording: %s",
                            outcome.recording_id, ", ".join(outcome.kept_files))
        if summary.stopped:
            log.warning("upload stopped early: %s", summary.stopped)
        return summary.ok

    return upload
