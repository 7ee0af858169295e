"""The device program, assembled from settings: sources -> ring -> controller -> recordings.

`Device` owns every part and their threads. `bwv record` (the scripted, headless run) and
`bwv run` (the program a camera runs from boot) drive it from `recorder.cli.record`.
"""

from __future__ import annotations

import logging
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
from ..settings import Settings
from ..storage.recording import RecordingFactory, recover_interrupted
from ..storage.writer_lock import WriterLock
from .controller import Controller, free_bytes, ring_size

log = logging.getLogger("recorder.device")  # the name log lines have always shown

AAC_FRAME_SAMPLES = 1024


class DeviceError(RecorderError):
    """The device could not be assembled (a source, the storage, the key)."""


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
        as fast as they can, with the controller on media time."""
        data_dir = settings.data_dir
        recordings = recordings_dir or data_dir / "recordings"
        make_private_dir(recordings)
        lock = WriterLock.acquire(recordings)  # before recovery: never seal a live recording
        try:
            device = cls._assemble(settings, board, realtime, recordings)
        except BaseException:
            lock.release()
            raise
        device.writer_lock = lock
        return device

    @classmethod
    def _assemble(cls, settings: Settings, board: Board, realtime: bool,
                  recordings: Path) -> Device:
        """`build` once ``recordings`` is locked for this process."""
        data_dir = settings.data_dir
        key = DeviceKey.load_or_create(data_dir)
        video = video_source(settings, realtime)
        audio = audio_source(settings, realtime)
        audio_rate = settings["audio.sample_rate"] / AAC_FRAME_SAMPLES if audio.has_audio else 0.0
        size = ring_size(settings["recording.pre_event_s"], settings["camera.bitrate_bps"],
                         settings["audio.bitrate_bps"] if audio.has_audio else 0,
                         settings["camera.fps"],
                         audio_rate, settings["camera.keyframe_interval_s"])
        ring = PreEventRing(settings["recording.pre_event_s"], size.capacity_bytes, size.max_units)
        board_settings = BoardSettings.from_mapping(settings.board)
        media_clock = MediaClock()
        clock: Callable[[], int] = monotonic_us if realtime else media_clock
        for path in recover_interrupted(recordings, key):
            log.warning("sealed %s, which a power cut or crash had left open", path)
        factory = RecordingFactory(recordings, key, settings,
                                   audio.audio_specific_config if audio.has_audio else None)
        controller = Controller(
            ring, board, factory.open,
            min_free_bytes=int(settings["storage.min_free_mb"] * 1024 * 1024),
            storage=lambda: free_bytes(recordings), clock_us=clock,
            audio_in_pre_event=settings["audio.in_pre_event"],
            stealth_allowed=board_settings.stealth_allowed,
            audio_overflows=lambda: audio.stats.overflows,
            upload=station_upload(settings, key, recordings),
            kept=lambda: count_sealed(recordings),
            recover=lambda: recover_interrupted(recordings, key))
        return cls(settings, ring, video, audio, controller, recordings, clock, media_clock,
                   realtime)

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
