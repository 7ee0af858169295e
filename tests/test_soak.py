"""The soak test's own judgement (tests/soak.py): a soak that cannot say "not flat" is worthless,
so its trend, status reading, verify reading and usage errors are checked here, in
milliseconds. The soak itself runs for minutes to hours: `python tests/soak.py --help`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import soak
from soak import Sample


def samples(rss: list[int], state: str = "buffering", step_s: float = 60.0) -> list[Sample]:
    return [Sample(n * step_s, state, kb, 6, 14, float(n)) for n, kb in enumerate(rss)]


def test_the_trend_is_the_least_squares_slope() -> None:
    assert soak.linear_trend([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert soak.linear_trend([(0, 5)]) == 0.0
    assert soak.linear_trend([(1, 5), (1, 7)]) == 0.0


def test_the_rss_trend_skips_the_warm_up() -> None:
    """A climb in the first 20% (imports, the ring's arena) is not a leak; one after it is."""
    warm_then_flat = samples([50_000, 90_000] + [100_000] * 8)
    assert soak.rss_trend_kb_per_min(warm_then_flat) == pytest.approx(0.0)
    leaking = samples([100_000 + 100 * n for n in range(10)])
    assert soak.rss_trend_kb_per_min(leaking) == pytest.approx(100.0)


def test_the_buffering_trend_looks_at_buffering_samples_only() -> None:
    mixed = samples([100_000] * 10) + [Sample(600.0 + n, "recording", 200_000, 8, 15, 0.0)
                                       for n in range(3)]
    assert soak.rss_trend_kb_per_min(mixed, state="buffering") == pytest.approx(0.0)
    assert soak.rss_trend_kb_per_min(mixed) > 1000


def test_the_status_is_read_from_the_last_status_line() -> None:
    output = soak.Output(io.BytesIO(b""))
    output._tail = ("help\n\r[   ] red ○  green ●  beep    buffering: ok\x1b[K"
                    "\r[REC] red ●  green ○  beep ♪  recording: storage nearly full\x1b[K\a"
                    ).encode()
    assert output.last_status() == "recording: storage nearly full"
    output.join()


def completed(code: int, stdout: str) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], code, stdout, "")


def test_a_recording_passes_only_when_verify_says_ok() -> None:
    assert soak.verified_ok(completed(0, json.dumps({"ok": True, "problems": []}))) == (True, "")
    failed = {"ok": False, "problems": [{"where": "000001.mp4", "message": "a gap"}]}
    assert soak.verified_ok(completed(1, json.dumps(failed))) == (False, "000001.mp4: a gap")
    assert soak.verified_ok(completed(0, "not json"))[0] is False


def test_the_first_traceback_is_named() -> None:
    log = ("INFO started\nERROR failed\nTraceback (most recent call last):\n  File \"x\", line 1\n"
           "ValueError: bad\nTraceback (most recent call last):\nKeyError: 2\n")
    assert soak.first_traceback(log) == "ValueError: bad"


@pytest.mark.parametrize("args", [["--minutes", "0"], ["--minutes", "nan"], ["--minutes", "0.5"],
                                  ["--record-s", "9,3"], ["--buffer-s", "x"], ["--fps", "60"]])
def test_usage_errors_exit_2_with_one_line(args: list[str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        soak.parse(args)
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("tests/soak.py: error: ")


def test_the_soak_runs_as_a_script() -> None:
    result = subprocess.run([sys.executable, str(Path(soak.__file__)), "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "--minutes" in result.stdout, result.stderr
