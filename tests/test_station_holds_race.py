"""Holds always win (issue 12, finding 5): two processes, on a real PostgreSQL cluster and on
SQLite. Process A sweeps a recording that is past retention; process B places a hold on it. One of
them is stopped by the test-only pause hook inside its locked transaction, between its check and
its write, and the other is started while it waits there; then both go on. Whatever the order,
the result is consistent: the hold was placed and the recording is kept, or the hold was refused
(RecordingGoneError) and the recording is deleted. Never a hold reported on a deleted recording.

The barrier is files in the test's directory: both processes open the catalogue and wait for
``<role>-start``; the paused one touches ``<role>-paused`` and waits for ``go``, which the test
creates once the other has started and is seen waiting for a lock (in pg_stat_activity on
PostgreSQL; on SQLite, still running a second later, in BEGIN IMMEDIATE)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from support.station import (FakeClock, camera_key, catalogue_url, clock, ingest, make_recording,
                             new_store, postgres_cluster)

from recorder.integrity.keys import DeviceKey
from recorder.station import catalogue, retention
from recorder.station.evidence_store import EvidenceStore
from recorder.station.public_requests import record_request

pytestmark = pytest.mark.usefixtures("no_fsync")

__all__ = ["camera_key", "catalogue_url", "clock", "new_store",  # fixtures used by name below
           "postgres_cluster"]

DAY = 86_400 * 1_000_000

# one side of the race, in its own interpreter: argv = role, catalogue URL, data dir, station
# time (µs), recording id, barrier dir, "pause" or "run"; prints its outcome as JSON
CHILD = r"""
import json, sys, time
from pathlib import Path
from recorder.station import catalogue, retention
from recorder.station.blobs import LocalBlobStore
from recorder.station.catalogue import open_catalogue
from recorder.station.errors import RecordingGoneError
from recorder.station.evidence_store import EvidenceStore
from recorder.station.public_requests import record_request
from recorder.station.identity import StationIdentity

role, url, data, now_us, recording_id, barrier, mode = sys.argv[1:8]
barrier_dir = Path(barrier)

def wait(name):
    deadline = time.monotonic() + 60
    while not (barrier_dir / name).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{role}: no {name} within 60 s")
        time.sleep(0.005)

def pause(paused_on):
    (barrier_dir / f"{role}-paused").write_text(paused_on)
    wait("go")

def run(paused_on):
    pass

hook = pause if mode == "pause" else run
store = EvidenceStore(open_catalogue(url), LocalBlobStore(Path(data) / "blobs"),
                      StationIdentity.load_or_create(Path(data)), clock=lambda: int(now_us))
(barrier_dir / f"{role}-ready").touch()  # the catalogue opened: on SQLite that writes
wait(f"{role}-start")
(barrier_dir / f"{role}-started").touch()
if role == "sweep":
    result = retention.sweep(store, pause=hook)
    print(json.dumps({"deleted": result.deleted, "kept_on_hold": result.kept_on_hold}))
elif role == "request":
    request = record_request(store, "SAR-RACE", "J. Public", "race",
                             catalogue.parse_utc("2026-11-01T00:00:00Z"),
                             catalogue.parse_utc("2026-12-31T00:00:00Z"), by="dpo")
    print(json.dumps({"matches": list(request.matches), "gone": list(request.gone)}))
else:
    try:
        hold = retention.place_hold(store, recording_id, "race", "CASE-RACE", by="insp",
                                    pause=hook)
        print(json.dumps({"hold": hold.id}))
    except RecordingGoneError:
        print(json.dumps({"gone": True}))
"""


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def lock_waiters(url: str) -> int:
    """How many sessions of the catalogue's database wait for a lock (PostgreSQL)."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()").scalar_one())
    finally:
        engine.dispose()


class Race:
    """The two processes of one race over one recording."""

    def __init__(self, url: str, data: Path, now_us: int, recording_id: str,
                 barrier: Path) -> None:
        self.url, self.data, self.now_us = url, data, now_us
        self.recording_id, self.barrier = recording_id, barrier
        barrier.mkdir()

    def start(self, role: str, mode: str) -> subprocess.Popen[str]:
        # cwd: the test's directory, so that the child imports the installed package
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, role, self.url, str(self.data), str(self.now_us),
             self.recording_id, str(self.barrier), mode], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=self.barrier,
            env=dict(os.environ, PYTHONPATH=""))

    def run(self, first: str, second: str) -> tuple[dict[str, Any], dict[str, Any], bool]:
        """The sweep's and the hold's outcomes of ``race``, and whether the second was seen
        blocked on a lock."""
        outcomes, blocked = self.race(first, second)
        return outcomes["sweep"], outcomes["hold"], blocked

    def race(self, first: str, second: str) -> tuple[dict[str, dict[str, Any]], bool]:
        """``first`` pauses inside its transaction; ``second`` starts and reaches its lock (or
        finishes, where nothing makes it wait); then both go on. Their outcomes by role, and
        whether the second was seen blocked on a lock."""
        paused, other = self.start(first, "pause"), self.start(second, "run")
        for role, process in ((first, paused), (second, other)):
            wait_for(lambda: (self.barrier / f"{role}-ready").exists()
                     or process.poll() is not None, f"{role} to open the catalogue")
            assert process.poll() is None, process.communicate()
        (self.barrier / f"{first}-start").touch()
        wait_for(lambda: (self.barrier / f"{first}-paused").exists()
                 or paused.poll() is not None, f"{first} to pause")
        assert paused.poll() is None, paused.communicate()
        (self.barrier / f"{second}-start").touch()
        wait_for(lambda: (self.barrier / f"{second}-started").exists()
                 or other.poll() is not None, f"{second} to start")
        blocked = False
        if self.url.startswith("postgresql"):
            deadline = time.monotonic() + 10
            while other.poll() is None and time.monotonic() < deadline and not blocked:
                blocked = lock_waiters(self.url) > 0
                time.sleep(0.02)
        else:
            time.sleep(1.0)  # SQLite: it waits in BEGIN IMMEDIATE (busy_timeout 10 s)
            blocked = other.poll() is None
        (self.barrier / "go").touch()
        outcomes = {}
        for role, process in ((first, paused), (second, other)):
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, f"{role}: {err}"
            outcomes[role] = json.loads(out)
        return outcomes, blocked


