"""Store a bench run as the baseline of its architecture: benches/baseline/<arch>.json, trimmed to
what benches/compare.py and benches/table.py read (names, extra_info, summary stats, the machine)
and labelled with where and how it was made.

usage: python benches/store_baseline.py bench.json --note "GitHub ubuntu-24.04-arm runner, run 123"
       [--arch aarch64] [--out benches/baseline/aarch64.json]

The architecture defaults to the one recorded in the run (machine_info.machine), so a bench.json
downloaded from the ARM job's artifact becomes benches/baseline/aarch64.json on any machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BASELINES = Path(__file__).resolve().parent / "baseline"
STATS = ("min", "max", "mean", "median", "rounds")


class NotABenchRunError(ValueError):
    """The file is not a pytest-benchmark JSON document with benchmarks in it."""


def trim(run: dict[str, Any], note: str) -> dict[str, Any]:
    """The parts of a pytest-benchmark run that a baseline keeps, with ``note`` saying what it is."""
    if not run.get("benchmarks"):
        raise NotABenchRunError("no benchmarks in this file: pass the JSON written by "
                                "pytest benches/ --benchmark-json=bench.json")
    machine = dict(run.get("machine_info", {}))
    cpu = machine.get("cpu")
    if isinstance(cpu, dict):  # py-cpuinfo's flag list is long and says nothing the table uses
        machine["cpu"] = {key: value for key, value in cpu.items() if key != "flags"}
    return {
        "note": note,
        "datetime": run.get("datetime"),
        "commit_info": {key: run.get("commit_info", {}).get(key) for key in ("id", "branch")},
        "machine_info": machine,
        "benchmarks": [{"name": bench["name"], "extra_info": bench["extra_info"],
                        "stats": {key: bench["stats"][key] for key in STATS}}
                       for bench in run["benchmarks"]],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="bench.json from pytest benches/ --benchmark-json=bench.json")
    parser.add_argument("--note", required=True,
                        help="where and how the run was made (machine, runner, command)")
    parser.add_argument("--arch", help="default: machine_info.machine of the run, e.g. aarch64")
    parser.add_argument("--out", type=Path, help="default: benches/baseline/<arch>.json")
    args = parser.parse_args()
    run = json.loads(Path(args.run).read_text())
    arch = args.arch or run.get("machine_info", {}).get("machine")
    if not arch:
        parser.error("the run records no machine architecture: pass --arch")
    try:
        baseline = trim(run, args.note)
    except NotABenchRunError as exc:
        print(f"store_baseline: {exc}", file=sys.stderr)
        return 1
    out = args.out or BASELINES / f"{arch}.json"
    out.write_text(json.dumps(baseline, indent=1) + "\n")
    print(f"stored {len(baseline['benchmarks'])} benches of {arch} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
