"""The GPIO board on gpiozero's MockFactory: gestures through real pin edges, patterns checked with
``assert_states_and_times``. A ManualClock drives both the board and the mock pins' timestamps, so
every time is exact and nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import gpiozero.pins.mock
import pytest
from gpiozero import Device, DigitalOutputDevice, GPIOPinInUse
from gpiozero.pins import Factory
from gpiozero.pins.mock import MockFactory, MockPin

from recorder.board import (BoardEventKind, BoardSettings, Condition, Cue, GpioBoard,
                            IndicatorStatus, ManualClock, Mode, StealthNotAllowedError)

START, STOP, MARKER = BoardEventKind.START, BoardEventKind.STOP, BoardEventKind.MARKER


class NotInjectedFactory(Factory):  # type: ignore[misc]  # gpiozero has no type hints
    """gpiozero's default factory during these tests: a device built without the injected
    factory fails instead of quietly finding a MockFactory installed globally."""

    def reserve_pins(self, requester: object, *pins: object) -> None:
        raise AssertionError(f"{requester!r} was built without the injected pin factory")

    def pin(self, spec: object) -> object:
        raise AssertionError(f"pin {spec!r} asked of gpiozero's default pin factory")


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    """A fresh MockFactory to inject; gpiozero's default meanwhile refuses every pin."""
    saved = Device.pin_factory
    Device.pin_factory = NotInjectedFactory()
    factory = MockFactory()
    yield factory
    factory.reset()
    Device.pin_factory = saved


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    clock = ManualClock(100.0)
    # the mock pins timestamp their state changes with this clock, so times are exact
    monkeypatch.setattr(gpiozero.pins.mock, "monotonic", clock)
    return clock


def make_board(factory: MockFactory, clock: ManualClock, **overrides: object) -> GpioBoard:
    settings = BoardSettings(**overrides)  # type: ignore[arg-type]
    return GpioBoard(settings, pin_factory=factory, clock=clock, run_thread=False)


def pin(factory: MockFactory, number: int) -> MockPin:
    result: MockPin = factory.pin(number)
    return result


def press(board: GpioBoard, factory: MockFactory, t: float, length: float = 0.1) -> None:
    board.loop.run_until(t)
    pin(factory, 17).drive_low()
    board.loop.run_until(t + length)
    pin(factory, 17).drive_high()


def kinds(board: GpioBoard) -> list[BoardEventKind]:
    return [e.kind for e in board.pending_events()]


def test_double_press_on_the_pin_starts(mock_factory: MockFactory, clock: ManualClock) -> None:
    with make_board(mock_factory, clock) as board:
        press(board, mock_factory, 101.0)
        press(board, mock_factory, 101.3)
        events = board.pending_events()
        assert [(e.kind, e.t) for e in events] == [(START, 101.3)]


def test_hold_on_the_pin_stops_after_three_seconds(mock_factory: MockFactory,
                                                   clock: ManualClock) -> None:
    with make_board(mock_factory, clock) as board:
        press(board, mock_factory, 101.0)
        press(board, mock_factory, 101.3)
        board.show(IndicatorStatus(Mode.RECORDING))
        board.loop.run_until(110.0)
        pin(mock_factory, 17).drive_low()
        board.loop.run_until(112.99)
        assert kinds(board) == [START]
        board.loop.run_until(113.5)
        stop = board.pending_events()
        assert [(e.kind, e.t) for e in stop] == [(STOP, 113.0)]


def test_bounce_on_the_pin_is_one_marker(mock_factory: MockFactory, clock: ManualClock) -> None:
    with make_board(mock_factory, clock) as board:
        board.show(IndicatorStatus(Mode.RECORDING))
        button = pin(mock_factory, 17)
        board.loop.run_until(101.0)
        for step in range(5):  # 5 ms contact bounce
            clock.set(101.0 + step * 0.005)
            button.drive_low() if step % 2 == 0 else button.drive_high()
        board.loop.run_until(101.2)
        button.drive_high()
        board.loop.run_until(105.0)
        assert kinds(board) == [MARKER]


