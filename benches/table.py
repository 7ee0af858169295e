"""Print a pytest-benchmark JSON file as the README's table: time per access unit and ratios.

usage: python benches/table.py bench.json
"""

from __future__ import annotations

import json
import platform
import sys
from collections import defaultdict


def main(path: str) -> None:
    data = json.load(open(path))
    rows: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    recorder_rows = []
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if info.get("piece") == "recorder":  # figures measured inside the workload process
            recorder_rows.append(info)
            continue
        per_unit_ns = bench["stats"]["median"] / info["units"] * 1e9
        rows[(info["piece"], info["op"], info["size"])][info["kind"]] = per_unit_ns
    machine = data.get("machine_info", {})
    print(f"Machine: {machine.get('cpu', {}).get('brand_raw', platform.processor())}, "
          f"{machine.get('system', '')} {machine.get('machine', '')}, "
          f"Python {machine.get('python_version', '')}; median per access unit.\n")
    print("| piece | op | size | native | pure | deque (picamera2) | memcpy floor "
          "| pure / native | deque / native | native / memcpy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (piece, op, size), kinds in rows.items():
        def cell(kind: str) -> str:
            return f"{kinds[kind]:,.0f} ns" if kind in kinds else "-"

        def ratio(a: str, b: str) -> str:
            return f"{kinds[a] / kinds[b]:.2f}x" if a in kinds and b in kinds else "-"

        print(f"| {piece} | {op} | {size} | {cell('native')} | {cell('pure')} | {cell('deque')} "
              f"| {cell('memcpy')} | {ratio('pure', 'native')} | {ratio('deque', 'native')} "
              f"| {ratio('native', 'memcpy')} |")
    if recorder_rows:
        print("\n| recorder | workload | implementation | figure |")
        print("|---|---|---|---|")
        for info in recorder_rows:
            if info["op"] == "overhead":
                figure = (f"{info['cpu_percent_of_one_core']:.2f}% of one core "
                          f"({info['cpu_s']:.3f} CPU s for {info['recorded_s']:g} s recorded)")
            else:
                figure = (f"first fragment fsynced {info['first_fragment_synced_ms']:.1f} ms after "
                          f"the trigger; whole buffer ({info['buffered_bytes'] / 1e6:.0f} MB) on "
                          f"disk in {info['buffer_drained_ms']:.0f} ms; "
                          f"{info['overrun_units']} overruns")
            print(f"| {info['op']} | {info['size']} | {info['kind']} | {figure} |")


if __name__ == "__main__":
    main(sys.argv[1])
