"""The board's settings (pins, gesture timings, reminder interval, stealth policy) and their checks.

Every default lives here, once. `BoardSettings.from_mapping` takes the ``[board]`` table of the
configuration file; a bad value raises `BoardSettingsError` naming the key, the value and what
is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from recorder.errors import RecorderError


class BoardSettingsError(RecorderError, ValueError):
    """A ``[board]`` setting has a value that is not allowed."""


# (minimum, maximum) in seconds for every timing setting, so the check and the README agree.
TIMING_RANGES: dict[str, tuple[float, float]] = {
    "double_press_s": (0.1, 2.0),
    "hold_s": (0.5, 10.0),
    "debounce_s": (0.0, 0.2),
    "stop_confirm_window_s": (1.0, 30.0),
    "reminder_s": (10.0, 600.0),
    "alarm_repeat_s": (5.0, 300.0),
}


@dataclass(frozen=True)
class BoardSettings:
    """Pins are BCM numbers (GPIO17 is physical pin 11); times are seconds.

    The defaults match the wiring table in docs/raspberry-pi.md. ``dock_pin`` and ``aux_pins``
    may be empty (None / ()) when the hardware has no such input.
    """

    button_pin: int = 17
    red_led_pin: int = 27
    green_led_pin: int = 22
    buzzer_pin: int = 23
    dock_pin: int | None = 24
    dock_active_low: bool = True  # the dock contact pulls the pin to ground
    aux_pins: tuple[int, ...] = ()
    aux_active_low: bool = True
    double_press_s: float = 0.5
    hold_s: float = 3.0
    debounce_s: float = 0.03
    stop_confirmation: bool = False
    stop_confirm_window_s: float = 5.0
    reminder_s: float = 120.0
    alarm_repeat_s: float = 20.0
    stealth_allowed: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for key, (low, high) in TIMING_RANGES.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not low <= value <= high:
                raise BoardSettingsError(
                    f"board.{key} = {value!r} is not allowed: give a number of seconds from "
                    f"{low:g} to {high:g}")
        pins = {"button_pin": self.button_pin, "red_led_pin": self.red_led_pin,
                "green_led_pin": self.green_led_pin, "buzzer_pin": self.buzzer_pin}
        if self.dock_pin is not None:
            pins["dock_pin"] = self.dock_pin
        for index, pin in enumerate(self.aux_pins):
            pins[f"aux_pins[{index}]"] = pin
        seen: dict[int, str] = {}
        for key, pin in pins.items():
            if isinstance(pin, bool) or not isinstance(pin, int) or not 2 <= pin <= 27:
                raise BoardSettingsError(
                    f"board.{key} = {pin!r} is not allowed: give a BCM GPIO number from 2 to 27")
            if pin in seen:
                raise BoardSettingsError(
                    f"board.{key} = {pin} is already used by board.{seen[pin]}: "
                    "every input and output needs its own pin")
            seen[pin] = key
        if self.extra:
            raise BoardSettingsError(
                f"unknown board setting(s) {', '.join(sorted(self.extra))}: allowed are "
                f"{', '.join(_FIELD_NAMES)}")

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> BoardSettings:
        """Settings from the ``[board]`` table of the configuration (missing keys: defaults)."""
        known = {key: value for key, value in table.items() if key in _FIELD_NAMES}
        extra = {key: value for key, value in table.items() if key not in _FIELD_NAMES}
        if "aux_pins" in known:
            aux = known["aux_pins"]
            if not isinstance(aux, (list, tuple)):
                raise BoardSettingsError(
                    f"board.aux_pins = {aux!r} is not allowed: give a list of BCM GPIO numbers")
            known["aux_pins"] = tuple(aux)
        for key in ("dock_active_low", "aux_active_low", "stop_confirmation", "stealth_allowed"):
            if key in known and not isinstance(known[key], bool):
                raise BoardSettingsError(
                    f"board.{key} = {known[key]!r} is not allowed: give true or false")
        _check_shared_pins(known)
        return cls(**known, extra=extra)


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(BoardSettings) if f.name != "extra")


PIN_KEYS = ("button_pin", "red_led_pin", "green_led_pin", "buzzer_pin", "dock_pin", "aux_pins")


def _check_shared_pins(given: Mapping[str, Any]) -> None:
    """Two settings on one pin: blame the key the ``[board]`` table set, not the default it
    collides with (``button_pin = 27`` is the mistake, not the red LED's default pin 27)."""
    defaults = {item.name: item.default for item in dataclasses.fields(BoardSettings)}
    order = [key for key in PIN_KEYS if key not in given]
    order += [key for key in given if key in PIN_KEYS]  # as the table gives them
    seen: dict[int, str] = {}
    for key in order:
        value = given.get(key, defaults[key])
        pins = enumerate(value) if key == "aux_pins" else [(None, value)]
        for index, pin in pins:
            if isinstance(pin, bool) or not isinstance(pin, int):
                continue  # a pin that is not a number: __post_init__ says so
            name = key if index is None else f"{key}[{index}]"
            if pin in seen:
                other = seen[pin]
                default = "" if other.split("[")[0] in given else " (its default)"
                raise BoardSettingsError(
                    f"board.{name} = {pin} is already used by board.{other}{default}: "
                    "every input and output needs its own pin")
            seen[pin] = name