def test_aux_trigger_pin_starts_and_marks(mock_factory: MockFactory, clock: ManualClock) -> None:
    with make_board(mock_factory, clock, aux_pins=(25,)) as board:
        holster = pin(mock_factory, 25)
        board.loop.run_until(101.0)
        holster.drive_low()
        holster.drive_high()
        board.loop.run_until(110.0)
        holster.drive_low()
        events = board.pending_events()
        assert [(e.kind, e.source) for e in events] == [(START, "aux-gpio25"),
                                                       (MARKER, "aux-gpio25")]


@pytest.mark.parametrize("active_low", [True, False])
def test_dock_sense_honours_polarity(mock_factory: MockFactory, clock: ManualClock,
                                     active_low: bool) -> None:
    with make_board(mock_factory, clock, dock_active_low=active_low) as board:
        dock = pin(mock_factory, 24)
        assert not board.docked
        dock.drive_low() if active_low else dock.drive_high()
        assert board.docked
        dock.drive_high() if active_low else dock.drive_low()
        assert not board.docked
        assert kinds(board) == [BoardEventKind.DOCKED, BoardEventKind.UNDOCKED]


def red(factory: MockFactory) -> MockPin:
    return pin(factory, 27)


def green(factory: MockFactory) -> MockPin:
    return pin(factory, 22)


def beeper(factory: MockFactory) -> MockPin:
    return pin(factory, 23)


def test_buffering_blinks_green_slowly(mock_factory: MockFactory, clock: ManualClock) -> None:
    with make_board(mock_factory, clock) as board:
        green(mock_factory).clear_states()
        board.show(IndicatorStatus(Mode.BUFFERING))
        board.loop.run_until(104.0)
        green(mock_factory).assert_states_and_times(
            [(0.0, True), (0.2, False), (1.8, True), (0.2, False), (1.8, True)])
        assert len(green(mock_factory).states) == 5


def test_recording_flashes_red_and_beeps_twice_at_start(mock_factory: MockFactory,
                                                        clock: ManualClock) -> None:
    with make_board(mock_factory, clock) as board:
        board.loop.run_until(101.0)
        for p in (red(mock_factory), green(mock_factory), beeper(mock_factory)):
            p.clear_states()
        board.show(IndicatorStatus(Mode.RECORDING))
        board.cue(Cue.START)
        board.loop.run_until(103.0)
        red(mock_factory).assert_states_and_times(
            [(0.0, False), (0.0, True), (0.25, False), (0.75, True), (0.25, False), (0.75, True)])
        assert len(red(mock_factory).states) == 6
        beeper(mock_factory).assert_states_and_times(
            [(0.0, False), (0.0, True), (0.1, False), (0.1, True), (0.1, False)])
        assert len(beeper(mock_factory).states) == 5
        assert green(mock_factory).states[-1].state is False


def test_reminder_beeps_every_interval_while_recording(mock_factory: MockFactory,
                                                       clock: ManualClock) -> None:
    with make_board(mock_factory, clock, reminder_s=30.0) as board:
        board.loop.run_until(101.0)
        beeper(mock_factory).clear_states()
        board.show(IndicatorStatus(Mode.RECORDING))
        board.loop.run_until(161.5)
        beeper(mock_factory).assert_states_and_times(
            [(0.0, False), (30.0, True), (0.1, False), (0.1, True), (0.1, False),
             (29.7, True), (0.1, False), (0.1, True), (0.1, False)])
        assert len(beeper(mock_factory).states) == 9
        board.show(IndicatorStatus(Mode.BUFFERING))
        board.loop.run_until(300.0)
        assert len(beeper(mock_factory).states) == 9


