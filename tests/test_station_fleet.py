"""Several station processes on one catalogue (docs/station.md, "Several station processes"):
the retention sweep runs in one of them at a time, a recording's first row is entered once when
a camera's retry lands on another process, the audit log stays one chain with two writer
processes, and cameras uploading through haproxy to two `bwv station serve` processes finish
when one of them is killed mid-upload (tests/support/fleet.py starts them)."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import func, insert, select
from support import emulated
from support.ceph import ceph, s3_bucket
from support.fleet import Blobs, LocalBlobs, S3Blobs, fleet_db_url, referenced, start_fleet
from support.station import (FakeClock, bwv, camera_key, catalogue_url, clock, ingest,
                             make_recording, make_store, new_store, postgres_cluster,
                             recording_id_for)

from recorder.integrity.keys import DeviceKey
from recorder.station import audit, retention
from recorder.station.audit import Action
from recorder.station.catalogue import deletions, recordings, segments
from recorder.station.evidence_store import EvidenceStore, Status
from recorder.station.identity import StationIdentity
from recorder.uploader import Uploader, UploadProgress

__all__ = ["camera_key", "catalogue_url", "ceph", "clock", "fleet_db_url", "new_store",
           "postgres_cluster", "s3_bucket"]  # fixtures used by name below


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def audit_count(store: EvidenceStore, action: str, recording_id: str) -> int:
    return sum(1 for entry in audit.entries(store.engine, recording_id)
               if entry.action == action)


# --- the sweep: one at a time, each recording deleted once


@pytest.fixture()
def due_many(new_store: Callable[[], EvidenceStore], camera_key: DeviceKey, clock: FakeClock,
             tmp_path: Path) -> tuple[EvidenceStore, list[str]]:
    """A station holding three verified recordings, its clock past their retention."""
    store = new_store()
    store.enroll("cam7", camera_key.public_key, by="admin")
    made = []
    for hour in (7, 8, 9):
        directory = make_recording(tmp_path / "recordings", camera_key,
                                   utc_start=f"2026-11-23T0{hour}:00:00.000000Z")
        assert ingest(store, directory).verified
        made.append(directory.name)
    clock.advance_days(32)
    return store, made


def test_two_sweeps_at_once_delete_each_recording_once(
        due_many: tuple[EvidenceStore, list[str]], new_store: Callable[[], EvidenceStore],
        catalogue_url: str) -> None:
    first_store, due = due_many
    second_store = new_store()  # an engine of its own: another process's connections
    paused, go = threading.Event(), threading.Event()
    results: dict[str, retention.SweepResult] = {}

    def pause(recording_id: str) -> None:
        if not paused.is_set():
            paused.set()
            assert go.wait(20)

    def run(name: str, store: EvidenceStore, hook: retention.Pause) -> None:
        results[name] = retention.sweep(store, pause=hook)

    first = threading.Thread(target=run, args=("first", first_store, pause))
    first.start()
    wait_for(paused.is_set, "the first sweep to pause inside its first deletion")
    second = threading.Thread(target=run, args=("second", second_store, lambda _: None))
    second.start()
    if catalogue_url.startswith("postgresql"):
        # the advisory lock is the first sweep's: the second returns at once, having done nothing
        second.join(timeout=10)
        assert not second.is_alive() and results["second"].skipped
        assert results["second"].deleted == []
    else:
        time.sleep(0.3)  # SQLite: it waits for the first's write lock (one process, one writer)
    go.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert not results["first"].skipped
    deleted = results["first"].deleted + results["second"].deleted
    assert sorted(deleted) == sorted(due)  # none twice, none missed
    with first_store.engine.connect() as conn:
        rows = collections.Counter(conn.execute(select(deletions.c.recording_id)).scalars())
    assert rows == {recording_id: 1 for recording_id in due}
    for recording_id in due:
        assert audit_count(first_store, Action.DELETE, recording_id) == 1
        assert first_store.recording(recording_id).status == Status.DELETED
    assert audit.verify(first_store.engine, first_store.identity).ok


def test_the_sweep_lock_is_released_after_a_sweep_and_by_a_process_that_dies(
        new_store: Callable[[], EvidenceStore], catalogue_url: str, tmp_path: Path) -> None:
    if not catalogue_url.startswith("postgresql"):
        pytest.skip("the advisory lock is PostgreSQL's; SQLite has one process")
    store = new_store()
    assert not retention.sweep(store).skipped
    assert not retention.sweep(new_store()).skipped  # released when the first ended
    # a process holding it and killed: the server ends its session and the lock with it
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlalchemy, sys, time\n"
         "e = sqlalchemy.create_engine(sys.argv[1])\n"
         "c = e.connect()\n"
         f"c.exec_driver_sql('SELECT pg_advisory_lock({retention.SWEEP_LOCK[0]}, "
         f"{retention.SWEEP_LOCK[1]})')\n"
         "c.commit()\nprint('held', flush=True)\ntime.sleep(60)\n", catalogue_url],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=""), cwd="/")
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert retention.sweep(store).skipped
        swept = bwv("station", "sweep", "--data", str(tmp_path / "station"), "--db",
                    catalogue_url, "--by", "ops")
        assert swept.returncode == 0, swept.stderr
        assert swept.stdout == ("another station process on this catalogue is sweeping now: "
                                "nothing done here\n")
    finally:
        holder.kill()
        holder.communicate()
    wait_for(lambda: not retention.sweep(store).skipped, "the dead process's lock to go")


# --- ingest: the recording's row entered by another process meanwhile


def _blocked_on_a_lock(url: str) -> bool:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()").scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("what", ["segment", "manifest"])
def test_a_row_entered_by_another_process_meanwhile_is_taken_not_an_error(
        new_store: Callable[[], EvidenceStore], camera_key: DeviceKey, catalogue_url: str,
        clock: FakeClock, tmp_path: Path, what: str) -> None:
    """The other process (here a bare connection) enters the recording's row after this one
    found none and before it inserts: its INSERT waits, then finds the row taken. On the old
    code that was a unique violation and a 500 to the camera."""
    if not catalogue_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer from BEGIN IMMEDIATE: the row cannot appear between")
    store = new_store()
    store.enroll("cam7", camera_key.public_key, by="admin")
    directory = make_recording(tmp_path / "recordings", camera_key)
    recording_id = directory.name
    other = sqlalchemy.create_engine(catalogue_url)
    conn = other.connect()
    conn.execute(insert(recordings).values(
        recording_id=recording_id, device_id="cam7", status=Status.RECEIVING,
        received_us=clock.now_us, retain_until_us=clock.now_us + store.retention_us,
        segment_count=0, total_bytes=0))  # not committed yet: invisible to the store
    outcome: dict[str, object] = {}

    def arrive() -> None:
        try:
            if what == "segment":
                first = sorted(directory.glob("*.mp4"))[0]
                data = first.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                writer = store.blobs.begin(digest)
                writer.write(data)
                outcome["stored"] = store.commit_segment("cam7", recording_id, first.name,
                                                         writer, digest)
            else:  # a manifest ahead of its segments: verified and failed, but catalogued
                outcome["stored"] = store.ingest_manifest(
                    "cam7", recording_id, (directory / "manifest.jsonl").read_bytes()).status
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            outcome["error"] = exc

    thread = threading.Thread(target=arrive)
    thread.start()
    wait_for(lambda: _blocked_on_a_lock(catalogue_url) or not thread.is_alive(),
             "the store's INSERT to wait for the other's")
    assert thread.is_alive(), outcome  # it waited for the other's row
    conn.commit()
    conn.close()
    other.dispose()
    thread.join(timeout=30)
    assert "error" not in outcome, outcome
    assert outcome["stored"] == (True if what == "segment" else Status.FAILED)
    with store.engine.connect() as check:
        assert check.execute(select(func.count()).select_from(recordings)).scalar_one() == 1
        assert check.execute(select(func.count()).select_from(segments)).scalar_one() == (
            1 if what == "segment" else 0)
    assert audit_count(store, Action.INGEST_SEGMENT if what == "segment" else Action.INGEST,
                       recording_id) == 1


# --- the audit log: one chain with two writer processes

APPENDER = """
import sys, time
from pathlib import Path
from recorder.station.blobs import LocalBlobStore
from recorder.station.catalogue import open_catalogue
from recorder.station.evidence_store import EvidenceStore
from recorder.station.identity import StationIdentity

