"""The record button's gesture machine, driven with explicit timestamps (no threads, no sleeps)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hyp_settings
from hypothesis import strategies as st

from recorder.board import BoardEvent, BoardEventKind, BoardSettings, GestureMachine

START, STOP, MARKER = BoardEventKind.START, BoardEventKind.STOP, BoardEventKind.MARKER
ARMED, DISARMED = BoardEventKind.STOP_ARMED, BoardEventKind.STOP_DISARMED


class Driver:
    """Plays (t, pressed) edges and collects every event, letting time pass between them."""

    def __init__(self, **overrides: object) -> None:
        self.machine = GestureMachine(BoardSettings(**overrides))  # type: ignore[arg-type]
        self.events: list[BoardEvent] = []

    def edge(self, pressed: bool, t: float) -> None:
        self.events += self.machine.edge(pressed, t)

    def tap(self, t: float, length: float = 0.1) -> None:
        self.edge(True, t)
        self.edge(False, t + length)

    def advance(self, t: float) -> None:
        self.events += self.machine.advance(t)

    def kinds(self) -> list[BoardEventKind]:
        return [e.kind for e in self.events]


def test_double_press_starts_recording_on_the_second_press() -> None:
    d = Driver()
    d.tap(1.0)
    d.edge(True, 1.3)
    assert d.events == [BoardEvent(START, 1.3)]
    assert d.machine.recording


def test_single_press_while_buffering_does_nothing() -> None:
    d = Driver()
    d.tap(1.0)
    d.advance(10.0)
    assert d.events == []


def test_second_press_exactly_at_the_window_edge_starts() -> None:
    d = Driver(double_press_s=0.5)
    d.tap(1.0)
    d.tap(1.5)
    assert d.kinds() == [START]


def test_second_press_just_after_the_window_does_not_start() -> None:
    d = Driver(double_press_s=0.5)
    d.tap(1.0)
    d.tap(1.501)
    d.advance(10.0)
    assert d.kinds() == []


def test_press_after_a_late_second_press_pairs_with_it() -> None:
    # the late press is a new first press: a third press within the window of it starts
    d = Driver()
    d.tap(1.0)
    d.tap(1.6)
    d.tap(2.0)
    assert d.events == [BoardEvent(START, 2.0)]


def test_window_setting_is_honoured() -> None:
    d = Driver(double_press_s=1.0)
    d.tap(1.0)
    d.tap(1.9)
    assert d.kinds() == [START]


def test_triple_press_starts_once_and_adds_no_marker() -> None:
    d = Driver()
    d.tap(1.0)
    d.tap(1.3)
    d.tap(1.6)
    d.advance(20.0)
    assert d.kinds() == [START]


def test_press_after_the_start_burst_is_a_marker_stamped_at_the_press() -> None:
    d = Driver()
    d.tap(1.0)
    d.tap(1.3)
    d.tap(5.0, length=0.4)
    assert d.events[1] == BoardEvent(MARKER, 5.0)


def test_hold_stops_after_hold_time_while_still_pressed() -> None:
    d = Driver(hold_s=3.0)
    d.tap(1.0)
    d.tap(1.3)
    d.edge(True, 10.0)
    d.advance(12.9)
    assert d.kinds() == [START]
    d.advance(13.0)
    assert d.events[-1] == BoardEvent(STOP, 13.0)
    assert not d.machine.recording
    d.edge(False, 14.0)
    assert d.kinds() == [START, STOP]  # the release of the stopping press means nothing


def test_release_just_before_hold_time_is_a_marker_not_a_stop() -> None:
    d = Driver(hold_s=3.0)
    d.tap(1.0)
    d.tap(1.3)
    d.tap(10.0, length=2.99)
    d.advance(30.0)
    assert d.kinds() == [START, MARKER]
    assert d.machine.recording


def test_hold_that_starts_during_the_double_press_does_not_stop() -> None:
    d = Driver()
    d.tap(1.0)
    d.edge(True, 1.3)   # starts
    d.advance(10.0)     # and is held for 8.7 s
    d.edge(False, 10.0)
    assert d.kinds() == [START]
    assert d.machine.recording


def test_hold_while_buffering_does_nothing() -> None:
    d = Driver()
    d.edge(True, 1.0)
    d.advance(10.0)
    d.edge(False, 10.0)
    assert d.events == []


def test_presses_after_stop_during_the_hold_are_ignored_until_release() -> None:
    d = Driver(debounce_s=0.0)
    d.tap(1.0)
    d.tap(1.3)
    d.edge(True, 10.0)
    d.advance(13.0)
    # the button chatters as it is let go: none of these is a new gesture start pair
    d.edge(False, 13.5)
    d.edge(True, 13.52)
    d.edge(False, 13.54)
    d.advance(20.0)
    assert d.kinds() == [START, STOP]


def test_double_press_right_after_stop_starts_again() -> None:
    d = Driver()
    d.tap(1.0)
    d.tap(1.3)
    d.edge(True, 10.0)
    d.edge(False, 13.5)
    d.tap(15.0)
    d.tap(15.3)
    assert d.kinds() == [START, STOP, START]


def test_bounce_within_debounce_time_is_one_press() -> None:
    d = Driver(debounce_s=0.03)
    d.tap(1.0)
    for t in (1.305, 1.31, 1.315):  # contact bounce after the second press
        d.edge(t in (1.31,), t)
    d.advance(1.4)
    d.edge(False, 1.4)
    d.advance(5.0)
    assert d.kinds() == [START]


def test_bounce_on_release_while_recording_gives_one_marker() -> None:
    d = Driver(debounce_s=0.03)
    d.tap(1.0)
    d.tap(1.3)
    d.edge(True, 5.0)
    d.edge(False, 5.2)
    d.edge(True, 5.21)
    d.edge(False, 5.22)
    d.advance(9.0)
    assert d.kinds() == [START, MARKER]


def test_level_that_changed_during_debounce_is_taken_when_it_settles() -> None:
    d = Driver(debounce_s=0.03)
    d.tap(1.0, length=0.01)  # the release came inside the debounce time
    assert d.machine.pressed
    d.advance(1.03)
    assert not d.machine.pressed
    d.tap(1.3)
    assert d.kinds() == [START]


def test_stop_confirmation_needs_a_second_hold() -> None:
    d = Driver(stop_confirmation=True, stop_confirm_window_s=5.0)
    d.tap(1.0)
    d.tap(1.3)
    d.edge(True, 10.0)
    d.advance(13.0)
    d.edge(False, 13.5)
    assert d.kinds() == [START, ARMED]
    assert d.machine.recording and d.machine.stop_armed
    d.edge(True, 17.0)   # within 5 s of the arming
    d.advance(20.0)
    assert d.kinds() == [START, ARMED, STOP]
    assert not d.machine.recording


def test_stop_confirmation_lapses_after_its_window() -> None:
    d = Driver(stop_confirmation=True, stop_confirm_window_s=5.0)
    d.tap(1.0)
    d.tap(1.3)
    d.edge(True, 10.0)
    d.edge(False, 13.5)
    d.advance(18.0)
    assert d.events[-1] == BoardEvent(DISARMED, 18.0)
    d.edge(True, 20.0)
    d.advance(23.0)
    assert d.kinds() == [START, ARMED, DISARMED, ARMED]
    assert d.machine.recording


def test_confirming_press_begun_in_the_window_stops_even_if_its_hold_ends_after() -> None:
    d = Driver(stop_confirmation=True, stop_confirm_window_s=2.0)
    d.tap(1.0)
    d.tap(1.3)
    d.edge(True, 10.0)
    d.edge(False, 13.2)
    d.edge(True, 14.9)   # window ends at 15.0; the hold completes at 17.9
    d.advance(18.0)
    assert d.kinds() == [START, ARMED, STOP]


def test_short_press_while_armed_is_a_marker_and_keeps_the_arming() -> None:
    d = Driver(stop_confirmation=True, stop_confirm_window_s=5.0)
    d.tap(1.0)
    d.tap(1.3)
    d.edge(True, 10.0)
    d.edge(False, 13.2)
    d.tap(14.0)
    assert d.kinds() == [START, ARMED, MARKER]
    assert d.machine.stop_armed


def test_aux_trigger_starts_recording() -> None:
    d = Driver()
    d.events += d.machine.trigger("holster", 2.0)
    assert d.events == [BoardEvent(START, 2.0, "holster")]
    assert d.machine.recording


def test_aux_trigger_while_recording_adds_a_marker_and_never_stops() -> None:
    d = Driver()
    d.tap(1.0)
    d.tap(1.3)
    d.events += d.machine.trigger("holster", 5.0)
    assert d.kinds() == [START, MARKER]
    assert d.events[-1].source == "holster"
    assert d.machine.recording


def test_aux_trigger_chatter_is_debounced() -> None:
    d = Driver(debounce_s=0.03)
    d.events += d.machine.trigger("holster", 2.0)
    d.events += d.machine.trigger("holster", 2.01)
    assert d.kinds() == [START]


def test_aux_start_during_a_button_press_makes_that_press_meaningless() -> None:
    d = Driver()
    d.edge(True, 1.0)
    d.events += d.machine.trigger("holster", 1.5)
    d.advance(10.0)
    d.edge(False, 10.0)
    assert d.kinds() == [START]


def test_controller_saying_not_recording_resets_the_button() -> None:
    d = Driver()
    d.tap(1.0)
    d.tap(1.3)
    d.machine.set_recording(False)   # e.g. the start failed: storage full
    d.tap(5.0)
    d.advance(10.0)
    assert d.kinds() == [START]
    d.tap(12.0)
    d.tap(12.3)
    assert d.kinds() == [START, START]


def test_next_deadline_is_the_hold_completion() -> None:
    d = Driver(hold_s=3.0, debounce_s=0.0)
    d.tap(1.0)
    d.tap(1.3)
    assert d.machine.next_deadline() is None
    d.edge(True, 4.0)
    assert d.machine.next_deadline() == 7.0


@hyp_settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.001, max_value=4.0), min_size=1, max_size=40))
def test_any_edge_sequence_alternates_start_and_stop(gaps: list[float]) -> None:
    d = Driver()
    t = 0.0
    for i, gap in enumerate(gaps):
        t += gap
        d.edge(i % 2 == 0, t)
    d.advance(t + 10.0)
    starts_stops = [k for k in d.kinds() if k in (START, STOP)]
    assert all(a != b for a, b in zip(starts_stops, starts_stops[1:]))
    if starts_stops:
        assert starts_stops[0] is START
    assert d.machine.recording == (bool(starts_stops) and starts_stops[-1] is START)
    times = [e.t for e in d.events if e.kind is not MARKER]
    assert times == sorted(times)


@pytest.mark.parametrize("key,value", [("double_press_s", 5.0), ("hold_s", 0.1),
                                       ("reminder_s", 1.0), ("debounce_s", "a")])
def test_bad_timing_setting_names_key_value_and_range(key: str, value: object) -> None:
    from recorder.board import BoardSettingsError
    with pytest.raises(BoardSettingsError, match=rf"board\.{key} = .*not allowed"):
        BoardSettings.from_mapping({key: value})


def test_two_devices_on_one_pin_is_refused() -> None:
    from recorder.board import BoardSettingsError
    with pytest.raises(BoardSettingsError, match="already used by board.button_pin"):
        BoardSettings.from_mapping({"red_led_pin": 17})


def test_unknown_setting_is_refused_with_the_allowed_list() -> None:
    from recorder.board import BoardSettingsError
    with pytest.raises(BoardSettingsError, match="unknown board setting.*hold_time.*hold_s"):
        BoardSettings.from_mapping({"hold_time": 3})