def test_stop_is_one_long_beep_and_red_goes_off(mock_factory: MockFactory,
                                                 clock: ManualClock) -> None:
    with make_board(mock_factory, clock) as board:
        board.show(IndicatorStatus(Mode.RECORDING))
        board.loop.run_until(110.1)  # red is on from 110.0 to 110.25
        beeper(mock_factory).clear_states()
        board.show(IndicatorStatus(Mode.BUFFERING))
        board.cue(Cue.STOP)
        board.loop.run_until(115.0)
        beeper(mock_factory).assert_states_and_times([(0.0, False), (0.0, True), (1.0, False)])
        assert len(beeper(mock_factory).states) == 3
        assert red(mock_factory).states[-1].state is False
        assert red(mock_factory).states[-1].timestamp == pytest.approx(0.1)


@pytest.mark.parametrize("condition,count", [(Condition.LOW_BATTERY, 4),
                                             (Condition.STORAGE_FULL, 3),
                                             (Condition.CLOCK_NOT_SET, 5),
                                             (Condition.ERROR, 3)])
def test_alarm_beeps_at_once_and_every_20_seconds(mock_factory: MockFactory, clock: ManualClock,
                                                  condition: Condition, count: int) -> None:
    from recorder.board.patterns import ALARM_BEEPS
    on, off = ALARM_BEEPS[condition].on_s, ALARM_BEEPS[condition].off_s
    with make_board(mock_factory, clock) as board:
        board.loop.run_until(101.0)
        beeper(mock_factory).clear_states()
        board.show(IndicatorStatus(Mode.BUFFERING, frozenset({condition})))
        board.loop.run_until(125.0)
        burst = [(on, False), (off, True)] * (count - 1) + [(on, False)]
        gap = 20.0 - count * (on + off) + off
        expected = [(0.0, False), (0.0, True)] + burst + [(gap, True)] + burst
        beeper(mock_factory).assert_states_and_times(expected)
        assert len(beeper(mock_factory).states) == len(expected)


@pytest.mark.parametrize("condition,count", [(Condition.LOW_BATTERY, 4),
                                             (Condition.STORAGE_FULL, 3),
                                             (Condition.CLOCK_NOT_SET, 5),
                                             (Condition.STORAGE_NEARLY_FULL, 2)])
def test_status_led_blinks_the_condition_count(mock_factory: MockFactory, clock: ManualClock,
                                               condition: Condition, count: int) -> None:
    with make_board(mock_factory, clock) as board:
        board.loop.run_until(101.0)
        green(mock_factory).clear_states()
        board.show(IndicatorStatus(Mode.BUFFERING, frozenset({condition})))
        board.loop.run_until(103.5)
        burst = [(0.15, False), (0.15, True)] * (count - 1) + [(0.15, False)]
        green(mock_factory).assert_states_and_times(
            [(0.0, False), (0.0, True)] + burst + [(3.0 - count * 0.3 + 0.15, True)])


def test_error_lights_green_steadily_above_other_conditions(mock_factory: MockFactory,
                                                           clock: ManualClock) -> None:
    with make_board(mock_factory, clock) as board:
        board.loop.run_until(101.0)
        board.show(IndicatorStatus(Mode.BUFFERING,
                                   frozenset({Condition.LOW_BATTERY, Condition.ERROR})))
        green(mock_factory).clear_states()
        board.loop.run_until(130.0)
        assert green(mock_factory).states == [gpiozero.pins.mock.PinState(0.0, True)]


def test_uploading_blinks_green_fast(mock_factory: MockFactory, clock: ManualClock) -> None:
    with make_board(mock_factory, clock) as board:
        board.loop.run_until(101.0)
        green(mock_factory).clear_states()
        board.show(IndicatorStatus(Mode.UPLOADING))
        board.loop.run_until(102.1)
        green(mock_factory).assert_states_and_times(
            [(0.0, False), (0.0, True), (0.25, False), (0.25, True), (0.25, False), (0.25, True),
             (0.25, False)])


