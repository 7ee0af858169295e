"""The recorder fed at real time, native, before and after a change: the same workload
(benches/recorder_workload.py paced) run by two Python environments, in turn, several rounds.

    python benches/paced_before_after.py BEFORE_PYTHON AFTER_PYTHON [--seconds 15] [--rounds 3]

Each environment has the package installed as it was (e.g. a git worktree of the earlier commit
set up with `bash scripts/setup`, and this tree's .venv). Each round runs the feeding loop alone
once and subtracts it; the order of before and after turns from round to round. Prints each
state's % of one core (whole process, and the capture and writer threads) as medians with the
spread of the rounds, and the ratio after / before.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

WORKLOAD = Path(__file__).with_name("recorder_workload.py")


def run(python: str, state: str, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bwv-paced-") as directory:
        out = subprocess.run([python, str(WORKLOAD), "paced", "--state", state, "--seconds",
                              str(seconds), "--dir", directory],
                             env=dict(os.environ, RECORDER_NATIVE="required"), cwd="/",
                             capture_output=True, text=True, check=True).stdout
    figures: dict[str, float] = json.loads(out)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="the Python of the environment before the change")
    parser.add_argument("after", help="the Python of the environment after it")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pythons = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    figures: dict[str, list[float]] = {}
    for number in range(args.rounds):
        base = run(pythons["after"], "pacing", args.seconds)["cpu_percent_of_one_core"]
        figures.setdefault("pacing", []).append(base)
        for state in ("buffering", "recording"):
            for which in ("before", "after") if number % 2 == 0 else ("after", "before"):
                result = run(pythons[which], state, args.seconds)
                for part, value in (("", result["cpu_percent_of_one_core"] - base),
                                    (" capture", result["capture_thread_percent"] - base),
                                    (" writer", result["writer_thread_percent"])):
                    figures.setdefault(f"{state} {which}{part}", []).append(value)
        print(f"round {number + 1} of {args.rounds} done", flush=True)
    for name, values in figures.items():
        print(f"{name}: {statistics.median(values):.3f}% of one core "
              f"({min(values):.3f}-{max(values):.3f})")
    for state in ("buffering", "recording"):
        ratios = [a / b for a, b in zip(figures[f"{state} after"], figures[f"{state} before"])
                  if b > 0]
        if ratios:
            print(f"{state} after / before: {statistics.median(ratios):.2f}x "
                  f"({min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
