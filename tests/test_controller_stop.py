"""How a recording stops, and how the controller lives with a storage fault while buffering.

Issue 13, finding 10 and the storage-fault deliverable: a stop never blocks the controller's
thread (the watchdog and the board keep being served while a slow card drains), a stop is decided
by pts (frames and audio still in an encoder at the stop are written), and a fault seen while
buffering is retried until the card is back. The controller runs with the real ring, a board
that is a queue, and recordings kept in memory; the CLI tests are in test_controller_storage.py.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import recorder
from recorder import AUDIO, VIDEO, AccessUnit
from recorder.board import BoardEvent, BoardEventKind, Condition, Cue, IndicatorStatus, Mode
from recorder.device.controller import Controller, State
from recorder.settings import Settings

FRAME = 33_333  # µs, 30 fps


class MemoryRecording:
    """A recording that keeps what it is given; ``gate`` (when set) holds every write until
    it opens, as a slow card does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.units: list[AccessUnit] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.sealed = 0
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()

    def write(self, unit: AccessUnit) -> None:
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        with self._lock:
            self.units.append(unit)

    def event(self, kind: str, **fields: Any) -> None:
        with self._lock:
            self.events.append((kind, fields))

    def seal(self, reason: str = "stopped") -> None:
        self.sealed += 1


class QueueBoard:
    """A board whose events the test puts in, and which remembers what it was told."""

    def __init__(self) -> None:
        self.events: queue.Queue[BoardEvent] = queue.Queue()
        self.shown: list[IndicatorStatus] = []
        self.cues: list[Cue] = []
        self.docked = False

    def get_event(self, timeout: float | None = None) -> BoardEvent | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def show(self, status: IndicatorStatus) -> None:
        self.shown.append(status)

    def cue(self, cue: Cue) -> None:
        self.cues.append(cue)

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def make(tmp_path: Path, **options: Any) -> tuple[Controller, list[MemoryRecording], QueueBoard,
                                                  Clock]:
    recordings: list[MemoryRecording] = []

    def open_recording() -> MemoryRecording:
        recordings.append(MemoryRecording(tmp_path / f"rec{len(recordings) + 1}"))
        return recordings[-1]

    board, clock = QueueBoard(), Clock()
    controller = Controller(recorder.PreEventRing(1.0, 1 << 20), board,  # type: ignore[arg-type]
                            open_recording, min_free_bytes=1000, storage=lambda: 1 << 40,
                            clock_us=clock, **options)
    controller.stop_wait_s = 0.05  # quick tests; the stops themselves take milliseconds
    return controller, recordings, board, clock


def video(n: int, frame: int = FRAME, gop: int = 15) -> AccessUnit:
    return AccessUnit(VIDEO, n * frame, n % gop == 0, bytes([n % 256]) * 100)


def audio(n: int) -> AccessUnit:
    return AccessUnit(AUDIO, n * FRAME + 7, True, bytes([n % 256]) * 10)


def feed_video(controller: Controller, clock: Clock, frames: range) -> None:
    for n in frames:
        clock.now = n * FRAME
        controller.push(video(n))


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def later(delay_s: float, *actions: Callable[[], object]) -> threading.Thread:
    """Run ``actions`` on a thread after ``delay_s`` (what an encoder's latency looks like)."""
    def run() -> None:
        time.sleep(delay_s)
        for action in actions:
            action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# -- 1: a stop does not block the controller's thread ---------------------------------------------

def test_a_stop_on_a_slow_card_keeps_the_watchdog_and_the_board_served(tmp_path: Path) -> None:
    """Finding 10: `_stop` joined the writer on the controller's thread, so a card taking 10 s
    to drain left the systemd watchdog without pings. Now the stop returns at once (STOPPING,
    the LED still on), heartbeats go on, and the recording is complete once the card catches
    up."""
    controller, recordings, board, clock = make(tmp_path)
    feed_video(controller, clock, range(0, 30))
    controller.start_recording("test")
    gate = threading.Event()
    recordings[0].gate = gate  # the card stalls
    feed_video(controller, clock, range(30, 45))
    beats: list[float] = []
    halt = threading.Event()
    runner = threading.Thread(target=controller.run, args=(halt,),
                              kwargs={"poll_s": 0.01, "heartbeat": lambda: beats.append(
                                  time.monotonic())}, daemon=True)
    runner.start()
    try:
        board.events.put(BoardEvent(BoardEventKind.STOP, 2.0, "button"))
        wait_until(lambda: controller.state is State.STOPPING, timeout=2)
        time.sleep(0.4)  # longer than the controller waits for a seal inside an event
        since = time.monotonic() - 0.3
        assert sum(beat > since for beat in beats) >= 5, "no heartbeat while the card drains"
        assert controller.state is State.STOPPING
        assert board.shown[-1].mode is Mode.RECORDING  # the public is told until it is sealed
        assert Cue.STOP in board.cues  # the wearer is told at once
        assert recordings[0].sealed == 0
    finally:
        gate.set()
        wait_until(lambda: controller.state is State.BUFFERING)
        halt.set()
        runner.join(5)
    assert not runner.is_alive()
    assert recordings[0].sealed == 1
    assert board.shown[-1].mode is Mode.BUFFERING
    written = [unit.pts_us for unit in recordings[0].units]
    assert written[-1] == 44 * FRAME and written == sorted(set(written))  # nothing lost
    assert [kind for kind, _ in recordings[0].events] == ["trigger", "stop"]


