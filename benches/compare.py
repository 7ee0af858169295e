"""Compare a bench run against a stored baseline; exit 1 on a regression larger than the margin.

usage: python benches/compare.py BASELINE.json NEW.json [--margin 0.25]

What is compared are *ratios measured within one run* (native against its pure twin and against
the external baseline), not absolute times: runners differ from run to run and from the machine
the baseline came from, but a native piece that gets slower relative to the pure code beside it
has regressed on any machine. A row present in the baseline and missing from the new run fails
too (a bench that silently stopped running is a regression of its own).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from typing import Any

REFERENCES = ("pure", "deque", "pyav", "hashlib", "memcpy")


def speedups(path: str) -> dict[str, float]:
    """{"piece op size vs kind": reference median / native median} for every row with both."""
    data: dict[str, Any] = json.load(open(path))
    medians: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if {"piece", "op", "size", "kind"} <= info.keys() and info["piece"] not in ("recorder", "upload"):
            medians[(info["piece"], info["op"], info["size"])][info["kind"]] = bench["stats"]["median"]
    result = {}
    for (piece, op, size), kinds in medians.items():
        for reference in REFERENCES:
            if "native" in kinds and reference in kinds:
                result[f"{piece} {op} {size} vs {reference}"] = kinds[reference] / kinds["native"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline")
    parser.add_argument("new")
    parser.add_argument("--margin", type=float, default=0.25,
                        help="allowed relative drop of a speedup (default 0.25 = 25%%)")
    args = parser.parse_args()
    old, new = speedups(args.baseline), speedups(args.new)
    failed = False
    for name, before in sorted(old.items()):
        after = new.get(name)
        if after is None:
            print(f"MISSING     {name}: in the baseline ({before:.2f}x) but not in this run")
            failed = True
            continue
        drop = 1 - after / before
        verdict = "REGRESSION" if drop > args.margin else "ok"
        failed |= verdict != "ok"
        print(f"{verdict:<11} {name}: {before:.2f}x -> {after:.2f}x")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
