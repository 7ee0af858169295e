"""Settings: documented defaults, and errors that name the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.settings import OPTIONS, Settings, SettingsError, settings_table_markdown

REPO = Path(__file__).resolve().parents[1]


def test_no_file_means_the_documented_defaults() -> None:
    settings = Settings.load(None)
    assert settings["recording.pre_event_s"] == 30.0
    assert settings["recording.segment_s"] == 30.0
    assert settings["audio.in_pre_event"] is False
    assert (settings["camera.width"], settings["camera.height"], settings["camera.fps"]) == (1920, 1080, 30)
    assert settings["camera.bitrate_bps"] == 10_000_000


def test_a_file_overrides_some_keys_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "bwv.toml"
    path.write_text('[camera]\nfps = 25\nsource = "file:/srv/test.mp4"\n'
                    '[recording]\npre_event_s = 60\n[board]\nreminder_s = 60.0\n')
    settings = Settings.load(path)
    assert settings["camera.fps"] == 25 and settings["camera.source"] == "file:/srv/test.mp4"
    assert settings["recording.pre_event_s"] == 60.0  # an int is accepted where seconds are asked
    assert settings["camera.width"] == 1920
    assert settings.board == {"reminder_s": 60.0}


@pytest.mark.parametrize(("document", "words"), [
    ({"camera": {"fps": 0}}, "camera.fps = 0 is not allowed: give a whole number from 1 to 120"),
    ({"camera": {"fps": "30"}}, "camera.fps = '30' is not allowed"),
    ({"camera": {"fps": 29.97}}, "camera.fps = 29.97 is not allowed: give a whole number"),
    ({"recording": {"pre_event_s": 121}}, "recording.pre_event_s = 121.0 is not allowed: give a number from 0 to 120"),
    ({"recording": {"pre_event_s": -1}}, "recording.pre_event_s = -1.0"),
    ({"audio": {"in_pre_event": "yes"}}, "audio.in_pre_event = 'yes' is not allowed: give true or false"),
    ({"camera": {"source": "webcam"}}, 'camera.source = \'webcam\' is not allowed: give one of "auto"'),
    ({"camera": {"source": "file:"}}, "camera.source = 'file:' is not allowed"),
    ({"camera": {"fsp": 30}}, "unknown setting camera.fsp: [camera] allows source, width"),
    ({"cam": {"fps": 30}}, "unknown table(s) [cam]: allowed tables are device, camera"),
    ({"camera": {"width": 641}}, "needs even sizes"),
    ({"camera": {"fps": 2, "keyframe_interval_s": 0.2}}, "shorter than one frame"),
])
def test_a_bad_value_names_key_value_and_what_is_allowed(document: dict[str, dict[str, object]],
                                                         words: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping(document)
    assert words in str(caught.value)


def test_a_file_that_is_not_toml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[camera\nfps = 30\n")
    with pytest.raises(SettingsError, match=f"settings file {path} is not valid TOML"):
        Settings.load(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        Settings.load(tmp_path / "nope.toml")


def test_with_values_checks_the_change() -> None:
    settings = Settings.load(None).with_values(camera_fps=15, recording_pre_event_s=5)
    assert settings["camera.fps"] == 15 and settings["recording.pre_event_s"] == 5.0
    with pytest.raises(SettingsError, match="camera.fps = 500"):
        settings.with_values(camera_fps=500)


def test_every_default_passes_its_own_check() -> None:
    for option in OPTIONS:
        assert option.check(option.default) == option.default


def test_the_readme_table_is_the_one_the_code_renders() -> None:
    assert settings_table_markdown() in (REPO / "docs" / "configuration.md").read_text()