url, data, name, count, go = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), \\
    Path(sys.argv[5])
store = EvidenceStore(open_catalogue(url), LocalBlobStore(data / "blobs"),
                      StationIdentity.load_or_create(data))
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
for number in range(count):
    store.record_access(name, "view", None, {"n": number})
"""


def test_two_processes_appending_at_once_make_one_chain_that_verifies(
        new_store: Callable[[], EvidenceStore], tmp_path: Path) -> None:
    store = new_store()
    url = store.engine.url.render_as_string(hide_password=False)
    before = sum(1 for _ in audit.entries(store.engine))
    go = tmp_path / "go"
    count = 100
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, url, str(tmp_path / "station"),
                                 f"writer{number}", str(count), str(go)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, PYTHONPATH=""), cwd=tmp_path)
               for number in (1, 2)]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n", writer.communicate()
    go.touch()
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    written = [entry for entry in audit.entries(store.engine)][before:]
    assert [entry.seq for entry in written] == list(range(before + 1, before + 1 + 2 * count))
    actors = [entry.actor for entry in written]
    assert collections.Counter(actors) == {"writer1": count, "writer2": count}
    for name in ("writer1", "writer2"):  # each process's own entries in its own order
        assert [entry.detail["n"] for entry in written if entry.actor == name] == list(
            range(count))
    switches = sum(1 for a, b in zip(actors, actors[1:]) if a != b)
    if store.engine.dialect.name == "postgresql":  # SQLite's busy wait may let one run through
        assert switches > 1, "the two writers never interleaved: the race was not run"
    check = audit.verify(store.engine, store.identity)
    assert check.ok, check.problems


# --- two `bwv station serve` behind haproxy, one killed mid-upload

CAMERAS = 4
SECONDS = 6  # three 2 s segments each
CHUNK = 1024


@pytest.mark.skipif(bool(os.environ.get(emulated.ENV)), reason=(
    "emulated aarch64: two station processes start and verify under qemu, tens of times "
    "slower than on a Pi; the several-process test is about locks, not the CPU"))
@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_camera_cut_off_by_a_killed_process_finishes_on_the_other(
        fleet_db_url: str, tmp_path: Path, where: str, request: pytest.FixtureRequest) -> None:
    """On PostgreSQL, with the blobs in the one directory of the host or in one bucket of a real
    Ceph gateway."""
    data = tmp_path / "station"
    blobs: Blobs = (LocalBlobs(data) if where == "local"
                    else S3Blobs(request.getfixturevalue("s3_bucket")))
    store = make_store(data, db_url=fleet_db_url, blobs=blobs.store())
    cameras = []
    for number in range(1, CAMERAS + 1):
        device = f"cam{number}"
        key = DeviceKey.load_or_create(tmp_path / device / "key")
        store.enroll(device, key.public_key, by="admin")
        make_recording(tmp_path / device / "recordings", key, device_id=device,
                       seconds=SECONDS)
        cameras.append((device, key, tmp_path / device / "recordings"))
    identity = StationIdentity.find(data)
    assert identity is not None
    fleet = start_fleet(data, fleet_db_url, blobs, count=2, directory=tmp_path / "fleet")
    try:
        arrived = {device: threading.Event() for device, _, _ in cameras}
        go = threading.Event()
        restarts: collections.Counter[str] = collections.Counter()  # uploads begun again
        summaries = {}

        def upload(device: str, key: DeviceKey, recordings_dir: Path) -> None:
            second = sorted(p.name for p in recordings_dir.glob("*/*.mp4"))[1]
            chunks_of: collections.Counter[str] = collections.Counter()
            last = [0]

            def progress(step: UploadProgress) -> None:  # called as each chunk is read
                if step.bytes_done < last[0]:  # a new attempt counts from the start again
                    restarts[device] += 1
                last[0] = step.bytes_done
                chunks_of[step.file] += 1
                if step.file == second and chunks_of[step.file] == 3 and not go.is_set():
                    # two chunks of the second segment are on their way: every camera waits
                    # here, mid-request, on one process or the other
                    arrived[device].set()
                    assert go.wait(20)

            with Uploader(fleet.url, key, device, recordings_dir, pin=identity.pin,
                          chunk_bytes=CHUNK, attempts=3, retry_delay_s=0.3,
                          progress=progress) as uploader:
                summaries[device] = uploader.upload_all()

        threads = [threading.Thread(target=upload, args=camera) for camera in cameras]
        for thread in threads:
            thread.start()
        wait_for(lambda: all(event.is_set() for event in arrived.values()),
                 "every camera to be mid-upload")
        # and each process has begun writing the segment it receives (past the signature,
        # the holdings and the quota): one partial blob per camera
        if blobs.writes_show:
            wait_for(lambda: blobs.partials() == CAMERAS, "every upload to reach its blob")
        victim = fleet.stations[0]
        victim.kill()
        go.set()
        for thread in threads:
            thread.join(timeout=60)
        # haproxy's checks saw it go; the other stayed up throughout
        fleet.proxy.wait_state(victim.name, "DOWN")
        assert fleet.proxy.states()[fleet.stations[1].name].startswith("UP")
    finally:
        fleet.stop()

    for device, _, recordings_dir in cameras:
        summary = summaries[device]
        assert summary.ok, (device, summary)
        assert not any(recordings_dir.iterdir()), f"{device}'s copy was not deleted on receipt"
    # the cameras that were on the killed process began again (once), on the other
    cut = sorted(restarts)
    assert cut and set(restarts.values()) == {1}, f"no camera was on the killed one: {restarts}"
    assert len(cut) < CAMERAS, "every camera was on the killed process: no balancing"

    for device, _, _ in cameras:
        recording_id = recording_id_for("2026-11-23T07:00:00.000000Z", device)
        row = store.recording(recording_id)
        assert row.status == Status.VERIFIED, (recording_id, row.verify_summary)
        assert audit_count(store, Action.INGEST, recording_id) == 1  # ingested once
        per_file = collections.Counter(
            entry.detail["file"] for entry in audit.entries(store.engine, recording_id)
            if entry.action == Action.INGEST_SEGMENT)
        assert len(per_file) == SECONDS // 2 and set(per_file.values()) == {1}, per_file
    check = audit.verify(store.engine, identity)
    assert check.ok, check.problems
    # no blob without a catalogue entry, none missing; the killed process's interrupted
    # writes (one per camera cut off) are the only leftovers, and remove_partials takes them
    assert blobs.stored() == referenced(store.engine)
    # S3: what the killed process had received was in its memory (no multipart upload begun)
    left = len(cut) if blobs.writes_show else 0
    assert blobs.partials() == left
    if blobs.writes_show:
        assert blobs.store().remove_partials() == left
    assert blobs.partials() == 0
    store.engine.dispose()
    print(json.dumps({"cut_off": cut}))
