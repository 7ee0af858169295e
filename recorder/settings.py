"""The recorder's settings: one TOML file, every default and allowed range declared once, here.

`Settings.load(path)` reads the file (no file: all defaults); a bad value raises `SettingsError`
naming the key, the value and what is allowed. `settings_table_markdown()` renders the
documentation's table of settings and `example_settings_toml()` the example settings file, both
from the same declarations; `default_config_path()` is the file read when no --config is given.
The ``[board]`` table is checked by `recorder.board.BoardSettings`, which owns the pins and
gesture timings.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import textwrap
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RecorderError

DATA_DIR_ENV_VAR = "BWV_DATA_DIR"


def default_data_dir() -> Path:
    """The data directory: $BWV_DATA_DIR, else ~/.local/share/bwv."""
    value = os.environ.get(DATA_DIR_ENV_VAR, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".local" / "share" / "bwv"


class SettingsError(RecorderError, ValueError):
    """A setting, or the settings file, is not acceptable. The message says how to fix it."""


@dataclass(frozen=True)
class Option:
    """One setting: its table, key, default, allowed values and what it means."""

    table: str
    key: str
    default: Any
    help: str
    low: float | None = None  # numbers: inclusive range
    high: float | None = None
    choices: tuple[str, ...] = ()  # strings: allowed values; "file:PATH" allows any "file:..."

    @property
    def name(self) -> str:
        return f"{self.table}.{self.key}"

    def check(self, value: Any) -> Any:
        expected = type(self.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not expected:
            raise SettingsError(f"{self.name} = {value!r} is not allowed: {self.allowed()}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SettingsError(f"{self.name} = {value!r} is not allowed: {self.allowed()}")
        if self.low is not None and self.high is not None and not self.low <= value <= self.high:
            raise SettingsError(f"{self.name} = {value!r} is not allowed: {self.allowed()}")
        if self.choices and not any(_matches(value, choice) for choice in self.choices):
            raise SettingsError(f"{self.name} = {value!r} is not allowed: {self.allowed()}")
        return value

    def allowed(self) -> str:
        kind = {bool: "true or false", int: "a whole number", float: "a number",
                str: "a string"}[type(self.default)]
        if self.low is not None and self.high is not None:
            kind += f" from {_number(self.low)} to {_number(self.high)}"
        if self.choices:
            kind = "one of " + ", ".join(f'"{choice}"' for choice in self.choices)
        return f"give {kind}"


OPTIONS: tuple[Option, ...] = (
    Option("device", "device_id", "", "this camera's id in manifests and at the station "
           "(empty: the host name)"),
    Option("device", "officer_id", "", "the officer the camera is issued to (collar number)"),
    Option("camera", "source", "auto", "where video comes from: auto (picamera2 on a Pi, "
           "synthetic elsewhere), picamera2, synthetic, file:PATH, v4l2:DEVICE",
           choices=("auto", "picamera2", "synthetic", "file:PATH", "v4l2:DEVICE")),
    Option("camera", "width", 1920, "frame width, pixels", 64, 4096),
    Option("camera", "height", 1080, "frame height, pixels", 64, 3072),
    Option("camera", "fps", 30, "frames per second", 1, 120),
    Option("camera", "bitrate_bps", 10_000_000, "H.264 bit rate, bits per second",
           100_000, 50_000_000),
    Option("camera", "keyframe_interval_s", 1.0, "seconds between keyframes; a fragment is one "
           "GOP, and a recording starts at one", 0.2, 2.0),
    Option("audio", "source", "auto", "where audio comes from: auto (pyaudio on a Pi, synthetic "
           "elsewhere), pyaudio, pyaudio:DEVICE, synthetic, none",
           choices=("auto", "pyaudio", "pyaudio:DEVICE", "synthetic", "synthetic:HZ", "none")),
    Option("audio", "sample_rate", 48_000, "samples per second", 8_000, 96_000),
    Option("audio", "channels", 1, "1 (mono) or 2 (stereo)", 1, 2),
    Option("audio", "bitrate_bps", 64_000, "AAC bit rate, bits per second", 16_000, 320_000),
    Option("audio", "in_pre_event", False, "keep audio in the pre-event buffer (off by default: "
           "many jurisdictions forbid pre-recording audio)"),
    Option("recording", "pre_event_s", 30.0, "seconds of video kept before the button press",
           0, 120),
    Option("recording", "segment_s", 30.0, "a new segment file starts at the first keyframe "
           "after this many seconds", 2, 3600),
    Option("storage", "data_dir", "", "where recordings and the device key live (empty: "
           "$BWV_DATA_DIR or ~/.local/share/bwv)"),
    Option("storage", "min_free_mb", 512.0, "refuse to start, and stop a recording cleanly, "
           "below this much free space (MiB)", 0, 1_000_000),
    Option("station", "url", "", "the evidence station's URL for uploads when docked "
           "(empty: no upload)"),
    Option("station", "cafile", "", "CA certificate (PEM) to trust for an https station, for "
           "a station with a private CA or a self-signed certificate; `bwv upload --cafile` "
           "overrides it (empty: the system's CAs)"),
    Option("station", "public_key", "", "the station this camera trusts: the one line "
           "`bwv station key` prints on the station (bwv-station/1:ID:KEY:KEM:ENCRYPTION-KEY:"
           "SIGNATURE); a recording is deleted here only on a receipt signed by that key, and "
           "every recording is encrypted so that only that station can read it; `bwv upload "
           "--station-key` and `bwv record --station-key` override it (empty: record in the "
           "clear, upload, but never delete)"),
)
_BY_NAME = {option.name: option for option in OPTIONS}
TABLES = ("device", "camera", "audio", "recording", "storage", "station", "board")


@dataclass(frozen=True)
class Settings:
    """Validated settings. ``values`` maps "table.key" to its value; ``board`` is the raw
    ``[board]`` table, checked by `recorder.board.BoardSettings`."""

    values: Mapping[str, Any]
    board: Mapping[str, Any] = field(default_factory=dict)
    source: Path | None = None  # the file they came from, if any

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @classmethod
    def from_mapping(cls, document: Mapping[str, Any], source: Path | None = None) -> Settings:
        """Check a parsed TOML document; missing keys take their defaults."""
        where = f" in {source}" if source else ""
        unknown_tables = sorted(set(document) - set(TABLES))
        if unknown_tables:
            raise SettingsError(f"unknown table(s) [{'], ['.join(unknown_tables)}]{where}: "
                                f"allowed tables are {', '.join(TABLES)}")
        values = {option.name: option.default for option in OPTIONS}
        for table, entries in document.items():
            if not isinstance(entries, Mapping):
                raise SettingsError(f"{table} must be a table ([{table}]){where}")
            if table == "board":
                continue
            for key, value in entries.items():
                option = _BY_NAME.get(f"{table}.{key}")
                if option is None:
                    known = ", ".join(o.key for o in OPTIONS if o.table == table)
                    raise SettingsError(f"unknown setting {table}.{key}{where}: [{table}] "
                                        f"allows {known}")
                try:
                    values[option.name] = option.check(value)
                except SettingsError as exc:
                    raise SettingsError(f"{exc}{_in_file(source)}") from None
        for check in (_check_station_url, _check_synthetic_tone):
            try:
                check(values)
            except SettingsError as exc:
                raise SettingsError(f"{exc}{_in_file(source)}") from None
        if values["camera.fps"] * values["camera.keyframe_interval_s"] < 1:
            raise SettingsError(
                f"camera.keyframe_interval_s = {values['camera.keyframe_interval_s']!r} is shorter "
                f"than one frame at camera.fps = {values['camera.fps']}")
        if values["camera.width"] % 2 or values["camera.height"] % 2:
            raise SettingsError(
                f"camera.width x camera.height = {values['camera.width']}x"
                f"{values['camera.height']} is not allowed: H.264 4:2:0 needs even sizes")
        return cls(values, dict(document.get("board", {})), source)

    @classmethod
    def load(cls, path: Path | None) -> Settings:
        """Settings from a TOML file; ``None``: all defaults. A file that does not exist, or is
        not valid TOML, raises SettingsError naming it."""
        if path is None:
            return cls.from_mapping({})
        try:
            with open(path, "rb") as handle:
                document = tomllib.load(handle)
        except FileNotFoundError:
            raise SettingsError(f"settings file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:  # TOML is UTF-8; tomllib does not catch this itself
            raise SettingsError(f"settings file {path} is not valid TOML: byte {exc.start} is "
                                "not UTF-8 text") from None
        except OSError as exc:  # a directory, no permission, an I/O error
            raise SettingsError(f"settings file {path} cannot be read: "
                                f"{exc.strerror or exc}") from None
        return cls.from_mapping(document, path)

    def with_values(self, **changes: Any) -> Settings:
        """A copy with some values replaced (keys as "table_key", e.g. camera_fps=25), checked."""
        document: dict[str, dict[str, Any]] = {}
        for name, value in self.values.items():
            table, key = name.split(".", 1)
            document.setdefault(table, {})[key] = value
        for underscored, value in changes.items():
            table, key = underscored.split("_", 1)
            if f"{table}.{key}" not in _BY_NAME:
                raise SettingsError(f"unknown setting {table}.{key}")
            document.setdefault(table, {})[key] = value
        document["board"] = dict(self.board)
        # checked as values of their own (a bad change is an option's, not the file's, fault)
        return dataclasses.replace(Settings.from_mapping(document), source=self.source)

    @property
    def device_id(self) -> str:
        return str(self.values["device.device_id"]) or socket.gethostname()

    @property
    def cafile(self) -> Path | None:
        """The CA file of ``station.cafile``, or None for the system's CAs."""
        configured = str(self.values["station.cafile"])
        return Path(os.path.expanduser(configured)) if configured else None

    @property
    def data_dir(self) -> Path:
        configured = str(self.values["storage.data_dir"])
        if configured:
            return Path(os.path.expanduser(configured))
        return default_data_dir()


