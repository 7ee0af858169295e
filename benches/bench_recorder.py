"""The recorder's own cost (ring, interleave, mux, hash, write, fsync; not the encoder) and its
trigger latency, for native and pure, each in its own process (RECORDER_NATIVE picks at import).

The figures that matter are in each bench's extra_info (printed by benches/table.py):
cpu_percent_of_one_core per recorded second, first_fragment_synced_ms, buffer_drained_ms; and
for encryption at rest, the recorder's CPU recording encrypted for a station against the same
stream in the clear (ENCRYPTION_ROUNDS alternating pairs, the median of their ratios and its
spread).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

WORKLOAD = Path(__file__).with_name("recorder_workload.py")
# the paced bench: seconds fed per run, and rounds (each round: pacing only, then both states
# for both implementations, in an order that turns from round to round)
PACED_SECONDS = float(os.environ.get("BWV_PACED_SECONDS", "20"))
PACED_ROUNDS = int(os.environ.get("BWV_PACED_ROUNDS", "5"))
POLICY = {"native": "required", "pure": "off"}
ENCRYPTION_ROUNDS = 5


def run_workload(kind: str, workload: str, directory: Path, *extra: str) -> dict[str, Any]:
    env = dict(os.environ, RECORDER_NATIVE=POLICY[kind])
    result = subprocess.run([sys.executable, str(WORKLOAD), workload, "--dir", str(directory),
                             *extra], env=env, cwd="/", capture_output=True, text=True,
                            timeout=900)
    if result.returncode != 0:
        if kind == "native" and "did not load" in result.stderr:
            pytest.skip("native modules not built")
        raise AssertionError(result.stderr)
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def test_recorder_paced_at_real_time(benchmark: Any, tmp_path: Path) -> None:
    """What a camera lives through: 1080p30 10 Mbit/s + AAC fed at real time (each unit pushed
    at its pts from a capture thread) while buffering (all day) and while recording, native and
    pure, each run in a fresh process. Each round also runs the feeding loop alone (pacing); its
    CPU is subtracted from the same round's runs. Reported per state and implementation: the
    median over the rounds of the recorder's own % of one core, with the spread of the rounds,
    and the median and spread of the rounds' native / pure ratios."""
    runs = [("pacing", "native")] + [(state, kind) for state in ("buffering", "recording")
                                      for kind in ("native", "pure")]
    net: dict[tuple[str, str], list[float]] = {run: [] for run in runs[1:]}
    threads: dict[tuple[str, str], list[tuple[float, float]]] = {run: [] for run in runs[1:]}
    pacing: list[float] = []

    def rounds() -> None:
        for number in range(PACED_ROUNDS):
            order = runs[1:][number % 4:] + runs[1:][:number % 4]
            figures = {}
            for state, kind in [runs[0], *order]:
                figures[state, kind] = run_workload(
                    kind, "paced", tmp_path / f"{state}-{kind}-{number}", "--state", state,
                    "--seconds", str(PACED_SECONDS))
                assert figures[state, kind]["implementation"] == kind
            base = figures["pacing", "native"]["cpu_percent_of_one_core"]
            pacing.append(base)
            for run in net:
                net[run].append(figures[run]["cpu_percent_of_one_core"] - base)
                threads[run].append((figures[run]["capture_thread_percent"] - base,
                                     figures[run]["writer_thread_percent"]))
            assert figures["recording", "native"]["written_units"] == figures[
                "recording", "native"]["units"]

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    figures: dict[str, Any] = {"rounds": PACED_ROUNDS, "fed_s": PACED_SECONDS,
                               "pacing_percent": statistics.median(pacing),
                               "pacing_spread": [min(pacing), max(pacing)]}
    for (state, kind), values in net.items():
        figures[f"{state}_{kind}_percent"] = statistics.median(values)
        figures[f"{state}_{kind}_spread"] = [min(values), max(values)]
        figures[f"{state}_{kind}_capture_writer"] = [
            statistics.median(t[0] for t in threads[state, kind]),
            statistics.median(t[1] for t in threads[state, kind])]
    for state in ("buffering", "recording"):
        ratios = [n / p for n, p in zip(net[state, "native"], net[state, "pure"]) if p > 0]
        figures[f"{state}_native_vs_pure"] = statistics.median(ratios) if ratios else None
        figures[f"{state}_native_vs_pure_spread"] = [min(ratios), max(ratios)] if ratios else None
    benchmark.extra_info.update(piece="recorder", op="paced", size="1080p30 10Mbit/s+AAC",
                                kind="both", units=1, **figures)


@pytest.mark.parametrize("kind", ["native", "pure"])
def test_recorder_overhead_1080p30_10mbps_with_aac(benchmark: Any, kind: str, tmp_path: Path) -> None:
    figures: dict[str, Any] = {}

    def once() -> None:
        figures.update(run_workload(kind, "overhead", tmp_path / "run", "--seconds", "20"))

    benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update(piece="recorder", op="overhead", size="1080p30 10Mbit/s+AAC",
                                kind=kind, units=1, **figures)
    assert figures["implementation"] == kind


@pytest.mark.parametrize("kind", ["native", "pure"])
def test_recorder_overhead_encrypted_vs_clear(benchmark: Any, kind: str, tmp_path: Path) -> None:
    """The same 20 s recorded in the clear and encrypted for a station, alternately, each in a
    fresh process: CPU per recorded second of each and the ratio encrypted / clear."""
    cpu: dict[str, list[float]] = {"clear": [], "encrypted": []}

    def rounds() -> None:
        for number in range(ENCRYPTION_ROUNDS):
            for mode in ("clear", "encrypted"):
                extra = ("--encrypted",) if mode == "encrypted" else ()
                figures = run_workload(kind, "overhead", tmp_path / f"{mode}{number}",
                                       "--seconds", "20", *extra)
                assert figures["implementation"] == kind
                assert figures["encrypted"] == (mode == "encrypted")
                cpu[mode].append(figures["cpu_percent_of_one_core"])

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    ratios = [encrypted / clear for clear, encrypted in zip(cpu["clear"], cpu["encrypted"])]
    benchmark.extra_info.update(
        piece="recorder", op="encryption", size="1080p30 10Mbit/s+AAC", kind=kind, units=1,
        rounds=ENCRYPTION_ROUNDS,
        clear_cpu_percent_of_one_core=statistics.median(cpu["clear"]),
        encrypted_cpu_percent_of_one_core=statistics.median(cpu["encrypted"]),
        encrypted_vs_clear=statistics.median(ratios),
        encrypted_vs_clear_spread=[min(ratios), max(ratios)])


@pytest.mark.parametrize("kind", ["native", "pure"])
def test_trigger_latency_with_30s_buffered(benchmark: Any, kind: str, tmp_path: Path) -> None:
    figures: dict[str, Any] = {}

    def once() -> None:
        figures.update(run_workload(kind, "latency", tmp_path / "run"))

    benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update(piece="recorder", op="trigger", size="30 s at 10Mbit/s",
                                kind=kind, units=1, **figures)
    assert figures["overrun_units"] == 0