@pytest.fixture()
def due(new_store: Callable[[], EvidenceStore], camera_key: DeviceKey, clock: FakeClock,
        tmp_path: Path) -> tuple[EvidenceStore, str]:
    """A station holding one verified recording, its clock past the recording's retention."""
    store = new_store()
    store.enroll("cam7", camera_key.public_key, by="admin")
    directory = make_recording(tmp_path / "recordings", camera_key)
    assert ingest(store, directory).verified
    clock.advance_days(32)
    return store, directory.name


def outcome(store: EvidenceStore, recording_id: str) -> tuple[str, int]:
    """The recording's status and its number of active holds, read afresh."""
    return (store.recording(recording_id).status,
            len(retention.active_holds(store, recording_id)))


def test_a_hold_landing_inside_the_sweeps_transaction_is_refused_not_lost(
        due: tuple[EvidenceStore, str], catalogue_url: str, clock: FakeClock,
        tmp_path: Path) -> None:
    store, recording_id = due
    race = Race(catalogue_url, tmp_path / "station", clock.now_us, recording_id,
                tmp_path / "barrier")
    swept, held, blocked = race.run("sweep", "hold")
    status, active = outcome(store, recording_id)
    # the attack: on the old code (PostgreSQL) the hold said Hold(id=1) and the recording went
    assert (status, active) in (("deleted", 0), ("verified", 1)), (swept, held)
    assert ("gone" in held) == (status == "deleted") == (swept["deleted"] == [recording_id])
    # the sweep held the row first: it deletes, and the hold waited and was refused
    assert held == {"gone": True} and status == "deleted"
    assert blocked, "the hold never waited for the sweep's lock: the race was not run"


def test_a_sweep_landing_inside_a_holds_transaction_keeps_the_recording(
        due: tuple[EvidenceStore, str], catalogue_url: str, clock: FakeClock,
        tmp_path: Path) -> None:
    store, recording_id = due
    race = Race(catalogue_url, tmp_path / "station", clock.now_us, recording_id,
                tmp_path / "barrier")
    swept, held, blocked = race.run("hold", "sweep")
    status, active = outcome(store, recording_id)
    assert (status, active) in (("deleted", 0), ("verified", 1)), (swept, held)
    assert ("gone" in held) == (status == "deleted")
    # the hold held the row first: it is placed, and the sweep waited and kept the recording
    assert "hold" in held and status == "verified" and active == 1
    assert swept == {"deleted": [], "kept_on_hold": [recording_id]}
    assert blocked, "the sweep never waited for the hold's lock: the race was not run"


def test_a_public_request_holds_each_match_or_reports_it_gone(
        due: tuple[EvidenceStore, str], camera_key: DeviceKey, clock: FakeClock,
        tmp_path: Path) -> None:
    store, swept_id = due
    later = make_recording(tmp_path / "recordings", camera_key,
                           utc_start="2026-12-25T07:30:00.000000Z")
    clock.now_us = catalogue.parse_utc("2026-12-25T08:00:00.000000Z")
    ingest(store, later)
    assert retention.sweep(store).deleted == [swept_id]
    request = record_request(store, "SAR-7", "J. Public", "stopped in the street",
                             catalogue.parse_utc("2026-11-01T00:00:00Z"),
                             catalogue.parse_utc("2026-12-31T00:00:00Z"), by="dpo")
    # on the old code the deleted one was left out without a word
    assert (request.matches, request.gone) == ((later.name,), (swept_id,))
    assert [h.case_ref for h in retention.active_holds(store, later.name)] == ["SAR-7"]
    assert retention.active_holds(store, swept_id) == []


def test_a_public_request_landing_inside_the_sweeps_transaction_waits_and_reports_it_gone(
        due: tuple[EvidenceStore, str], catalogue_url: str, clock: FakeClock,
        tmp_path: Path) -> None:
    """The sweep locks the row, then appends to the audit log; a request that appended first
    and then waited for the row deadlocked with it on PostgreSQL (one of them aborted). It
    locks its matches first now: it waits for the sweep, which commits, and reports the
    recording gone."""
    store, recording_id = due
    race = Race(catalogue_url, tmp_path / "station", clock.now_us, recording_id,
                tmp_path / "barrier")
    outcomes, blocked = race.race("sweep", "request")  # both exit 0: neither was aborted
    assert outcomes["sweep"] == {"deleted": [recording_id], "kept_on_hold": []}
    assert outcomes["request"] == {"matches": [], "gone": [recording_id]}
    assert outcome(store, recording_id) == ("deleted", 0)
    assert blocked, "the request never waited for the sweep's lock: the race was not run"
