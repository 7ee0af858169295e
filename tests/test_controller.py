"""The controller's rules, with the real ring and the scripted board; the recording is a list.

End-to-end runs with real segment files are in tests/test_record_e2e.py.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recorder
from recorder import AUDIO, VIDEO, AccessUnit
from recorder.board import (BoardEvent, BoardEventKind, BoardSettings, Condition, Cue,
                            IndicatorStatus, Mode, ScriptedBoard, TerminalBoard)
from recorder.device.controller import Controller, State, ring_size

FRAME = 33_333


class ListRecording:
    """A recording that keeps what it is given in memory (thread-safe like the real one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.units: list[AccessUnit] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.sealed = 0
        self.lock = threading.Lock()

    def write(self, unit: AccessUnit) -> None:
        with self.lock:
            self.units.append(unit)

    def event(self, kind: str, **fields: Any) -> None:
        with self.lock:
            self.events.append((kind, fields))

    def seal(self, reason: str = "stopped") -> None:
        self.sealed += 1
        self.reason = reason


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def make(tmp_path: Path, *, free: int = 10**12, audio_in_pre_event: bool = False,
         stealth_allowed: bool = False, pre_event_s: float = 1.0,
         capacity: int = 1 << 20) -> tuple[Controller, list[ListRecording], ScriptedBoard, Clock]:
    recordings: list[ListRecording] = []

    def open_recording() -> ListRecording:
        recordings.append(ListRecording(tmp_path / f"rec{len(recordings) + 1}"))
        return recordings[-1]

    board = ScriptedBoard(BoardSettings(stealth_allowed=stealth_allowed), run_thread=False)
    clock = Clock()
    controller = Controller(recorder.PreEventRing(pre_event_s, capacity), board, open_recording,
                            min_free_bytes=1000, storage=lambda: free, clock_us=clock,
                            audio_in_pre_event=audio_in_pre_event, stealth_allowed=stealth_allowed)
    return controller, recordings, board, clock


def feed(controller: Controller, clock: Clock, frames: range, audio: bool = True) -> list[AccessUnit]:
    units = []
    for n in frames:
        clock.now = n * FRAME
        unit = AccessUnit(VIDEO, n * FRAME, n % 15 == 0, bytes([n % 256]) * 100)
        controller.push(unit)
        units.append(unit)
        if audio:
            sound = AccessUnit(AUDIO, n * FRAME + 7, True, bytes([n % 256]) * 10)
            controller.push(sound)
            units.append(sound)
    return units


def test_start_drains_the_pre_event_buffer_and_the_seam_has_no_gap_or_duplicate(tmp_path: Path) -> None:
    controller, recordings, board, clock = make(tmp_path)
    before = feed(controller, clock, range(0, 90), audio=False)
    controller.start_recording("test")
    after = feed(controller, clock, range(90, 150), audio=False)
    controller.stop_recording("test")
    units = recordings[0].units
    assert units[0].is_keyframe
    start = before.index(units[0])
    assert 30 <= len(before) - start <= 45  # 1 s of pre-event at 30 fps, up to one GOP more
    assert units == before[start:] + after[:len(units) - (len(before) - start)]
    assert units[-1] == after[-1]
    assert recordings[0].sealed == 1


def test_audio_stays_out_of_the_pre_event_buffer_unless_allowed(tmp_path: Path) -> None:
    controller, recordings, _, clock = make(tmp_path)
    feed(controller, clock, range(0, 60))
    trigger_us = clock.now
    controller.start_recording()
    feed(controller, clock, range(60, 90))
    controller.stop_recording()
    audio = [u for u in recordings[0].units if u.stream == AUDIO]
    assert recordings[0].units[0].pts_us < trigger_us - 500_000  # the pre-event video is there
    assert audio[0].pts_us == trigger_us + 7  # the sound stamped 7 µs after the trigger
    assert all(u.pts_us >= trigger_us for u in audio)


def test_audio_stamped_after_the_trigger_but_arriving_during_the_start_is_kept(
        tmp_path: Path) -> None:
    """The start writes its trigger line (an fsync) before the state is RECORDING; audio the
    encoder stamps after the trigger and hands over meanwhile belongs to the recording."""
    controller, recordings, _, clock = make(tmp_path)
    feed(controller, clock, range(0, 60))
    late = AccessUnit(AUDIO, 60 * FRAME + 5_000, True, b"during the fsync")
    early = AccessUnit(AUDIO, 60 * FRAME - 5_000, True, b"before the trigger")
    opened = controller.open_recording

    def open_slow_recording() -> Any:
        recording = opened()
        written = recording.event

        def event(kind: str, **fields: Any) -> None:
            written(kind, **fields)
            if kind == "trigger":  # the audio thread pushes while this line is being written
                controller.push(early)
                controller.push(late)
        recording.event = event
        return recording

    controller.open_recording = open_slow_recording
    clock.now = 60 * FRAME
    controller.start_recording()
    feed(controller, clock, range(61, 90))
    controller.stop_recording()
    audio = [u for u in recordings[0].units if u.stream == AUDIO]
    assert audio[0] == late
    assert early not in audio and all(u.pts_us >= 60 * FRAME for u in audio)


@given(delays=st.lists(st.integers(0, 300_000), min_size=1, max_size=80),
       trigger_frame=st.integers(1, 40))
@settings(max_examples=60, deadline=None)
def test_audio_enters_a_recording_by_its_pts_whatever_its_delay(
        tmp_path_factory: pytest.TempPathFactory, delays: list[int], trigger_frame: int) -> None:
    """Audio units stamped every AAC frame reach the controller up to 0.3 s late (arrival is in
    pts order, one audio thread); exactly those stamped at or after the trigger are recorded."""
    controller, recordings, _, clock = make(tmp_path_factory.mktemp("c"))
    sounds = [AccessUnit(AUDIO, 10_000 + 21_333 * n, True, n.to_bytes(2, "big"))
              for n in range(len(delays))]
    arrivals, at = [], 0
    for sound, delay in zip(sounds, delays):
        at = max(at, sound.pts_us + delay)
        arrivals.append(at)
    trigger_us = trigger_frame * FRAME
    end = max(arrivals[-1], trigger_us) + FRAME
    pending = list(zip(arrivals, sounds))
    for n in range(end // FRAME + 1):
        clock.now = n * FRAME
        while pending and pending[0][0] <= clock.now:
            controller.push(pending.pop(0)[1])
        if n == trigger_frame:
            controller.start_recording()
        controller.push(AccessUnit(VIDEO, n * FRAME, n % 15 == 0, b"v"))
    controller.stop_recording()
    recorded = [u for u in recordings[0].units if u.stream == AUDIO]
    assert recorded == [u for u in sounds if u.pts_us >= trigger_us]


def test_audio_in_pre_event_starts_with_the_video(tmp_path: Path) -> None:
    controller, recordings, _, clock = make(tmp_path, audio_in_pre_event=True)
    feed(controller, clock, range(0, 60))
    controller.start_recording()
    feed(controller, clock, range(60, 90))
    controller.stop_recording()
    units = recordings[0].units
    assert units[0].stream == VIDEO and units[1].stream == AUDIO
    assert units[1].pts_us - units[0].pts_us < FRAME


def test_too_little_storage_refuses_to_start_and_shows_storage_full(tmp_path: Path) -> None:
    controller, recordings, board, clock = make(tmp_path, free=10)
    feed(controller, clock, range(0, 30))
    assert controller.start_recording() is None
    assert recordings == [] and controller.state is State.BUFFERING
    assert Condition.STORAGE_FULL in controller.conditions
    assert "storage full" in controller.errors[0]


def test_board_events_start_mark_and_stop(tmp_path: Path) -> None:
    controller, recordings, board, clock = make(tmp_path)
    feed(controller, clock, range(0, 30))
    controller.handle(BoardEvent(BoardEventKind.START, 1.0))
    assert controller.state is State.RECORDING
    feed(controller, clock, range(30, 45))
    controller.handle(BoardEvent(BoardEventKind.MARKER, 1.5))
    feed(controller, clock, range(45, 60))
    controller.handle(BoardEvent(BoardEventKind.STOP, 2.0))
    assert controller.state is State.BUFFERING
    kinds = [kind for kind, _ in recordings[0].events]
    assert kinds == ["trigger", "marker", "stop"]
    assert recordings[0].events[1][1]["board_t_us"] == 1_500_000


def test_a_second_start_while_recording_does_not_open_a_second_recording(tmp_path: Path) -> None:
    controller, recordings, _, clock = make(tmp_path)
    feed(controller, clock, range(0, 30))
    controller.start_recording()
    controller.handle(BoardEvent(BoardEventKind.START, 1.0, source="aux"))
    controller.stop_recording()
    assert len(recordings) == 1
    assert controller.stop_recording() is None  # a double stop does nothing


def test_stealth_is_refused_and_logged_when_not_allowed(tmp_path: Path) -> None:
    controller, recordings, board, clock = make(tmp_path, stealth_allowed=False)
    feed(controller, clock, range(0, 30))
    controller.start_recording()
    controller.handle(BoardEvent(BoardEventKind.STEALTH_TOGGLE, 1.0))
    controller.stop_recording()
    assert controller.stealth is False
    assert ("stealth", {"on": True, "allowed": False}) in recordings[0].events


def test_stealth_toggles_are_written_when_allowed(tmp_path: Path) -> None:
    controller, recordings, board, clock = make(tmp_path, stealth_allowed=True)
    feed(controller, clock, range(0, 30))
    controller.start_recording()
    controller.handle(BoardEvent(BoardEventKind.STEALTH_TOGGLE, 1.0))
    controller.handle(BoardEvent(BoardEventKind.STEALTH_TOGGLE, 2.0))
    controller.stop_recording()
    assert [f for k, f in recordings[0].events if k == "stealth"] == [
        {"on": True, "allowed": True}, {"on": False, "allowed": True}]


def test_overruns_become_manifest_events(tmp_path: Path) -> None:
    controller, recordings, _, clock = make(tmp_path, capacity=2_000)
    feed(controller, clock, range(0, 15), audio=False)
    writer_block = threading.Event()
    controller.start_recording()
    original = recordings[0].write

    def slow_write(unit: AccessUnit) -> None:
        writer_block.wait(10)
        original(unit)

    recordings[0].write = slow_write  # type: ignore[method-assign]
    feed(controller, clock, range(15, 120), audio=False)  # 10 KB into a 2 KB ring, writer stuck
    writer_block.set()
    controller.stop_recording()
    overruns = [f for k, f in recordings[0].events if k == "overrun"]
    assert overruns and sum(f["units"] for f in overruns) == controller.ring.stats().overrun_units > 0


def test_lost_microphone_audio_becomes_a_manifest_event(tmp_path: Path) -> None:
    overflows = [0]
    controller, recordings, _, clock = make(tmp_path)
    controller.audio_overflows = lambda: overflows[0]
    feed(controller, clock, range(0, 30))
    controller.start_recording()
    overflows[0] = 3
    controller.check()
    controller.check()  # counted once
    controller.stop_recording()
    assert [f for k, f in recordings[0].events if k == "audio_overflow"] == [{"blocks": 3}]


def test_a_jump_of_the_audio_timeline_becomes_a_manifest_event(tmp_path: Path) -> None:
    """Re-anchored audio pts leave a step in the audio's decode time, which bwv verify accepts
    only where the recording declares it (an audio_resync event)."""
    resyncs = [5]  # before the recording: not this recording's
    controller, recordings, _, clock = make(tmp_path)
    controller.audio_resyncs = lambda: resyncs[0]
    controller._audio_resyncs_seen = 5
    feed(controller, clock, range(0, 30))
    controller.start_recording()
    controller.check()
    resyncs[0] = 7
    controller.check()
    controller.check()  # counted once
    controller.stop_recording()
    assert [f for k, f in recordings[0].events if k == "audio_resync"] == [{"count": 2}]


def test_docked_camera_does_not_record(tmp_path: Path) -> None:
    controller, recordings, _, clock = make(tmp_path)
    controller.handle(BoardEvent(BoardEventKind.DOCKED, 0.0))
    assert controller.start_recording() is None and controller.state is State.DOCKED
    controller.handle(BoardEvent(BoardEventKind.UNDOCKED, 1.0))
    assert controller.state is State.BUFFERING


def test_the_board_shows_recording_while_recording(tmp_path: Path) -> None:
    controller, _, board, clock = make(tmp_path)
    feed(controller, clock, range(0, 30))
    shown: list[Mode] = []
    original = board.show
    board.show = lambda status: (shown.append(status.mode), original(status))  # type: ignore[method-assign]
    controller.start_recording()
    controller.stop_recording()
    assert shown == [Mode.RECORDING, Mode.BUFFERING]


def test_run_seals_the_recording_when_asked_to_stop(tmp_path: Path) -> None:
    controller, recordings, _, clock = make(tmp_path)
    feed(controller, clock, range(0, 30))
    controller.start_recording()
    stop = threading.Event()
    stop.set()
    controller.run(stop)
    assert recordings[0].sealed == 1 and controller.state is State.BUFFERING


@pytest.mark.parametrize("pre_event_s", [0, 30, 120])
def test_ring_size_holds_the_pre_event_buffer_at_the_configured_rate(pre_event_s: float) -> None:
    size = ring_size(pre_event_s, 10_000_000, 64_000, 30, 46.9, 1.0)
    needed = (10_000_000 + 64_000) / 8 * (pre_event_s + 1.0)
    assert size.capacity_bytes >= needed
    assert size.max_units >= (30 + 46.9) * (pre_event_s + 1.0)


def test_docking_uploads_in_the_background_with_the_uploading_pattern(tmp_path: Path) -> None:
    controller, _, board, clock = make(tmp_path)
    release = threading.Event()
    controller.upload = lambda: release.wait(10)
    shown: list[Mode] = []
    original = board.show
    board.show = lambda status: (shown.append(status.mode), original(status))  # type: ignore[method-assign]
    controller.handle(BoardEvent(BoardEventKind.DOCKED, 0.0))
    assert controller.state is State.DOCKED and shown[-1] is Mode.UPLOADING
    assert controller.start_recording() is None  # no recording in the dock
    release.set()
    for _ in range(200):
        controller.check()
        if controller.upload_results:
            break
        threading.Event().wait(0.01)
    controller.check()
    assert controller.upload_results == [True]
    # still in the dock: the board says the upload is done, not "buffering"
    assert shown[-1] is Mode.DOCKED
    assert controller.state is State.DOCKED and controller.dock_detail == "done"


def test_a_failed_upload_is_reported_and_keeps_the_camera_docked(tmp_path: Path) -> None:
    controller, _, _, _ = make(tmp_path)

    def unreachable() -> bool:
        raise ConnectionError("station unreachable")

    controller.upload = unreachable
    controller.handle(BoardEvent(BoardEventKind.DOCKED, 0.0))
    for _ in range(200):
        if controller.upload_results:
            break
        threading.Event().wait(0.01)
    assert controller.upload_results == [False]
    assert "upload failed: station unreachable" in controller.errors


def record_shows_and_cues(board: ScriptedBoard) -> tuple[list[IndicatorStatus], list[Cue]]:
    shown: list[IndicatorStatus] = []
    cues: list[Cue] = []
    show, cue = board.show, board.cue
    board.show = lambda status: (shown.append(status), show(status))  # type: ignore[method-assign]
    board.cue = lambda c: (cues.append(c), cue(c))  # type: ignore[method-assign]
    return shown, cues


def wait_for_upload(controller: Controller) -> None:
    for _ in range(500):
        controller.check()
        if controller.upload_results and controller._uploader is None:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the upload did not finish")


def test_docked_without_a_station_says_so_and_warns(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    controller, _, board, _ = make(tmp_path)
    shown, _ = record_shows_and_cues(board)
    with caplog.at_level(logging.WARNING, logger="recorder.controller"):
        controller.handle(BoardEvent(BoardEventKind.DOCKED, 0.0))
    assert controller.state is State.DOCKED
    assert (shown[-1].mode, shown[-1].detail) == (Mode.DOCKED, "no station configured")
    assert "no station is configured" in caplog.text


def test_a_double_press_in_the_dock_is_refused_with_a_cue_and_a_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    controller, recordings, board, clock = make(tmp_path)
    feed(controller, clock, range(0, 30))
    controller.handle(BoardEvent(BoardEventKind.DOCKED, 0.0))
    shown, cues = record_shows_and_cues(board)
    with caplog.at_level(logging.WARNING, logger="recorder.controller"):
        controller.handle(BoardEvent(BoardEventKind.START, 1.0))
    assert recordings == [] and controller.state is State.DOCKED
    assert cues == [Cue.REFUSED]
    assert "refused: the camera is docked" in caplog.text
    # the board took the double press for a start: it is told that nothing records
    assert shown and shown[-1].mode is Mode.DOCKED


@pytest.mark.parametrize("ok, kept, detail", [
    (True, 0, "done"), (True, 1, "uploaded, 1 kept"), (False, 2, "upload failed, 2 kept")])
def test_after_the_upload_the_board_says_how_it_went_while_docked(
        tmp_path: Path, ok: bool, kept: int, detail: str) -> None:
    controller, _, board, _ = make(tmp_path)
    controller.upload = lambda: ok
    controller.kept = lambda: kept
    shown, _ = record_shows_and_cues(board)
    controller.handle(BoardEvent(BoardEventKind.DOCKED, 0.0))
    assert (shown[-1].mode, shown[-1].detail) == (Mode.UPLOADING, "uploading")
    wait_for_upload(controller)
    assert controller.state is State.DOCKED
    assert (shown[-1].mode, shown[-1].detail) == (Mode.DOCKED, detail)
    controller.handle(BoardEvent(BoardEventKind.UNDOCKED, 5.0))
    assert (shown[-1].mode, shown[-1].detail) == (Mode.BUFFERING, "")


def test_docked_while_recording_docks_once_the_recording_stops(tmp_path: Path) -> None:
    controller, recordings, board, clock = make(tmp_path)
    feed(controller, clock, range(0, 30))
    controller.start_recording()
    board.set_docked(True)
    for event in board.pending_events():
        controller.handle(event)
    assert controller.state is State.RECORDING  # a recording is never cut short by the dock
    controller.stop_recording()
    controller.check()
    assert controller.state is State.DOCKED and controller.dock_detail == "no station configured"
    assert recordings[0].sealed == 1


def test_the_terminal_board_shows_the_docked_state_in_words(tmp_path: Path) -> None:
    out = io.StringIO()
    read_end, write_end = os.pipe()
    os.close(write_end)
    board = TerminalBoard(BoardSettings(), input_fd=read_end, output=out, run_thread=False)
    os.close(read_end)
    controller = Controller(recorder.PreEventRing(1.0, 1 << 20), board,
                            lambda: ListRecording(tmp_path / "rec"), min_free_bytes=0,
                            storage=lambda: 1, clock_us=lambda: 0)
    with board:
        controller.handle(BoardEvent(BoardEventKind.DOCKED, 0.0))
        assert out.getvalue().endswith("docked: no station configured\x1b[K")
        controller.handle(BoardEvent(BoardEventKind.UNDOCKED, 1.0))
        assert out.getvalue().endswith("buffering: ok\x1b[K")