def test_a_start_while_the_last_recording_seals_is_refused_with_a_cue(tmp_path: Path) -> None:
    controller, recordings, board, clock = make(tmp_path)
    feed_video(controller, clock, range(0, 30))
    controller.start_recording("test")
    gate = threading.Event()
    recordings[0].gate = gate
    feed_video(controller, clock, range(30, 35))
    board.cues.clear()
    try:
        controller.handle(BoardEvent(BoardEventKind.STOP, 1.0, "button"))
        controller.handle(BoardEvent(BoardEventKind.START, 1.1, "button"))
        assert board.cues == [Cue.STOP, Cue.REFUSED] and len(recordings) == 1
    finally:
        gate.set()
    assert controller.stop_recording(timeout=5) == recordings[0].path
    assert controller.state is State.BUFFERING


# -- 2, 3: a stop is decided by pts -------------------------------------------------------------

def test_audio_still_in_the_encoder_at_the_stop_is_written(tmp_path: Path) -> None:
    """Finding 10: the AAC encoder hands its frames over ~0.1 s after capture; audio captured
    before the stop but delivered after it was dropped (by the controller while stopping, and
    by the writer, which stopped at the first video frame past the stop)."""
    controller, recordings, _, clock = make(tmp_path)
    feed_video(controller, clock, range(0, 30))
    controller.start_recording("test")
    lag = 5  # frames of audio still in the encoder
    for n in range(30, 60):
        clock.now = n * FRAME
        controller.push(video(n))
        if n - lag >= 30:
            controller.push(audio(n - lag))
    stop_at = clock.now
    late = later(0.1, *[lambda n=n: controller.push(audio(n)) for n in range(60 - lag, 61)])
    controller.handle(BoardEvent(BoardEventKind.STOP, 2.0, "button"))
    late.join(5)
    wait_until(lambda: controller.check() is None and controller.state is State.BUFFERING)
    sound = [unit.pts_us for unit in recordings[0].units if unit.stream == AUDIO]
    assert sound == [audio(n).pts_us for n in range(30, len(sound) + 30)]  # none lost on the way
    assert sound[-1] >= stop_at  # the audio reaches the stop


def test_at_low_fps_a_frame_captured_before_the_stop_is_written(tmp_path: Path) -> None:
    """Finding 10: at 5 fps a frame captured before the stop arrives up to 0.2 s after it; the
    writer's 0.1 s pop timeout ended the recording without it."""
    controller, recordings, _, clock = make(tmp_path)
    slow = 200_000  # µs, 5 fps
    for n in range(0, 20):
        clock.now = n * slow
        controller.push(video(n, slow, gop=5))
    controller.start_recording("test")
    clock.now = 19 * slow + 50_000  # the stop, after frame 20's capture began
    late = later(0.15, lambda: controller.push(video(20, slow, gop=5)),
                 lambda: time.sleep(0.05), lambda: controller.push(video(21, slow, gop=5)))
    assert controller.stop_recording("test") is not None
    late.join(5)
    written = [unit.pts_us for unit in recordings[0].units]
    assert 20 * slow in written


def test_a_stop_after_the_sources_went_quiet_ends_soon(tmp_path: Path) -> None:
    """The wait for the stop instant is bounded: a camera that stopped delivering (a file ran
    out) ends the recording within a fraction of a second, with everything it delivered."""
    controller, recordings, _, clock = make(tmp_path)
    feed_video(controller, clock, range(0, 30))
    controller.start_recording("test")
    feed_video(controller, clock, range(30, 40))
    clock.now += 10 * FRAME  # the stop comes after the last frame, and no frame follows
    started = time.monotonic()
    assert controller.stop_recording("test") is not None
    assert time.monotonic() - started < 1.5
    assert recordings[0].units[-1].pts_us == 39 * FRAME and recordings[0].sealed == 1


# -- 4: a start in the dock ----------------------------------------------------------------------
# Held by tests/test_controller.py::test_a_double_press_in_the_dock_is_refused_with_a_cue_and_a_
# log_line (the REFUSED cue, the warning line, no recording, the board told it is docked).


# -- 8: retrying the card while buffering -----------------------------------------------------

class Card:
    """A card that fails with ``errno`` until ``back`` is set."""

    def __init__(self, error: int = errno.EROFS) -> None:
        self.error = error
        self.back = False
        self.probes = 0
        self.recovered = 0

    def probe(self) -> None:
        self.probes += 1
        if not self.back:
            raise OSError(self.error, "Read-only file system")

    def recover(self) -> None:
        self.recovered += 1


