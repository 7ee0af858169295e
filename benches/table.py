"""Print a pytest-benchmark JSON file as the tables of docs/performance.md: per access unit (or
buffer) times of native, pure and the baseline a user would otherwise pick, with their ratios;
the recorder's own cost and trigger latency, in the clear and encrypted; AES-128-CTR against
`openssl speed`; upload throughput against a plain HTTP copy.

usage: python benches/table.py bench.json
"""

from __future__ import annotations

import json
import platform
import sys
from collections import defaultdict
from typing import Any

BASELINES = {"deque": "picamera2 deque ring", "pyav": "PyAV mp4 muxer", "hashlib": "hashlib"}


def main(path: str) -> None:
    data = json.load(open(path))
    rows: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    recorder_rows: list[dict[str, Any]] = []
    aes_rows: list[dict[str, Any]] = []
    anchor_rows: list[dict[str, Any]] = []
    upload: dict[str, float] = {}
    upload_bytes = 0
    fleet_rows: list[dict[str, Any]] = []
    redact_rows: list[tuple[float, dict[str, Any]]] = []
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if info.get("piece") == "recorder":  # figures measured inside the workload process
            recorder_rows.append(info)
            continue
        if info.get("piece") == "aes-vs-openssl":  # throughputs measured inside the bench
            aes_rows.append(info)
            continue
        if info.get("piece") == "ring-vs-circular-output2":  # rounds timed inside the bench
            anchor_rows.append(info)
            continue
        if info.get("piece") == "upload":
            upload[info["kind"]] = bench["stats"]["median"]
            upload_bytes = info["bytes"]
            continue
        if info.get("piece") == "station-fleet":  # rows measured inside the bench
            fleet_rows.extend(info["fleet"])
            continue
        if info.get("piece") == "redact":  # real-time factors and checks, not per unit
            redact_rows.append((bench["stats"]["median"], info))
            continue
        per_unit_ns = bench["stats"]["median"] / info["units"] * 1e9
        rows[(info["piece"], info["op"], info["size"])][info["kind"]] = per_unit_ns
    machine = data.get("machine_info", {})
    print(f"Machine: {machine.get('cpu', {}).get('brand_raw', platform.processor())}, "
          f"{machine.get('system', '')} {machine.get('machine', '')}, "
          f"Python {machine.get('python_version', '')}; medians, per access unit (per buffer for "
          "sha256 and aes).\n")
    print("| piece | op | size | native | pure | baseline | memcpy floor | pure / native "
          "| baseline / native | native / floor |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (piece, op, size), kinds in rows.items():
        baseline = next((kind for kind in BASELINES if kind in kinds), None)

        def cell(kind: str | None) -> str:
            return f"{kinds[kind]:,.0f} ns" if kind in kinds else "-"

        def ratio(a: str | None, b: str | None) -> str:
            return f"{kinds[a] / kinds[b]:.2f}x" if a in kinds and b in kinds else "-"

        named = f"{cell(baseline)} ({BASELINES[baseline]})" if baseline else "-"
        print(f"| {piece} | {op} | {size} | {cell('native')} | {cell('pure')} | {named} "
              f"| {cell('memcpy')} | {ratio('pure', 'native')} | {ratio(baseline, 'native')} "
              f"| {ratio('native', 'memcpy')} |")
    if recorder_rows:
        print("\n| recorder | workload | implementation | figure |")
        print("|---|---|---|---|")
        for info in recorder_rows:
            if info["op"] == "paced":
                _print_paced(info)
                continue
            if info["op"] == "overhead":
                figure = (f"{info['cpu_percent_of_one_core']:.2f}% of one core, fed in a burst "
                          f"({info['cpu_s']:.3f} CPU s for {info['recorded_s']:g} s recorded)")
            elif info["op"] == "encryption":
                low, high = info["encrypted_vs_clear_spread"]
                figure = (f"encrypted {info['encrypted_cpu_percent_of_one_core']:.2f}% of one "
                          f"core, clear {info['clear_cpu_percent_of_one_core']:.2f}%: "
                          f"{info['encrypted_vs_clear']:.2f}x ({low:.2f}-{high:.2f}; median of "
                          f"{info['rounds']} alternating pairs)")
            else:
                figure = (f"first fragment fsynced {info['first_fragment_synced_ms']:.1f} ms after "
                          f"the trigger; whole buffer ({info['buffered_bytes'] / 1e6:.0f} MB) on "
                          f"disk in {info['buffer_drained_ms']:.0f} ms; "
                          f"{info['overrun_units']} overruns")
            print(f"| {info['op']} | {info['size']} | {info['kind']} | {figure} |")
    if aes_rows:
        print("\n| AES-128-CTR | buffer | native MB/s | pure MB/s | openssl speed MB/s "
              "| native / openssl (spread) | pure / openssl (spread) |")
        print("|---|---|---|---|---|---|---|")
        for info in aes_rows:
            def ratio(kind: str) -> str:
                low, high = info[f"{kind}_vs_openssl_spread"]
                return f"{info[f'{kind}_vs_openssl']:.2f}x ({low:.2f}-{high:.2f})"

            print(f"| in place | {info['size']} | {info['native_mb_s']:,.0f} "
                  f"| {info['pure_mb_s']:,.0f} | {info['openssl_mb_s']:,.0f} "
                  f"| {ratio('native')} | {ratio('pure')} |")
        print(f"\n(median of {aes_rows[0]['rounds']} alternating rounds; MB/s per CPU second)")
    if anchor_rows:
        print("\n| ring push against picamera2's CircularOutput2 | stream | implementation "
              "| per access unit (spread) | CircularOutput2.outputframe (spread) "
              "| ring / CircularOutput2 (spread) |")
        print("|---|---|---|---|---|---|")
        for info in anchor_rows:
            low, high = info["circular_output2_ns_spread"]
            anchor = f"{info['circular_output2_ns']:,.0f} ns ({low:,.0f}-{high:,.0f})"
            for kind in ("native", "pure"):
                low, high = info[f"{kind}_ns_spread"]
                rlow, rhigh = info[f"{kind}_vs_anchor_spread"]
                print(f"| push | {info['size']} | {kind} | {info[f'{kind}_ns']:,.0f} ns "
                      f"({low:,.0f}-{high:,.0f}) | {anchor} | {info[f'{kind}_vs_anchor']:.2f}x "
                      f"({rlow:.2f}-{rhigh:.2f}) |")
        print(f"\n(median of {anchor_rows[0]['rounds']} rounds of {anchor_rows[0]['units']:,} "
              "access units each, the three in turn within a round; ratios per round)")
    if "bwv" in upload and "plain-http" in upload:
        print(f"\nUpload of {upload_bytes / 1e9:.2f} GB on loopback: bwv upload "
              f"{upload_bytes / upload['bwv'] / 1e6:.0f} MB/s (signed, hashed, verified) against a "
              f"plain HTTP copy {upload_bytes / upload['plain-http'] / 1e6:.0f} MB/s: "
              f"{upload['plain-http'] / upload['bwv']:.0%} of the plain copy's throughput.")
    if fleet_rows:
        print("\n| cameras at once | bwv upload MB/s | plain copy MB/s | upload / plain "
              "| /health p50 / p99 during upload | /health p50 / p99 during plain copy |")
        print("|---|---|---|---|---|---|")
        for row in fleet_rows:
            def speed(kind: str) -> str:
                low, high = row[f"{kind}_mb_s_spread"]
                return f"{row[f'{kind}_mb_s']:.0f} ({low:.0f}-{high:.0f})"

            def health(kind: str) -> str:
                failed = row[f"{kind}_health_errors"]
                return (f"{row[f'{kind}_health_p50_ms']:.1f} / {row[f'{kind}_health_p99_ms']:.1f}"
                        f" ms" + (f" ({failed} failed)" if failed else ""))

            low, high = row["ratio_spread"]
            print(f"| {row['cameras']} | {speed('bwv')} | {speed('plain')} "
                  f"| {row['ratio']:.0%} ({low:.0%}-{high:.0%}) | {health('bwv')} "
                  f"| {health('plain')} |")
        first = fleet_rows[0]
        print(f"\n(median (min-max) of {first['rounds']} interleaved rounds of "
              f"{first['bytes'] / 1e9:.2f} GB each; /health polled every 20 ms with a fresh "
              "connection, all rounds pooled)")
    if redact_rows:
        _print_redact(redact_rows)


def _print_paced(info: dict[str, Any]) -> None:
    """The paced rows: the recorder's own % of one core fed at real time, per state."""
    for state in ("buffering", "recording"):
        cells = []
        for kind in ("native", "pure"):
            low, high = info[f"{state}_{kind}_spread"]
            capture, writer = info[f"{state}_{kind}_capture_writer"]
            split = f"; capture {capture:.3f}%, writer {writer:.3f}%" if state == "recording" else ""
            cells.append(f"{kind} {info[f'{state}_{kind}_percent']:.3f}% ({low:.3f}-{high:.3f}"
                         f"{split})")
        ratio = info[f"{state}_native_vs_pure"]
        spread = info[f"{state}_native_vs_pure_spread"]
        ratio_text = (f"native / pure {ratio:.2f}x ({spread[0]:.2f}-{spread[1]:.2f})"
                      if ratio is not None else "native / pure: -")
        print(f"| fed at real time, {state} | {info['size']} | both | {'; '.join(cells)}; "
              f"{ratio_text}; median of {info['rounds']} rounds of {info['fed_s']:g} s, the "
              f"feeding loop alone ({info['pacing_percent']:.3f}%) subtracted |")


def _print_redact(rows: list[tuple[float, dict[str, Any]]]) -> None:
    """The redaction benches: speed as a real-time factor, and what the checks found."""
    print("\n| redaction | footage | case | figure |")
    print("|---|---|---|---|")
    for median_s, info in rows:
        if "realtime_factor_median" in info:
            factors = info["realtime_factors"]
            cpu = info["cpu_s_per_footage_s"]  # every round's (one figure in older runs)
            cpu = cpu if isinstance(cpu, list) else [cpu]
            figure = (f"{info['realtime_factor_median']:.2f}x real time ({min(factors):.2f}-"
                      f"{max(factors):.2f} over {len(factors)} rounds), "
                      f"{info.get('cpu_s_per_footage_s_median', cpu[0]):.2f} CPU s "
                      f"({min(cpu):.2f}-{max(cpu):.2f}) per second of footage on "
                      f"{info['cores']} cores")
            if "load_average" in info:
                figure += (f", {info['output_mbit_s']:.1f} Mbit/s out; load average "
                           f"{info['load_average']:.1f}")
        elif "frames_with_faces_left" in info:
            figure = (f"{info['frames_with_faces_left']} of {info['frames_with_faces']} frames "
                      f"with a face still show one after redaction ({info['tracks']} tracks)")
        else:
            figure = (f"{median_s * 1000:,.0f} ms for 60 frames (median); finds all three faces "
                      f"in {info['all_three_share']:.0%} of them")
        print(f"| {info['op']} | {info['size']} | {info['kind']} | {figure} |")


if __name__ == "__main__":
    main(sys.argv[1])
