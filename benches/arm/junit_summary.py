"""Print which tests ran under emulation: each test file with its passed, failed and skipped counts,
from the JUnit XML that pytest wrote (benches/arm/run-emulated).

usage: python benches/arm/junit_summary.py junit.xml
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict

OUTCOMES = ("passed", "failed", "error", "skipped")


def outcome(case: ET.Element) -> str:
    for child in case:
        if child.tag in ("failure", "error", "skipped"):
            return {"failure": "failed"}.get(child.tag, child.tag)
    return "passed"


def summarise(path: str) -> dict[str, Counter[str]]:
    """{test file: Counter of outcomes} for every test case in the JUnit XML at ``path``."""
    per_file: dict[str, Counter[str]] = defaultdict(Counter)
    for case in ET.parse(path).iter("testcase"):
        # a collection error has no classname; its name is the module ("tests.test_ring")
        module = case.get("classname") or case.get("name") or "?"
        parts = module.split(".")
        # classname is "tests.test_ring" or "tests.test_ring.TestClass"
        name = "/".join(parts[:2]) + ".py" if len(parts) >= 2 else module
        per_file[name][outcome(case)] += 1
    return per_file


def main(path: str) -> None:
    per_file = summarise(path)
    total: Counter[str] = Counter()
    print(f"{'test file':<42}" + "".join(f"{o:>9}" for o in OUTCOMES))
    for name in sorted(per_file):
        counts = per_file[name]
        total.update(counts)
        print(f"{name:<42}" + "".join(f"{counts[o]:>9}" for o in OUTCOMES))
    print(f"{'all ' + str(len(per_file)) + ' files':<42}" + "".join(f"{total[o]:>9}" for o in OUTCOMES))


if __name__ == "__main__":
    main(sys.argv[1])
