"""Segments play in a browser: headless Chromium's <video> loads each one to "can play through"
with the right size and duration. A damaged file is the negative control."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support.recording import ffprobe, manifest_lines

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (Debian package)")

PAGE = """<!doctype html><html><body><video id="v" src="{name}" muted preload="auto"></video>
<script>
const v = document.getElementById('v');
v.addEventListener('error', () => {{ document.title = 'ERROR ' + (v.error && v.error.code); }});
v.addEventListener('canplaythrough', () => {{
  document.title = 'PLAYABLE ' + v.videoWidth + 'x' + v.videoHeight + ' ' + v.duration.toFixed(3);
}}, {{once: true}});
</script></body></html>"""


def browser_says(directory: Path, name: str) -> str:
    page = directory / f"{name}.html"
    page.write_text(PAGE.format(name=name))
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--mute-audio",
         "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
         page.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r"<title>(.*)</title>", result.stdout)
    return found.group(1) if found else f"NO TITLE (exit {result.returncode})"


def test_every_segment_plays_in_chromium(recording: Path, tmp_path: Path) -> None:
    for line in manifest_lines(recording):
        if line["type"] != "segment":
            continue
        shutil.copy(recording / line["file"], tmp_path / line["file"])
        duration = float(ffprobe(recording / line["file"])["format"]["duration"])
        said = browser_says(tmp_path, line["file"])
        assert said.startswith("PLAYABLE 320x240 "), said
        assert abs(float(said.split()[-1]) - duration) < 0.05, (said, duration)


def test_a_damaged_segment_does_not(recording: Path, tmp_path: Path) -> None:
    data = bytearray((recording / "000001.mp4").read_bytes())
    data[8:4096] = bytes(len(data[8:4096]))  # the moov is gone
    (tmp_path / "damaged.mp4").write_bytes(bytes(data))
    assert browser_says(tmp_path, "damaged.mp4").startswith("ERROR")


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.recording import settings

    from recorder.board import BoardSettings, ScriptedBoard
    from recorder.cli.record import record

    tmp = tmp_path_factory.mktemp("browser")
    with ScriptedBoard(BoardSettings()) as board:
        return record(settings(tmp), board, duration_s=2.5, trigger_after_s=1.2,
                      recordings_dir=tmp / "recordings")