CONFIG_ENV_VAR = "BWV_CONFIG"
SYSTEM_CONFIG_PATH = Path("/etc/bwv/bwv.toml")


def default_config_path(environ: Mapping[str, str] | None = None,
                        system_path: Path = SYSTEM_CONFIG_PATH) -> Path | None:
    """The settings file to read when no ``--config`` is given: ``$BWV_CONFIG`` when set (it must
    then exist: `Settings.load` says so), else ``/etc/bwv/bwv.toml`` when it exists, else None
    (all defaults)."""
    value = (os.environ if environ is None else environ).get(CONFIG_ENV_VAR, "").strip()
    if value:
        return Path(value).expanduser()
    return system_path if system_path.is_file() else None


# What each [board] key means, for the example file; `recorder.board.BoardSettings` holds the
# defaults and checks. A test fails when a board setting has no entry here.
BOARD_HELP: dict[str, str] = {
    "button_pin": "the record button (BCM GPIO numbers: GPIO17 is physical pin 11; see "
                  "docs/raspberry-pi.md)",
    "red_led_pin": "the red LED, flashing while recording",
    "green_led_pin": "the green status LED",
    "buzzer_pin": "the beeper",
    "dock_pin": "the dock sense contact (uploads start when docked)",
    "dock_active_low": "the dock contact joins the pin to ground when docked (false: the dock "
                       "drives 3.3 V)",
    "aux_pins": "auxiliary triggers that start a recording (holster sensor, external trigger)",
    "aux_active_low": "the auxiliary contacts join their pins to ground when triggered",
    "double_press_s": "a second press within this many seconds of the first starts a recording",
    "hold_s": "holding the button this many seconds stops a recording",
    "debounce_s": "edges this close to the one before are contact bounce and ignored",
    "stop_confirmation": "a stop needs a second hold, begun within stop_confirm_window_s",
    "stop_confirm_window_s": "seconds in which the confirming hold must begin",
    "reminder_s": "while recording, the beeper reminds everyone around every this many seconds",
    "alarm_repeat_s": "an error alarm repeats every this many seconds",
    "stealth_allowed": "allow stealth mode (LEDs and beeper off); every toggle is written to the "
                       "manifest",
}

