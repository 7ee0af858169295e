"""benches/compare.py fails CI on a regression of native against its references, and only then."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

COMPARE = Path(__file__).resolve().parents[1] / "benches" / "compare.py"


def run(tmp_path: Path, native_s: float, pure_s: float, rows: int = 1) -> Path:
    benchmarks = []
    for row in range(rows):
        for kind, median in (("native", native_s), ("pure", pure_s)):
            benchmarks.append({"name": f"b{row}{kind}", "stats": {"median": median},
                               "extra_info": {"piece": "ring", "op": "push", "size": f"{row}",
                                              "kind": kind, "units": 1}})
    path = tmp_path / f"run-{native_s}-{pure_s}-{rows}.json"
    path.write_text(json.dumps({"benchmarks": benchmarks}))
    return path


def compare(baseline: Path, new: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(COMPARE), str(baseline), str(new), "--margin",
                           "0.25"], capture_output=True, text=True)


def test_a_faster_or_slightly_slower_native_passes(tmp_path: Path) -> None:
    baseline = run(tmp_path, 1.0, 10.0)
    assert compare(baseline, run(tmp_path, 0.5, 10.0)).returncode == 0
    assert compare(baseline, run(tmp_path, 1.2, 10.0)).returncode == 0  # 10x -> 8.3x: within 25%


def test_a_native_regression_beyond_the_margin_fails(tmp_path: Path) -> None:
    result = compare(run(tmp_path, 1.0, 10.0), run(tmp_path, 2.0, 10.0))
    assert result.returncode == 1 and "REGRESSION" in result.stdout


def test_a_bench_that_stopped_running_fails(tmp_path: Path) -> None:
    result = compare(run(tmp_path, 1.0, 10.0, rows=2), run(tmp_path, 1.0, 10.0, rows=1))
    assert result.returncode == 1 and "MISSING" in result.stdout


def test_the_stored_baseline_compares_cleanly_with_itself() -> None:
    baseline = COMPARE.parent / "baseline" / "x86_64.json"
    assert compare(baseline, baseline).returncode == 0