def test_a_storage_fault_is_retried_while_buffering_and_cleared_when_the_card_is_back(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    card, now = Card(), [100.0]
    controller, recordings, board, _ = make(tmp_path, probe=card.probe, recover=card.recover,
                                            retry_s=3.0, monotonic=lambda: now[0])
    controller.storage_unusable(OSError(errno.EROFS, "Read-only file system"))
    assert board.shown[-1].conditions == {Condition.ERROR}
    controller.check()
    assert (card.probes, card.recovered) == (1, 0)
    now[0] += 1.0
    controller.check()
    assert card.probes == 1  # not before retry_s
    card.back = True
    now[0] += 2.5
    with caplog.at_level(logging.INFO, logger="recorder.controller"):
        controller.check()
    assert (card.probes, card.recovered) == (2, 1)
    assert board.shown[-1].conditions == frozenset() and controller.conditions == set()
    assert "storage usable again" in caplog.text
    now[0] += 10.0
    controller.check()
    assert card.probes == 2  # no fault: no more probes
    assert recordings == []  # nobody pressed the button


def test_a_start_on_a_card_still_failing_is_refused_with_the_cue(tmp_path: Path) -> None:
    card = Card(errno.EIO)
    controller, recordings, board, clock = make(tmp_path, probe=card.probe,
                                                recover=card.recover)
    feed_video(controller, clock, range(0, 30))
    controller.storage_unusable(OSError(errno.EIO, "Input/output error"))
    assert controller.start_recording("test") is None
    assert recordings == [] and board.cues == [Cue.REFUSED]
    assert "no new recording could be made: storage I/O error" in controller.errors[-1]
    card.back = True
    assert controller.start_recording("test") is not None  # the press itself retries
    assert controller.conditions == set()
    controller.stop_recording(timeout=5)


# -- 6: the ring follows the configured rates ---------------------------------------------------

def ring_settings(tmp_path: Path, **changes: Any) -> Settings:
    """Small synthetic-camera settings (no PyAV import: this file stays quick to load)."""
    base = {"camera_source": "synthetic", "camera_width": 320, "camera_height": 240,
            "camera_fps": 30, "camera_keyframe_interval_s": 1.0, "audio_source": "synthetic",
            "storage_data_dir": str(tmp_path / "data")}
    return Settings.load(None).with_values(**{**base, **changes})


def test_the_ring_follows_the_configured_bit_rates_and_pre_event(tmp_path: Path) -> None:
    """Finding 10 said the ring was sized for the default bit rate whatever the configured
    one. Each setting moves the capacity in proportion, and the device builds its ring so."""
    from recorder.device.assembly import ring_size_for

    base = {"camera_bitrate_bps": 2_000_000, "audio_bitrate_bps": 64_000,
            "recording_pre_event_s": 30.0}
    chosen = ring_settings(tmp_path, **base)

    def capacity(**changes: Any) -> int:
        return ring_size_for(chosen.with_values(**changes), True, 1 << 40).capacity_bytes

    video_part = capacity(**base) - capacity(**{**base, "camera_bitrate_bps": 1_000_000})
    assert capacity(**{**base, "camera_bitrate_bps": 3_000_000}) - capacity(**base) == video_part
    assert capacity(**{**base, "audio_bitrate_bps": 128_000}) > capacity(**base)
    longer = capacity(**{**base, "recording_pre_event_s": 60.0})
    assert longer / capacity(**base) == pytest.approx((60 + 2 + 10) / (30 + 2 + 10), rel=0.01)  # 2 GOPs, 10 s slack
    needed = (2_000_000 + 64_000) / 8 * 30
    assert needed < capacity(**base) < 3 * needed
    without_audio = ring_size_for(chosen, False, 1 << 40)
    assert without_audio.capacity_bytes < capacity(**base)


def test_the_device_builds_its_ring_from_the_settings(tmp_path: Path) -> None:
    from recorder.board import BoardSettings, ScriptedBoard
    from recorder.device.assembly import Device, ring_size_for

    chosen = ring_settings(tmp_path, camera_bitrate_bps=3_000_000, audio_source="none",
                           recording_pre_event_s=5.0)
    device = Device.build(chosen, ScriptedBoard(BoardSettings(), run_thread=False))
    try:
        assert device.ring.capacity_bytes == ring_size_for(chosen, False).capacity_bytes
    finally:
        device.close()


def test_a_ring_too_large_for_the_memory_is_refused_and_a_large_one_warned_of(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from recorder.device.assembly import RingTooLargeError, ring_size_for

    huge = ring_settings(tmp_path, camera_bitrate_bps=50_000_000, recording_pre_event_s=120.0)
    with pytest.raises(RingTooLargeError, match=r"needs 1\d\d\d MB for recording.pre_event_s = "
                       r"120 at camera.bitrate_bps = 50000000: more than half of this "
                       r"camera's 1024 MB"):
        ring_size_for(huge, True, 1 << 30)
    with caplog.at_level(logging.WARNING, logger="recorder.device"):
        ring_size_for(huge, True, 3 << 30)
    assert "over a quarter of this camera's 3072 MB" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recorder.device"):
        ring_size_for(huge, True, 8 << 30)
    assert caplog.text == ""
