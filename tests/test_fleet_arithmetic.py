"""benches/fleet_arithmetic.py, the sizing in docs/fleet.md: its figures against a hand
computation from the same assumptions, and bad input refused with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benches" / "fleet_arithmetic.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60)


def _figures(*args: str) -> dict[str, float]:
    done = _run("--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_design_load_by_hand() -> None:
    figures = _figures()
    per_second = (10e6 + 64e3) / 8  # bytes a camera writes a second
    day = 22_000 * 60 * 60 * per_second  # an hour per camera
    assert figures["bytes_per_day"] == pytest.approx(day)
    assert figures["bytes_in_31_day_window"] == pytest.approx(31 * day)
    assert figures["held_bytes_per_year"] == pytest.approx(0.41 * 365 * day)
    # a third of the day within an hour
    assert figures["peak_upload_bytes_per_s"] == pytest.approx(day / 3 / 3600)
    # 10-minute recordings in 30 s segments: 20 each, and 3 more requests
    assert figures["segments_per_recording"] == 20
    assert figures["peak_requests_per_s"] == pytest.approx(22_000 * 6 / 3 / 3600 * 23)


def test_a_force_by_its_count_of_videos() -> None:
    figures = _figures("--videos-per-year", "785000", "--minutes-per-video", "10")
    assert figures["recordings_per_day"] == pytest.approx(785_000 / 365)
    assert figures["bytes_per_day"] == pytest.approx(785_000 / 365 * 600 * (10e6 + 64e3) / 8)


def test_more_processes_when_two_do_less_than_twice_one() -> None:
    alone = _figures()["station_processes"]
    shared = _figures("--two-process-ratio", "1.5")["station_processes"]
    assert shared == pytest.approx(alone * 2 / 1.5, abs=1)


@pytest.mark.parametrize("args", [["--cameras", "-5"], ["--videos-per-year", "0"],
                                  ["--held-share", "many"]])
def test_bad_input_is_one_line_and_exit_2(args: list[str]) -> None:
    done = _run(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("fleet_arithmetic.py: error:")
