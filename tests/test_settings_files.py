"""The settings files a camera uses: the example file (every key commented out at its default,
rendered from the settings table), the default settings path ($BWV_CONFIG, else
/etc/bwv/bwv.toml) that the systemd unit gives, and the station.cafile setting."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from recorder.board import BoardSettings
from recorder.settings import (BOARD_HELP, OPTIONS, SYSTEM_CONFIG_PATH, TABLES, Settings,
                               SettingsError, default_config_path, example_settings_toml)
from support import warm

REPO = Path(__file__).resolve().parents[1]

EXAMPLE = REPO / "docs" / "bwv.example.toml"


def uncommented(text: str) -> str:
    """The example with every commented-out ``#key = value`` line made a setting."""
    return re.sub(r"^#(?=[a-z_]+ = )", "", text, flags=re.MULTILINE)


def test_the_example_settings_file_is_the_one_the_code_renders() -> None:
    assert EXAMPLE.read_text() == example_settings_toml(), (
        "regenerate: python -c 'from recorder.settings import example_settings_toml as e; "
        "print(e(), end=\"\")' > docs/bwv.example.toml")


def test_the_example_as_committed_loads_to_the_defaults() -> None:
    settings = Settings.load(EXAMPLE)
    assert settings.values == Settings.load(None).values and settings.board == {}


def test_the_example_with_every_key_uncommented_loads_to_exactly_the_defaults(
        tmp_path: Path) -> None:
    text = uncommented(example_settings_toml())
    document = tomllib.loads(text)
    assert set(document) == set(TABLES)
    assert {f"{table}.{key}" for table, keys in document.items() if table != "board"
            for key in keys} == {option.name for option in OPTIONS}
    for option in OPTIONS:  # the same value and the same type: 30.0 stays a float
        value = document[option.table][option.key]
        assert value == option.default and type(value) is type(option.default), option.name
    path = tmp_path / "bwv.toml"
    path.write_text(text)
    settings = Settings.load(path)
    assert settings.values == Settings.load(None).values
    assert BoardSettings.from_mapping(settings.board) == BoardSettings()
    assert set(settings.board) == {f.name for f in dataclasses.fields(BoardSettings)} - {"extra"}


def test_every_key_in_the_example_has_its_meaning_and_what_is_allowed() -> None:
    blocks = example_settings_toml().split("\n\n")
    settings_blocks = [block for block in blocks if re.search(r"^#[a-z_]+ = ", block, re.M)]
    assert len(settings_blocks) == len(OPTIONS) + len(BOARD_HELP)
    for block in settings_blocks:
        *meaning, allowed, setting = block.splitlines()
        assert meaning and all(line.startswith("# ") for line in meaning), block
        assert allowed.startswith("# allowed: ") and len(allowed) > len("# allowed: "), block
    cafile = next(block for block in settings_blocks if "#cafile = " in block)
    assert "empty: the system's CAs" in " ".join(cafile.split())


def test_default_config_path_prefers_bwv_config_then_the_system_file(tmp_path: Path) -> None:
    system = tmp_path / "etc-bwv.toml"
    assert default_config_path({}, system) is None
    system.write_text("")
    assert default_config_path({}, system) == system
    assert default_config_path({"BWV_CONFIG": "/srv/cam7.toml"}, system) == Path("/srv/cam7.toml")
    assert default_config_path({"BWV_CONFIG": ""}, system) == system
    assert SYSTEM_CONFIG_PATH == Path("/etc/bwv/bwv.toml")


def test_default_config_path_reads_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("BWV_CONFIG", str(tmp_path / "cam.toml"))
    assert default_config_path() == tmp_path / "cam.toml"


def test_station_cafile_is_a_path_or_none(tmp_path: Path) -> None:
    assert Settings.load(None).cafile is None
    path = tmp_path / "bwv.toml"
    path.write_text('[station]\nurl = "https://station.example:8470"\ncafile = "~/ca.pem"\n')
    assert Settings.load(path).cafile == Path.home() / "ca.pem"
    with pytest.raises(SettingsError, match="station.cafile = 1 is not allowed: give a string"):
        Settings.from_mapping({"station": {"cafile": 1}})


def test_the_systemd_unit_reads_the_system_settings_file() -> None:
    unit = (REPO / "board" / "rpi" / "bwv-recorder.service").read_text()
    exec_start = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert len(exec_start) == 1
    assert exec_start[0].split()[1:] == ["run", "--config", str(SYSTEM_CONFIG_PATH)]


def _bwv(args: list[str], config: Path, tmp_path: Path) -> CompletedProcess[str]:
    import os
    environ = {**os.environ, "BWV_CONFIG": str(config), "BWV_DATA_DIR": str(tmp_path / "data")}
    return warm.run(args, cwd="/", env=environ, timeout=120)


def test_doctor_record_and_run_read_the_default_settings_file(tmp_path: Path) -> None:
    config = tmp_path / "bwv.toml"
    config.write_text('[device]\ndevice_id = "cam-from-bwv-config"\n')
    doctor = _bwv(["doctor"], config, tmp_path)
    assert doctor.returncode == 0, doctor.stderr
    assert "cam-from-bwv-config" in doctor.stdout
    # a bad value in the file that nobody named on the command line still stops each command
    config.write_text("[camera]\nfps = 500\n")
    for args in (["doctor"], ["record", "--duration", "1", "--out", str(tmp_path / "out")],
                 ["run", "--board", "terminal"]):
        run = _bwv(args, config, tmp_path)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert "camera.fps = 500 is not allowed" in run.stderr
        assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()