EXAMPLE_HEADER = """\
# bwv-recorder settings: every key, each at its default, with what it means and what is allowed.
#
# Copy this file to /etc/bwv/bwv.toml (read when no --config is given and $BWV_CONFIG is not
# set; the systemd unit gives it with --config), then uncomment and change only the keys you
# need: a key left commented out takes its default. A bad value stops the recorder with a
# message naming the key, the value and what is allowed.
#
# Generated by recorder.settings.example_settings_toml(); a test fails if it differs."""


def example_settings_toml() -> str:
    """An example settings file: every table, and every key commented out at its default, with
    its meaning and allowed values (the committed docs/bwv.example.toml is this text)."""
    lines = [EXAMPLE_HEADER]
    for table in TABLES:
        lines += ["", f"[{table}]"]
        entries = _board_entries() if table == "board" else [
            (option.key, option.default, option.help, option.allowed()[5:])
            for option in OPTIONS if option.table == table]
        for key, default, meaning, allowed in entries:
            lines += ["", *textwrap.wrap(meaning, 97, initial_indent="# ", subsequent_indent="# ",
                                         break_on_hyphens=False),
                      f"# allowed: {allowed}", f"#{key} = {_toml_literal(default)}"]
    return "\n".join(lines) + "\n"


def _board_entries() -> list[tuple[str, Any, str, str]]:
    """(key, default, meaning, allowed) of every ``[board]`` setting."""
    from .board.settings import TIMING_RANGES, BoardSettings

    defaults = BoardSettings()
    entries = []
    for item in dataclasses.fields(BoardSettings):
        if item.name == "extra":
            continue
        default = getattr(defaults, item.name)
        if item.name in TIMING_RANGES:
            low, high = TIMING_RANGES[item.name]
            allowed = f"a number of seconds from {low:g} to {high:g}"
        elif isinstance(default, bool):
            allowed = "true or false"
        elif isinstance(default, tuple):
            allowed = "a list of BCM GPIO numbers from 2 to 27, each used by one setting only"
        else:
            allowed = "a BCM GPIO number from 2 to 27, used by one setting only"
        entries.append((item.name, default, BOARD_HELP[item.name], allowed))
    return entries


