"""Aggregate upload throughput through haproxy to one against two `bwv station serve` processes on
one PostgreSQL catalogue (docs/station.md, "Several station processes").

N cameras (BWV_BENCH_FLEET_LB_CAMERAS, default 8), each with its own enrolled key and its own
sealed recording, upload at once through haproxy (TCP mode, round robin, tests/support/fleet.py)
to a fresh station whose catalogue is a fresh database on a PostgreSQL cluster of the bench's
own, its blobs in the station's directory shared by the processes or in a bucket of a real
Ceph gateway started by the bench (tests/support/ceph.py; BWV_BENCH_FLEET_LB_BLOBS = "local",
"s3" or both, the default), a fresh prefix each round. The recordings are
bench_upload's fleet (``make_fleets``: BWV_BENCH_FLEET_SEGMENTS segments of
BWV_BENCH_FLEET_SEGMENT_MB each, shared out among the cameras). Rounds
(BWV_BENCH_FLEET_LB_ROUNDS, default 3) alternate which of the two goes first; each round
reports MB/s for 1 and for 2 processes, and their ratio; the summary is the median and the
spread (min-max) of the rounds, and the station processes' CPU seconds per GB.

Everything runs on this machine: the cameras (threads of the bench), haproxy, the station
processes and PostgreSQL share its cores, so two processes gain only what the cores left idle
by one allow; on a shared machine the figure is noisy.

Run: pytest benches/bench_fleet_lb.py -s
     BWV_BENCH_FLEET_SEGMENT_MB=10 pytest benches/bench_fleet_lb.py -s  (a shorter run)
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench_upload import CHUNK, Fleet, _cpu_s, _fresh_copy, _together, make_fleets
from recorder.integrity.keys import DeviceKey
from recorder.station.identity import StationIdentity
from recorder.uploader import Uploader
from support.ceph import ceph, s3_bucket
from support.fleet import (Blobs, LocalBlobs, S3Blobs, fresh_database, require_haproxy,
                           start_fleet)
from support.station import make_store, postgres_cluster

__all__ = ["ceph", "postgres_cluster", "s3_bucket"]  # fixtures used by name below

CAMERAS = int(os.environ.get("BWV_BENCH_FLEET_LB_CAMERAS", "8"))
ROUNDS = int(os.environ.get("BWV_BENCH_FLEET_LB_ROUNDS", "3"))
PROCESSES = (1, 2)
WHERE = os.environ.get("BWV_BENCH_FLEET_LB_BLOBS", "local s3").split()
# Ceph's OSD here keeps objects in memory: room for a round, whose objects are deleted after it
os.environ.setdefault("BWV_CEPH_MEMSTORE_MB", "8192")


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    root = Path(tempfile.mkdtemp(prefix="bwv-bench-fleet-lb-"))
    yield make_fleets(root, sizes=(CAMERAS,))[CAMERAS]
    shutil.rmtree(root, ignore_errors=True)


def _round(fleet: Fleet, processes: int, cluster: tuple[Path, int], number: int,
           bucket: str | None) -> dict[str, Any]:
    """One round: a fresh database and station, every camera enrolled, ``processes`` station
    processes behind haproxy, every camera uploading at once."""
    root = Path(tempfile.mkdtemp(prefix="bwv-bench-fleet-lb-round-"))
    try:
        with fresh_database(cluster, "bwv_bench_lb") as url:
            return _upload_round(fleet, processes, root, url, number, bucket)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _upload_round(fleet: Fleet, processes: int, root: Path, url: str, number: int,
                  bucket: str | None) -> dict[str, Any]:
    data = root / "station"
    blobs: Blobs = (LocalBlobs(data) if bucket is None
                    else S3Blobs(bucket, prefix=f"round{number}-{processes}"))
    store = make_store(data, db_url=url, blobs=blobs.store())
    for device, key, _ in fleet:
        store.enroll(device, key.public_key, by="admin")
    store.engine.dispose()
    identity = StationIdentity.find(data)
    assert identity is not None
    running = start_fleet(data, url, blobs, processes, directory=root / "fleet")
    try:
        jobs = []
        for device, key, source in fleet:
            recordings = _fresh_copy(source, root / device)

            def job(device: str = device, key: DeviceKey = key,
                    recordings: Path = recordings) -> None:
                with Uploader(running.url, key, device, recordings, pin=identity.pin,
                              chunk_bytes=CHUNK, attempts=1) as up:
                    summary = up.upload_all()
                assert summary.ok, summary
                assert not any(recordings.iterdir()), "the camera copy was not deleted"

            jobs.append(job)
        pids = [station.process.pid for station in running.stations]
        cpu_before = [_cpu_s(pid) for pid in pids]
        took = _together(jobs)
        cpu = [_cpu_s(pid) - before for pid, before in zip(pids, cpu_before)]
    finally:
        running.stop()
        if bucket is not None:  # free the memory-backed OSD for the next round
            for sha256 in blobs.stored():
                blobs.store().delete(sha256)
    return {"s": took, "station_cpu_s": cpu}


@pytest.mark.parametrize("where", WHERE)
def test_fleet_through_haproxy_one_vs_two_processes(
        benchmark: Any, fleet: Fleet, postgres_cluster: tuple[Path, int], where: str,
        request: pytest.FixtureRequest) -> None:
    require_haproxy()
    bucket = request.getfixturevalue("s3_bucket") if where == "s3" else None
    results: dict[int, list[dict[str, Any]]] = {count: [] for count in PROCESSES}

    def measure() -> None:
        for number in range(ROUNDS):
            order = PROCESSES if number % 2 == 0 else tuple(reversed(PROCESSES))
            for count in order:  # interleaved, each first in every other round
                results[count].append(_round(fleet, count, postgres_cluster, number, bucket))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    total = sum(path.stat().st_size for _, _, source in fleet for path in source.iterdir())
    speeds = {count: [total / run["s"] / 1e6 for run in results[count]] for count in PROCESSES}
    ratios = [two / one for one, two in zip(speeds[1], speeds[2])]  # each round's own pair
    cpu_per_gb = {count: statistics.median(sum(run["station_cpu_s"]) / (total / 1e9)
                                           for run in results[count]) for count in PROCESSES}
    print(f"\nfleet through haproxy, blobs {where}: {CAMERAS} cameras, {total / 1e9:.2f} GB a "
          f"round, {ROUNDS} rounds, median (min-max), {os.cpu_count()} cores shared with the cameras, haproxy "
          "and PostgreSQL")
    for count in PROCESSES:
        print(f"  {count} process{'es' if count > 1 else ''}: "
              f"{statistics.median(speeds[count]):.0f} MB/s ({min(speeds[count]):.0f}-"
              f"{max(speeds[count]):.0f}); station CPU {cpu_per_gb[count]:.2f} s/GB; rounds "
              + ", ".join(f"{speed:.0f}" for speed in speeds[count]))
    print(f"  2/1: {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}); "
          "rounds " + ", ".join(f"{ratio:.2f}" for ratio in ratios))
    benchmark.extra_info.update(
        piece="station-fleet-lb", op="upload", kind="two-vs-one-process", units=1, blobs=where,
        cameras=CAMERAS, bytes=total, rounds=ROUNDS,
        mb_s={str(count): statistics.median(speeds[count]) for count in PROCESSES},
        mb_s_spread={str(count): [min(speeds[count]), max(speeds[count])]
                     for count in PROCESSES},
        ratio=statistics.median(ratios), ratio_spread=[min(ratios), max(ratios)],
        station_cpu_s_per_gb={str(count): cpu_per_gb[count] for count in PROCESSES})
