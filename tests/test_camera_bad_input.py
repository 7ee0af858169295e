"""Bad flags and settings files are usage errors (issue 13, findings 8 and 9): every case of the
campaign's matrices, as a real `bwv` process, exits 2 with one line on stderr that names the
flag, or the settings file and key, and no traceback; nothing is left behind (no directory made,
no file's mode changed). Before, these tracebacked, were accepted, blamed the wrong key, or
failed a recording later with exit 1."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from test_camera_cli import environment, write_config
from support import warm



def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its mode and size: what a refused command must not change."""
    found = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            status = os.lstat(os.path.join(directory, name))
            found[os.path.relpath(os.path.join(directory, name), root)] = (status.st_mode,
                                                                           status.st_size)
    return found


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on a read-only mount (a bind mount of an empty one, remounted ro): what an SD
    card becomes after an error. Needs root (CAP_SYS_ADMIN); skipped without."""
    source, target = tmp_path / "ro-source", tmp_path / "ro"
    source.mkdir()
    target.mkdir()
    for command in (["mount", "--bind", str(source), str(target)],
                    ["mount", "-o", "remount,bind,ro", str(target)]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            subprocess.run(["umount", str(target)], capture_output=True, timeout=30)
            pytest.skip(f"cannot make a read-only bind mount: {done.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True, timeout=30)


def refused(command: list[str], tmp_path: Path) -> str:
    """Run ``bwv COMMAND``; assert it is refused as a usage error in one line, changing
    nothing under ``tmp_path``; return that line."""
    before = tree(tmp_path)
    result = warm.run([*command], env=environment(), cwd="/", timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"bwv {command[0]}: "), \
        result.stderr
    assert tree(tmp_path) == before, "a refused command left something behind"
    return result.stderr


# -- flags of `bwv record` (finding 8) --------------------------------------------------------

LONG_NAME = "n" * 300  # NAME_MAX is 255 on Linux
DEEP = "/".join(["d" * 200] * 25)  # 5,000 characters: PATH_MAX is 4,096

Case = Callable[[Path, Callable[[], Path]], tuple[list[str], str]]
FLAGS: dict[str, Case] = {
    "duration nan": lambda t, ro: (["--duration", "nan"], "--duration nan is not allowed"),
    "duration inf": lambda t, ro: (["--duration", "inf"], "--duration inf is not allowed"),
    "duration -1": lambda t, ro: (["--duration", "-1"], "--duration -1 is not allowed"),
    "duration 0": lambda t, ro: (["--duration", "0"], "--duration 0 is not allowed"),
    "trigger-after nan": lambda t, ro: (["--trigger-after", "nan"],
                                        "--trigger-after nan is not allowed"),
    "trigger-after inf": lambda t, ro: (["--trigger-after", "inf"],
                                        "--trigger-after inf is not allowed"),
    "out a file": lambda t, ro: (["--out", str(t / "file")], f"--out {t / 'file'} is not a "
                                 "directory"),
    "out under a file": lambda t, ro: (["--out", str(t / "file" / "rec")],
                                       f"--out {t / 'file' / 'rec'}: cannot make the directory: "
                                       "Not a directory"),
    "out read-only": lambda t, ro: (["--out", str(ro())], f"--out {t / 'ro'}: cannot write "
                                    "there: Read-only file system"),
    "out under a read-only": lambda t, ro: (["--out", str(ro() / "rec")],
                                            "cannot make the directory: Read-only file system"),
    "out under /proc": lambda t, ro: (["--out", "/proc/bwv-recordings"],
                                      "--out /proc/bwv-recordings: cannot make the directory"),
    "out name too long": lambda t, ro: (["--out", str(t / "new" / LONG_NAME)],
                                        "cannot make the directory: File name too long"),
    "out path too long": lambda t, ro: (["--out", str(t / "new" / DEEP)],
                                        "cannot make the directory: File name too long"),
    "size abc": lambda t, ro: (["--size", "abc"], "--size 'abc' is not WIDTHxHEIGHT"),
    "audio synthetic:0": lambda t, ro: (["--audio", "synthetic:0"],
                                        "audio.source = 'synthetic:0' is not allowed"),
    "audio synthetic:nan": lambda t, ro: (["--audio", "synthetic:nan"],
                                          "audio.source = 'synthetic:nan' is not allowed"),
    "audio synthetic:30000": lambda t, ro: (["--audio", "synthetic:30000"],
                                            "below half of audio.sample_rate (24000)"),
}


@pytest.mark.parametrize("case", FLAGS)
def test_a_bad_record_flag_is_a_one_line_usage_error_that_leaves_nothing(
        tmp_path: Path, request: pytest.FixtureRequest, case: str) -> None:
    config = write_config(tmp_path)
    (tmp_path / "file").write_text("not a directory\n")
    os.chmod(tmp_path / "file", 0o644)  # a file --out names must keep its mode
    options, words = FLAGS[case](tmp_path, lambda: request.getfixturevalue("read_only_dir"))
    line = refused(["record", "--config", str(config), "--duration", "1", "--out",
                    str(tmp_path / "out"), *options], tmp_path)
    assert words in line, line
    assert len(line) < 400  # a path of thousands of characters is shortened


# -- settings files (finding 9) ---------------------------------------------------------------

Settings = Callable[[Path, Callable[[], Path]], tuple[Path, str]]


def toml(tmp_path: Path, **tables: dict[str, object]) -> Path:
    return write_config(tmp_path, **tables)


def not_utf8(tmp_path: Path) -> Path:
    config = toml(tmp_path)
    config.write_bytes(config.read_bytes() + b'[station]\nurl = "https://st\xe9tion.example"\n')
    return config


def a_directory(tmp_path: Path) -> Path:
    (tmp_path / "conf.d").mkdir()
    return tmp_path / "conf.d"


SETTINGS: dict[str, Settings] = {
    "config a directory": lambda t, ro: (a_directory(t), "cannot be read: Is a directory"),
    "config not UTF-8": lambda t, ro: (not_utf8(t), "is not valid TOML: byte"),
    "data_dir a file": lambda t, ro: (toml(t, storage={"data_dir": str(t / "file")}),
                                      f"storage.data_dir = '{t / 'file'}' (in {t / 'recorder.toml'}"
                                      f"): {t / 'file'} is not a directory"),
    "data_dir read-only": lambda t, ro: (toml(t, storage={"data_dir": str(ro())}),
                                         "storage.data_dir = "),
    "data_dir under /proc": lambda t, ro: (toml(t, storage={"data_dir": "/proc/bwv-data"}),
                                           "storage.data_dir = '/proc/bwv-data' (in "),
    "station.url not a url": lambda t, ro: (toml(t, station={"url": "not a url"}),
                                            "station.url = 'not a url' is not allowed: give an "
                                            "http:// or https:// URL"),
    "station.url ftp": lambda t, ro: (toml(t, station={"url": "ftp://station.example"}),
                                      "station.url = 'ftp://station.example' is not allowed"),
    "station.url bad port": lambda t, ro: (toml(t, station={"url": "https://station:99999"}),
                                           "station.url = 'https://station:99999' is not "
                                           "allowed"),
    "button_pin on the red LED's": lambda t, ro: (
        toml(t, board={"button_pin": 27}),
        "board.button_pin = 27 is already used by board.red_led_pin (its default)"),
    "two given pins": lambda t, ro: (
        toml(t, board={"buzzer_pin": 5, "dock_pin": 5}),
        "board.dock_pin = 5 is already used by board.buzzer_pin:"),
    "a bad value": lambda t, ro: (toml(t, camera={"fps": 500}), "camera.fps = 500 is not allowed"),
}


@pytest.mark.parametrize("command", [["run", "--board", "terminal"],
                                     ["record", "--duration", "1", "--fast"]],
                         ids=["run", "record"])
@pytest.mark.parametrize("case", SETTINGS)
def test_a_bad_settings_file_is_a_one_line_usage_error_naming_file_and_key(
        tmp_path: Path, request: pytest.FixtureRequest, case: str, command: list[str]) -> None:
    (tmp_path / "file").write_text("not a directory\n")
    config, words = SETTINGS[case](tmp_path, lambda: request.getfixturevalue("read_only_dir"))
    out = ["--out", str(tmp_path / "out")] if command[0] == "record" else []
    line = refused([*command, "--config", str(config), *out], tmp_path)
    assert words in line and str(config) in line, line