def settings_table_markdown() -> str:
    """The table in docs/configuration.md of every setting, its default and what is allowed."""
    rows = ["| setting | default | allowed | meaning |", "|---|---|---|---|"]
    for option in OPTIONS:
        rows.append(f"| `{option.name}` | `{_toml(option.default)}` | {option.allowed()[5:]} "
                    f"| {option.help} |")
    return "\n".join(rows)


def _toml_literal(value: Any) -> str:
    """``value`` as TOML that reads back as the same type (a float keeps its point)."""
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_literal(item) for item in value) + "]"
    return repr(value) if isinstance(value, float) else _toml(value)


def _in_file(source: Path | None) -> str:
    """`` (in FILE)`` for a message about a value read from ``source``; empty without one."""
    return f" (in {source})" if source is not None else ""


URL_SCHEMES = ("http", "https")


def _check_station_url(values: Mapping[str, Any]) -> None:
    """``station.url`` is empty or an http(s) URL with a host: anything else would only fail
    at the first dock, out in the field, with a less helpful message."""
    url = str(values["station.url"])
    if not url:
        return
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        parsed = urllib.parse.urlsplit("")
    if parsed.scheme not in URL_SCHEMES or not parsed.hostname or any(c.isspace() for c in url):
        raise SettingsError(f"station.url = {url!r} is not allowed: give an http:// or https:// "
                            "URL with a host, e.g. https://station.example:8470, or \"\" for "
                            "no uploads")


def _check_synthetic_tone(values: Mapping[str, Any]) -> None:
    """``audio.source = "synthetic:HZ"``: HZ a tone the sample rate can carry, checked here so
    that it is a settings error, not a failure of the recording."""
    spec = str(values["audio.source"])
    if not spec.startswith("synthetic:"):
        return
    half = values["audio.sample_rate"] / 2
    try:
        hz = float(spec.split(":", 1)[1])
    except ValueError:
        hz = math.nan
    if not 0 < hz < half:
        raise SettingsError(f"audio.source = {spec!r} is not allowed: give synthetic:HZ with HZ "
                            f"above 0 and below half of audio.sample_rate ({half:g})")


def _matches(value: str, choice: str) -> bool:
    """A plain choice matches itself; "file:PATH" matches any non-empty "file:..."."""
    if ":" not in choice:
        return value == choice
    prefix = choice.split(":", 1)[0] + ":"
    return value.startswith(prefix) and len(value) > len(prefix)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return f"{value:g}" if isinstance(value, float) else str(value)
