"""The terminal and scripted boards, the not-a-Pi answer of the Pi checks (the checks on a Pi:
test_field_kit.py), and the README's pattern table."""

from __future__ import annotations

import io
import os
import pty
from pathlib import Path

import pytest

from recorder.board import (BoardEventKind, BoardSettings, CheckStatus, Cue, IndicatorStatus,
                            Levels, ManualClock, Mode, ScriptedBoard, ScriptStep, TerminalBoard,
                            pattern_table_markdown, rpi_checks)

START, STOP, MARKER = BoardEventKind.START, BoardEventKind.STOP, BoardEventKind.MARKER
BOARD_README = Path(__file__).resolve().parent.parent / "board" / "README.md"


def test_scripted_board_plays_double_press_marker_and_hold() -> None:
    clock = ManualClock(0.0)
    script = [ScriptStep(1.0, "tap"), ScriptStep(1.3, "tap"), ScriptStep(10.0, "tap"),
              ScriptStep(20.0, "hold")]
    with ScriptedBoard(BoardSettings(), script, clock=clock) as board:
        board.loop.run_until(30.0)
        events = board.pending_events()
        assert [(e.kind, e.t) for e in events] == [(START, 1.3), (MARKER, 10.0), (STOP, 23.0)]


def test_scripted_board_records_level_history() -> None:
    clock = ManualClock(0.0)
    with ScriptedBoard(BoardSettings(), clock=clock) as board:
        board.show(IndicatorStatus(Mode.RECORDING))
        board.cue(Cue.START)
        board.loop.run_until(0.3)
        assert board.history == [
            (0.0, Levels(False, True, False)),   # buffering: green on for 0.2 s
            (0.0, Levels(True, False, False)),   # show(RECORDING)
            (0.0, Levels(True, False, True)),    # cue(START)
            (0.1, Levels(True, False, False)),
            (0.2, Levels(True, False, True)),
            (0.25, Levels(False, False, True)),
            (0.3, Levels(False, False, False)),
        ]


def test_scripted_board_refuses_an_unknown_action() -> None:
    with pytest.raises(ValueError, match="'jump' is not one of press"):
        ScriptedBoard(BoardSettings(), [ScriptStep(1.0, "jump")], clock=ManualClock())


def test_scripted_aux_trigger_and_dock() -> None:
    clock = ManualClock(0.0)
    script = [ScriptStep(1.0, "trigger", "holster"), ScriptStep(2.0, "dock")]
    with ScriptedBoard(BoardSettings(), script, clock=clock) as board:
        board.loop.run_until(3.0)
        assert [(e.kind, e.source) for e in board.pending_events()] == [
            (START, "holster"), (BoardEventKind.DOCKED, "dock")]
        assert board.docked


def terminal(clock: ManualClock, out: io.StringIO, **overrides: object) -> TerminalBoard:
    read_end, write_end = os.pipe()
    os.close(write_end)
    board = TerminalBoard(BoardSettings(**overrides), input_fd=read_end,  # type: ignore[arg-type]
                          output=out, clock=clock, run_thread=False)
    os.close(read_end)
    return board


def test_terminal_space_is_the_button_and_h_holds() -> None:
    clock, out = ManualClock(0.0), io.StringIO()
    with terminal(clock, out, debounce_s=0.0) as board:
        board.feed(" ")
        clock.set(0.3)
        board.feed(" ")
        board.loop.run_until(1.0)  # a second press is told from a key repeat after a moment
        board.show(IndicatorStatus(Mode.RECORDING))
        board.loop.run_until(5.0)
        board.feed("h")
        board.loop.run_until(9.0)
        assert [e.kind for e in board.pending_events()] == [START, STOP]


def test_terminal_draws_leds_and_rings_the_bell_per_beep() -> None:
    clock, out = ManualClock(0.0), io.StringIO()
    with terminal(clock, out) as board:
        board.show(IndicatorStatus(Mode.RECORDING))
        board.cue(Cue.START)
        board.loop.run_until(1.0)
        text = out.getvalue()
        assert text.count("\a") == 2
        assert "[REC] red ●" in text
        assert "recording: ok" in text


def test_terminal_keys_for_aux_dock_and_stealth_request() -> None:
    clock, out = ManualClock(0.0), io.StringIO()
    with terminal(clock, out) as board:
        board.feed("ads")
        assert [e.kind for e in board.pending_events()] == [
            START, BoardEventKind.DOCKED, BoardEventKind.STEALTH_TOGGLE]


def test_terminal_board_reads_keys_from_a_pty() -> None:
    controller, follower = pty.openpty()
    out = io.StringIO()
    settings = BoardSettings(debounce_s=0.0)
    with TerminalBoard(settings, input_fd=follower, output=out) as board:
        os.write(controller, b"  ")  # a double press typed on the terminal
        event = board.get_event(timeout=5)
        assert event is not None and event.kind is START
    os.close(controller)
    os.close(follower)


def test_rpi_checks_say_not_a_pi_elsewhere(tmp_path: Path) -> None:
    checks = rpi_checks(model_path=tmp_path / "absent")
    assert [(c.label, c.status) for c in checks] == [("Raspberry Pi", CheckStatus.SKIPPED)]
    assert "not a Raspberry Pi" in checks[0].detail


def test_board_readme_table_matches_the_code() -> None:
    text = BOARD_README.read_text(encoding="utf-8")
    begin, end = "<!-- pattern-table:begin -->\n", "\n<!-- pattern-table:end -->"
    table = text[text.index(begin) + len(begin):text.index(end)]
    assert table == pattern_table_markdown(), \
        "regenerate with: python -c 'from recorder.board import pattern_table_markdown as t; " \
        "print(t())'"


def test_pattern_table_lists_every_state_and_cue() -> None:
    from recorder.board import Condition
    table = pattern_table_markdown()
    for name in [*(m.value for m in Mode), *(c.value for c in Condition),
                 *(f"cue: {c.value}" for c in Cue)]:
        assert f"| {name} " in table


RPI = Path(__file__).resolve().parent.parent / "board" / "rpi"
PI_GUIDE = Path(__file__).resolve().parent.parent / "docs" / "raspberry-pi.md"


def test_wiring_table_pins_are_the_settings_defaults() -> None:
    import re
    rows = {m.group(2): int(m.group(1)) for m in re.finditer(
        r"\| GPIO(\d+) \| \d+ \| `(\w+)`", PI_GUIDE.read_text(encoding="utf-8"))}
    defaults = BoardSettings()
    assert rows == {"button_pin": defaults.button_pin, "red_led_pin": defaults.red_led_pin,
                    "green_led_pin": defaults.green_led_pin, "buzzer_pin": defaults.buzzer_pin,
                    "dock_pin": defaults.dock_pin}


def test_systemd_unit_restarts_has_watchdog_and_only_needed_groups() -> None:
    import configparser
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(RPI / "bwv-recorder.service", encoding="utf-8")
    service = unit["Service"]
    assert service["ExecStart"].startswith("/opt/bwv-recorder/.venv/bin/bwv run")  # as docs/raspberry-pi.md installs it
    assert service["Restart"] == "on-failure"
    assert float(service["WatchdogSec"]) > 0
    assert service["User"] == "bwv"
    assert set(service["SupplementaryGroups"].split()) == {"video", "gpio", "audio"}
    assert service["StandardOutput"] == "journal"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