def test_marker_cue_queues_behind_a_playing_burst(mock_factory: MockFactory,
                                                  clock: ManualClock) -> None:
    with make_board(mock_factory, clock) as board:
        board.loop.run_until(101.0)
        beeper(mock_factory).clear_states()
        board.cue(Cue.START)
        board.loop.run_until(101.05)
        board.cue(Cue.MARKER)
        board.loop.run_until(103.0)
        beeper(mock_factory).assert_states_and_times(
            [(0.0, False), (0.0, True), (0.1, False), (0.1, True), (0.1, False), (0.1, True),
             (0.05, False)])


def test_stealth_refused_when_not_allowed(mock_factory: MockFactory, clock: ManualClock) -> None:
    with make_board(mock_factory, clock) as board:
        board.show(IndicatorStatus(Mode.RECORDING))
        with pytest.raises(StealthNotAllowedError, match="board.stealth_allowed = true"):
            board.show(IndicatorStatus(Mode.RECORDING, stealth=True))
        board.loop.run_until(101.1)
        assert red(mock_factory).state  # still flashing: on from 101.0 to 101.25
        assert board.indicators.status.stealth is False


def test_stealth_when_allowed_silences_everything(mock_factory: MockFactory,
                                                  clock: ManualClock) -> None:
    with make_board(mock_factory, clock, stealth_allowed=True, reminder_s=10.0) as board:
        board.show(IndicatorStatus(Mode.RECORDING, frozenset({Condition.LOW_BATTERY})))
        board.loop.run_until(101.1)
        board.show(IndicatorStatus(Mode.RECORDING, frozenset({Condition.LOW_BATTERY}),
                                   stealth=True))
        for p in (red(mock_factory), green(mock_factory), beeper(mock_factory)):
            p.clear_states()
        board.cue(Cue.MARKER)
        board.loop.run_until(200.0)
        for p in (red(mock_factory), green(mock_factory), beeper(mock_factory)):
            assert p.states == [gpiozero.pins.mock.PinState(0.0, False)]
        board.show(IndicatorStatus(Mode.RECORDING))
        board.loop.run_until(201.0)
        assert len(red(mock_factory).states) > 1


def test_show_tells_the_button_whether_it_records(mock_factory: MockFactory,
                                                  clock: ManualClock) -> None:
    with make_board(mock_factory, clock) as board:
        board.show(IndicatorStatus(Mode.RECORDING))  # e.g. started by the controller itself
        press(board, mock_factory, 101.0)
        assert kinds(board) == [MARKER]


def test_close_releases_every_pin(mock_factory: MockFactory, clock: ManualClock) -> None:
    board = make_board(mock_factory, clock, aux_pins=(25,))
    board.close()
    again = make_board(mock_factory, clock, aux_pins=(25,))  # would raise GPIOPinInUse
    again.close()


def test_threaded_board_reports_a_double_press(mock_factory: MockFactory) -> None:
    with GpioBoard(BoardSettings(debounce_s=0.0), pin_factory=mock_factory) as board:
        button = pin(mock_factory, 17)
        for _ in range(2):
            button.drive_low()
            button.drive_high()
        event = board.get_event(timeout=5)
        assert event is not None and event.kind is START


def test_a_board_without_the_injected_factory_is_refused(mock_factory: MockFactory) -> None:
    with pytest.raises(AssertionError, match="without the injected pin factory"):
        GpioBoard(BoardSettings(), run_thread=False)


# button, aux trigger, dock sense, red LED, green LED, beeper: in the order the board claims them
@pytest.mark.parametrize("busy", [17, 25, 24, 27, 22, 23])
def test_a_failed_construction_leaves_every_pin_free(mock_factory: MockFactory,
                                                    clock: ManualClock, busy: int) -> None:
    other_program = DigitalOutputDevice(busy, pin_factory=mock_factory)
    with pytest.raises(GPIOPinInUse):
        make_board(mock_factory, clock, aux_pins=(25,))
    other_program.close()
    board = make_board(mock_factory, clock, aux_pins=(25,))  # raises if a pin was kept
    board.close()
