"""The fleet's arithmetic on paper (docs/fleet.md): from a force's size and habits (cameras,
shifts, minutes recorded, bit rates, retention, the share held as evidence) to the bytes per day,
the peak upload rate at shift change, the objects and catalogue rows, the requests per second,
and how many station processes, database and Ceph nodes that takes, given what one station
process was measured to do (benches/bench_upload.py's fleet bench, benches/bench_fleet_lb.py).

Every input is an option with the default docs/fleet.md uses; change them for another force.

    python benches/fleet_arithmetic.py                      # the design load, markdown
    python benches/fleet_arithmetic.py --videos-per-year 785000 --minutes-per-video 10
    python benches/fleet_arithmetic.py --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass

GB = 1e9
TB = 1e12
PB = 1e15


@dataclass(frozen=True)
class Force:
    cameras: int = 22_000
    shifts_per_camera_day: float = 1.0  # a camera issued to one officer, docked once a day
    minutes_per_shift: float = 60.0  # recorded per shift (the pre-event seconds included)
    videos_per_year: int | None = None  # instead: a force's own count of videos ...
    minutes_per_video: float = 10.0  # ... and their mean length
    recordings_per_shift: float = 6.0  # how the minutes are cut into recordings
    video_mbit_s: float = 10.0  # camera.bitrate_bps (1080p30); 720p is about 4
    audio_kbit_s: float = 64.0  # audio.bitrate_bps
    segment_s: float = 30.0  # recording.segment_s
    retention_days: int = 31
    held_share: float = 0.41  # the Met's first year: 460,000 of 785,000 deleted on retention
    held_years: float = 7.0  # a saved recording's retention
    shift_changes_per_day: int = 3
    upload_window_h: float = 1.0  # the docked cameras of one shift change upload within this
    camera_link_mbit_s: float = 25.0  # one camera's dock link


@dataclass(frozen=True)
class Measured:
    """What one station process did on the bench machine (docs/performance.md)."""

    process_mb_s: float = 76.0  # MB/s one process ingests with 32 cameras at once
    cpu_s_per_gb: float = 5.3  # station CPU seconds per GB received at N=32
    two_process_ratio: float | None = None  # throughput of 2 processes / 1 (bench_fleet_lb)
    headroom: float = 2.0  # processes provisioned per process the peak needs


@dataclass(frozen=True)
class Storage:
    ec_overhead: float = 1.5  # Ceph erasure coding 4+2 (3.0 for three replicas)
    disk_tb: float = 20.0
    disks_per_node: int = 24
    disk_mb_s: float = 150.0  # sustained write per hard disk
    fill: float = 0.7  # a cluster is run below this fill
    db_tx_per_s_per_node: float = 5_000.0  # one PostgreSQL primary on NVMe, small transactions


def compute(force: Force, measured: Measured, storage: Storage) -> dict[str, float]:
    bytes_per_s = (force.video_mbit_s * 1e6 + force.audio_kbit_s * 1e3) / 8
    if force.videos_per_year is not None:
        recordings_day = force.videos_per_year / 365
        minutes_day = recordings_day * force.minutes_per_video
    else:
        shifts_day = force.cameras * force.shifts_per_camera_day
        minutes_day = shifts_day * force.minutes_per_shift
        recordings_day = shifts_day * force.recordings_per_shift
    bytes_day = minutes_day * 60 * bytes_per_s
    segments_per_recording = max(1.0, math.ceil(minutes_day * 60 / recordings_day
                                                / force.segment_s))
    segments_day = recordings_day * segments_per_recording
    window_bytes = bytes_day * force.retention_days
    held_bytes_year = bytes_day * 365 * force.held_share
    held_bytes_steady = held_bytes_year * force.held_years
    stored_bytes = window_bytes + held_bytes_steady  # held years run past the 31 days
    # the peak: one shift change's share of the day, uploaded within the window
    peak_bytes = bytes_day / force.shift_changes_per_day
    peak_rate = peak_bytes / (force.upload_window_h * 3600)
    per_camera_s = (bytes_day / max(1.0, force.cameras * force.shifts_per_camera_day)
                    / (force.camera_link_mbit_s * 1e6 / 8))
    # requests per recording: GET holdings, one PUT per segment, PUT manifest, GET receipt
    requests_per_recording = segments_per_recording + 3
    peak_recordings_s = (recordings_day / force.shift_changes_per_day
                         / (force.upload_window_h * 3600))
    peak_requests_s = peak_recordings_s * requests_per_recording
    cores_at_peak = peak_rate / GB * measured.cpu_s_per_gb
    # several processes on one catalogue each do less than one alone: the bench's 2/1 ratio
    efficiency = 1.0 if measured.two_process_ratio is None else measured.two_process_ratio / 2
    processes = math.ceil(peak_rate / (measured.process_mb_s * 1e6 * efficiency)
                          * measured.headroom)
    objects = (recordings_day * (segments_per_recording + 1)
               * (force.retention_days + 365 * force.held_share * force.held_years))
    raw = stored_bytes * storage.ec_overhead / storage.fill
    nodes_capacity = math.ceil(raw / (storage.disk_tb * TB * storage.disks_per_node))
    nodes_write = math.ceil(peak_rate * storage.ec_overhead
                            / (storage.disk_mb_s * 1e6 * storage.disks_per_node))
    # catalogue: a recording row, its segment rows, about 4 audit entries each (ingest,
    # verify, receipt, delete) and a receipt; kept as tombstones after deletion
    rows_year = recordings_day * 365 * (1 + segments_per_recording + 5)
    db_tx_peak = peak_requests_s * 1.5  # a segment PUT is one transaction, a manifest two
    return {
        "bytes_per_s_per_camera": bytes_per_s,
        "minutes_recorded_per_day": minutes_day,
        "recordings_per_day": recordings_day,
        "segments_per_recording": segments_per_recording,
        "segments_per_day": segments_day,
        "bytes_per_day": bytes_day,
        "bytes_in_31_day_window": window_bytes,
        "held_bytes_per_year": held_bytes_year,
        "bytes_stored_steady": stored_bytes,
        "peak_upload_bytes_per_s": peak_rate,
        "peak_upload_gbit_s": peak_rate * 8 / 1e9,
        "camera_upload_minutes": per_camera_s / 60,
        "peak_recordings_per_s": peak_recordings_s,
        "peak_requests_per_s": peak_requests_s,
        "station_cores_at_peak": cores_at_peak,
        "station_processes": processes,
        "objects_stored": objects,
        "ceph_raw_bytes": raw,
        "ceph_nodes_for_capacity": nodes_capacity,
        "ceph_nodes_for_peak_writes": nodes_write,
        "catalogue_rows_per_year": rows_year,
        "db_transactions_per_s_at_peak": db_tx_peak,
        "db_nodes": max(1, math.ceil(db_tx_peak / storage.db_tx_per_s_per_node)) + 1,
    }


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((PB, "P"), (TB, "T"), (GB, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:,.1f} {prefix}{unit}"
    return f"{value:,.1f} {unit}"


def markdown(figures: dict[str, float], measured: Measured) -> str:
    f = figures
    scaling = ("" if measured.two_process_ratio is None else
               f", {measured.two_process_ratio:g}x for two processes")
    lines = [
        "| quantity | figure |",
        "|---|---|",
        f"| recorded per day | {f['minutes_recorded_per_day'] / 60:,.0f} hours in "
        f"{f['recordings_per_day']:,.0f} recordings of {f['segments_per_recording']:.0f} "
        "segments |",
        f"| bytes per day | {_si(f['bytes_per_day'], 'B')} |",
        f"| kept in the 31-day window | {_si(f['bytes_in_31_day_window'], 'B')} |",
        f"| held as evidence, per year | {_si(f['held_bytes_per_year'], 'B')} |",
        f"| stored in the steady state (window + held years) | "
        f"{_si(f['bytes_stored_steady'], 'B')} |",
        f"| peak upload at a shift change | {_si(f['peak_upload_bytes_per_s'], 'B/s')} "
        f"({f['peak_upload_gbit_s']:,.1f} Gbit/s) |",
        f"| one camera's day over its dock link | {f['camera_upload_minutes']:,.1f} minutes |",
        f"| requests per second at the peak | {f['peak_requests_per_s']:,.0f} "
        f"({f['peak_recordings_per_s']:,.1f} recordings per second) |",
        f"| station CPU at the peak | {f['station_cores_at_peak']:,.1f} cores at "
        f"{measured.cpu_s_per_gb} CPU s per GB |",
        f"| station processes | {f['station_processes']:,.0f} at {measured.process_mb_s:g} MB/s "
        f"each{scaling}, {measured.headroom:g}x headroom |",
        f"| objects in the store | {f['objects_stored'] / 1e6:,.1f} million |",
        f"| Ceph raw capacity | {_si(f['ceph_raw_bytes'], 'B')}: "
        f"{f['ceph_nodes_for_capacity']:,.0f} nodes for capacity, "
        f"{f['ceph_nodes_for_peak_writes']:,.0f} for the peak's writes |",
        f"| catalogue rows added per year | {f['catalogue_rows_per_year'] / 1e6:,.1f} million |",
        f"| catalogue transactions per second at the peak | "
        f"{f['db_transactions_per_s_at_peak']:,.0f}: {f['db_nodes']:.0f} PostgreSQL nodes "
        "(a primary and a standby) |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for kind, title in ((Force, "force"), (Measured, "measured"), (Storage, "storage")):
        group = parser.add_argument_group(title)
        for name, default in asdict(kind()).items():
            group.add_argument("--" + name.replace("_", "-"), dest=name, default=default,
                               type=int if isinstance(default, int) else float,
                               metavar="N", help=f"default {default}")
    parser.add_argument("--json", action="store_true", help="the figures as JSON")
    options = vars(parser.parse_args(argv))
    as_json = options.pop("json")
    if any(value is not None and value < 0 for value in options.values()):
        parser.error("every figure must be zero or more")
    force = Force(**{name: options[name] for name in asdict(Force())})
    measured = Measured(**{name: options[name] for name in asdict(Measured())})
    storage = Storage(**{name: options[name] for name in asdict(Storage())})
    if force.videos_per_year is not None and force.videos_per_year <= 0:
        parser.error("--videos-per-year must be more than zero")
    figures = compute(force, measured, storage)
    print(json.dumps(figures, indent=2) if as_json else markdown(figures, measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
