"""Retention with an injected clock, on SQLite and on a real PostgreSQL cluster: recordings pass
31 days after the station received them and go (blobs removed, tombstone, deletion row, audit
entry), held ones stay, release then sweep removes them, shared blobs outlive one owner, the
periodic sweep of `serve` runs, and the published counts follow every step."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from support.station import (FakeClock, camera_key, catalogue_url, clock, ingest, make_recording,
                             new_store, postgres_cluster, serve)
from support.http import http

from recorder.integrity.keys import DeviceKey
from recorder.integrity.request_signing import EMPTY_SHA256, sign_request
from recorder.station import audit, catalogue, retention
from recorder.station.errors import BadRequestError, RecordingGoneError, UnknownRecordingError
from recorder.station.evidence_store import EvidenceStore

# what is uploaded, catalogued or kept is checked here, not durability: fsync does nothing
pytestmark = pytest.mark.usefixtures("no_fsync")

__all__ = ["camera_key", "catalogue_url", "clock", "new_store",  # fixtures used by name below
           "postgres_cluster"]

DAY = 86_400 * 1_000_000
RECORDED = "2026-11-23T07:00:00.000000Z"


@pytest.fixture()
def store(new_store: Callable[[], EvidenceStore], camera_key: DeviceKey) -> EvidenceStore:
    store = new_store()
    store.enroll("cam7", camera_key.public_key, by="admin")
    return store


def record(tmp_path: Path, key: DeviceKey, utc_start: str = RECORDED) -> Path:
    return make_recording(tmp_path / "recordings", key, utc_start=utc_start)


def actions(store: EvidenceStore) -> list[tuple[str, str, str | None]]:
    return [(e.action, e.actor, e.recording_id) for e in audit.entries(store.engine)]


def blob_files(tmp_path: Path) -> set[str]:
    return {path.name for path in (tmp_path / "station" / "blobs").glob("??/??/*")}


def test_a_recording_goes_31_days_after_it_was_received(store: EvidenceStore, clock: FakeClock,
                                                        camera_key: DeviceKey,
                                                        tmp_path: Path) -> None:
    directory = record(tmp_path, camera_key)
    received = clock.now_us  # an hour after it was recorded
    assert ingest(store, directory).verified
    assert len(blob_files(tmp_path)) == 3  # two segments and the manifest
    clock.now_us = received + 31 * DAY - 1
    assert retention.sweep(store).deleted == []
    clock.now_us += 1
    result = retention.sweep(store)
    assert result.deleted == [directory.name] and result.bytes_removed > 0
    assert blob_files(tmp_path) == set()
    tombstone = store.recording(directory.name)
    assert tombstone.status == "deleted" and tombstone.deleted_us == clock.now_us
    assert tombstone.manifest_sha256 is not None and tombstone.verify_summary == "ok"
    with store.engine.connect() as conn:
        deletion = conn.execute(select(catalogue.deletions)).one()
    assert (deletion.recording_id, deletion.reason, deletion.blobs_removed) == (
        directory.name, "retention", 3)
    assert actions(store)[-1] == ("delete", "station:sweep", directory.name)
    assert audit.verify(store.engine).ok
    assert store.holdings(directory.name).segments == {}
    assert retention.sweep(store).deleted == []  # a tombstone is not deleted twice


def test_a_held_recording_stays_until_released_then_goes(store: EvidenceStore, clock: FakeClock,
                                                         camera_key: DeviceKey,
                                                         tmp_path: Path) -> None:
    directory = record(tmp_path, camera_key)
    ingest(store, directory)
    hold = retention.place_hold(store, directory.name, "complaint against officer",
                                "CR-2026-118", by="insp-khan")
    retention.place_hold(store, directory.name, "court bundle", "CR-2026-200", by="insp-khan")
    clock.advance_days(40)
    result = retention.sweep(store)
    assert result.deleted == [] and result.kept_on_hold == [directory.name]
    assert len(blob_files(tmp_path)) == 3
    assert retention.release_holds(store, directory.name, by="insp-khan",
                                   case_ref="CR-2026-118") == 1
    assert retention.sweep(store).kept_on_hold == [directory.name]  # the other case still holds
    assert [h.case_ref for h in retention.active_holds(store, directory.name)] == ["CR-2026-200"]
    assert retention.release_holds(store, directory.name, by="insp-khan", reason="closed") == 1
    assert retention.sweep(store, by="station:sweep").deleted == [directory.name]
    assert blob_files(tmp_path) == set()
    assert [a for a in actions(store) if a[0] in ("hold", "release", "delete")] == [
        ("hold", "insp-khan", directory.name), ("hold", "insp-khan", directory.name),
        ("release", "insp-khan", directory.name), ("release", "insp-khan", directory.name),
        ("delete", "station:sweep", directory.name)]
    entries = [e for e in audit.entries(store.engine) if e.action == "hold"]
    assert entries[0].detail == {"hold": hold.id, "reason": "complaint against officer",
                                 "case_ref": "CR-2026-118"}
    assert audit.verify(store.engine).ok


def test_retention_counts_from_receipt_not_from_recording(store: EvidenceStore, clock: FakeClock,
                                                          camera_key: DeviceKey,
                                                          tmp_path: Path) -> None:
    clock.advance_days(20)  # docked 20 days after recording: still kept 31 days from then
    directory = record(tmp_path, camera_key)
    ingest(store, directory)
    clock.advance_days(11)
    assert retention.sweep(store).deleted == []
    clock.advance_days(20)
    assert retention.sweep(store).deleted == [directory.name]


def test_a_blob_shared_by_two_recordings_outlives_the_first(store: EvidenceStore,
                                                            clock: FakeClock,
                                                            camera_key: DeviceKey,
                                                            tmp_path: Path) -> None:
    # PyAV writes the same bytes for the same test pattern: both recordings share segment blobs
    first = record(tmp_path, camera_key, "2026-11-23T07:00:00.000000Z")
    second = record(tmp_path, camera_key, "2026-12-03T07:00:00.000000Z")
    ingest(store, first)
    clock.now_us = catalogue.parse_utc("2026-12-03T08:00:00.000000Z")  # docked as recorded
    ingest(store, second)
    shared = set(store.holdings(first.name).segments.values())
    assert shared == set(store.holdings(second.name).segments.values())
    clock.now_us = catalogue.parse_utc("2026-12-25T00:00:00.000000Z")
    assert retention.sweep(store).deleted == [first.name]
    assert shared <= blob_files(tmp_path)
    for sha in shared:
        with store.blobs.open(sha) as blob:
            assert blob.read(8)[4:8] == b"ftyp"
    clock.advance_days(10)
    assert retention.sweep(store).deleted == [second.name]
    assert blob_files(tmp_path) == set()


def test_segments_without_a_manifest_go_31_days_after_they_arrived(
        store: EvidenceStore, clock: FakeClock, camera_key: DeviceKey, tmp_path: Path) -> None:
    directory = record(tmp_path, camera_key)
    segment = directory / "000001.mp4"
    digest = hashlib.sha256(segment.read_bytes()).hexdigest()
    writer = store.blobs.begin(digest)
    writer.write(segment.read_bytes())
    store.commit_segment("cam7", directory.name, segment.name, writer, digest)
    assert store.holdings(directory.name).status == "receiving"
    clock.advance_days(31)
    assert retention.sweep(store).deleted == [directory.name]


def test_nothing_is_uploaded_to_or_held_on_a_deleted_recording(
        store: EvidenceStore, clock: FakeClock, camera_key: DeviceKey, tmp_path: Path) -> None:
    directory = record(tmp_path, camera_key)
    ingest(store, directory)
    clock.advance_days(31)
    retention.sweep(store)
    with pytest.raises(RecordingGoneError, match="only its tombstone"):
        ingest(store, directory)
    with pytest.raises(RecordingGoneError, match="nothing is left to hold"):
        retention.place_hold(store, directory.name, "late request", "CR-1", by="x")
    with pytest.raises(UnknownRecordingError, match="no recording nope"):
        retention.place_hold(store, "nope", "r", "c", by="x")
    with pytest.raises(BadRequestError, match="a reason and a case reference"):
        retention.place_hold(store, directory.name, " ", "CR-1", by="x")


def test_the_counts_follow_recording_upload_hold_and_deletion(
        store: EvidenceStore, clock: FakeClock, camera_key: DeviceKey, tmp_path: Path) -> None:
    kept = record(tmp_path, camera_key, "2026-11-23T07:00:00.000000Z")
    gone = record(tmp_path, camera_key, "2026-11-23T07:10:00.000000Z")
    ingest(store, kept)
    ingest(store, gone)
    retention.place_hold(store, kept.name, "evidence", "CR-9", by="x")
    clock.advance_days(32)
    retention.sweep(store)
    counts = retention.stats(store)
    assert counts | {"bytes_stored": 0} == {
        "recorded": 2, "uploaded": 2, "auto_deleted": 1, "held": 1, "failed_verification": 0,
        "receiving": 0, "bytes_stored": 0}
    assert counts["bytes_stored"] == sum(
        (kept / name).stat().st_size for name in ("000001.mp4", "000002.mp4"))


def test_serve_sweeps_periodically(store: EvidenceStore, clock: FakeClock, camera_key: DeviceKey,
                                   tmp_path: Path) -> None:
    directory = record(tmp_path, camera_key)
    ingest(store, directory)
    clock.advance_days(32)
    served = serve(store, sweep_interval_s=0.05)
    try:
        deadline = time.monotonic() + 10
        while store.recording(directory.name).status != "deleted":
            assert time.monotonic() < deadline, "the periodic sweep did not run"
            time.sleep(0.05)
        path = f"/api/v1/recordings/{directory.name}"
        headers = sign_request(camera_key, "cam7", "GET", path,
                               EMPTY_SHA256,
                               timestamp=clock.now_us // 1_000_000,
                               station_id=served.station_id)
        assert http.get(served.url + path, headers=headers).json()["status"] == "deleted"
    finally:
        served.stop()
    assert actions(store)[-1] == ("delete", "station:sweep", directory.name)
