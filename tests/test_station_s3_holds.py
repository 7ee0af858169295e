"""Every hold locks the recording's objects in the bucket (an S3 legal hold), whatever placed it,
against a real Ceph gateway (support.ceph): a hold placed by a request from the public, and a
segment or manifest that arrives after its recording was held. Releasing lifts the locks: the
gateway then deletes the objects."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ceph import ceph, s3_bucket
from support.station import FakeClock, camera_key, ingest, make_recording

from recorder.integrity.keys import DeviceKey
from recorder.station import retention
from recorder.station.blobs_s3 import BlobLockedError, S3BlobStore, client_from_environment
from recorder.station.catalogue import open_catalogue, sqlite_url
from recorder.station.evidence_store import EvidenceStore
from recorder.station.identity import StationIdentity
from recorder.station.public_requests import record_request

__all__ = ["camera_key", "ceph", "s3_bucket"]  # fixtures used by name below

HOUR = 3_600 * 1_000_000


@pytest.fixture()
def store(s3_bucket: str, tmp_path: Path, camera_key: DeviceKey) -> Iterator[EvidenceStore]:
    """A station whose catalogue is SQLite in tmp_path and whose blobs are in the bucket."""
    data = tmp_path / "station"
    data.mkdir()
    blobs = S3BlobStore(client_from_environment(), s3_bucket, "station-a")
    assert blobs.locking()  # the bucket has object lock: legal holds are placed
    store = EvidenceStore(open_catalogue(sqlite_url(data)), blobs,
                          StationIdentity.load_or_create(data), clock=FakeClock())
    store.enroll("cam7", camera_key.public_key, by="admin")
    yield store
    store.engine.dispose()


def locked(store: EvidenceStore, sha256: str) -> bool:
    """Whether the gateway refuses to delete the blob (it is deleted when it does not)."""
    try:
        assert store.blobs.delete(sha256)
    except BlobLockedError:
        assert store.blobs.exists(sha256)
        return True
    assert not store.blobs.exists(sha256)
    return False


def blobs_of(store: EvidenceStore, recording_id: str) -> list[str]:
    holdings = store.holdings(recording_id)
    assert holdings.manifest_sha256 is not None
    return sorted({*holdings.segments.values(), holdings.manifest_sha256})


def test_a_public_requests_hold_locks_the_objects_and_release_lifts_it(
        store: EvidenceStore, camera_key: DeviceKey, tmp_path: Path) -> None:
    directory = make_recording(tmp_path / "recordings", camera_key)
    assert ingest(store, directory).verified
    rid = directory.name
    blobs = blobs_of(store, rid)
    assert len(blobs) == 3  # two segments and the manifest
    recorded = store.recording(rid).recorded_us
    request = record_request(store, "SAR-9", "J. Public", "stopped in the street",
                             recorded - HOUR, recorded + HOUR, by="clerk")
    assert request.matches == (rid,)
    assert [locked(store, sha256) for sha256 in blobs] == [True] * 3
    assert retention.release_holds(store, rid, by="clerk", reason="disclosed",
                                   case_ref="SAR-9") == 1
    assert [locked(store, sha256) for sha256 in blobs] == [False] * 3


def test_a_segment_and_manifest_arriving_after_the_hold_are_locked(
        store: EvidenceStore, camera_key: DeviceKey, tmp_path: Path) -> None:
    directory = make_recording(tmp_path / "recordings", camera_key)
    rid = directory.name
    first, second = sorted(directory.glob("*.mp4"))
    data = first.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    writer = store.blobs.begin(digest)
    writer.write(data)
    assert store.commit_segment("cam7", rid, first.name, writer, digest)
    retention.place_hold(store, rid, "assault complaint", "CR-2026-118", by="sgt-lee")
    assert ingest(store, directory).verified  # the second segment, then the manifest
    holdings = store.holdings(rid)
    late = [holdings.segments[second.name], holdings.manifest_sha256]
    assert late[1] is not None
    assert [locked(store, str(sha256)) for sha256 in late] == [True, True]
    assert retention.release_holds(store, rid, by="sgt-lee", reason="case closed") == 1
    assert [locked(store, sha256) for sha256 in blobs_of(store, rid)] == [False] * 3


def test_a_segment_of_an_unheld_recording_is_not_locked(
        store: EvidenceStore, camera_key: DeviceKey, tmp_path: Path) -> None:
    directory = make_recording(tmp_path / "recordings", camera_key)
    assert ingest(store, directory).verified
    assert [locked(store, sha256) for sha256 in blobs_of(store, directory.name)] == [False] * 3


def test_a_held_failed_recordings_replaced_manifest_is_unlocked_and_removed(
        store: EvidenceStore, camera_key: DeviceKey, tmp_path: Path) -> None:
    cut = make_recording(tmp_path / "cut", camera_key, sealed=False)  # no sealed line: failed
    first = ingest(store, cut)
    assert first.status == "failed" and first.manifest_sha256 is not None
    rid = cut.name
    retention.place_hold(store, rid, "assault complaint", "CR-2026-118", by="sgt-lee")
    sealed = make_recording(tmp_path / "sealed", camera_key)  # the same recording, sealed
    second = store.ingest_manifest("cam7", rid, (sealed / "manifest.jsonl").read_bytes())
    assert second.verified and second.manifest_sha256 != first.manifest_sha256
    assert not store.blobs.exists(first.manifest_sha256)  # replaced: unlocked, then removed
    assert [locked(store, sha256) for sha256 in blobs_of(store, rid)] == [True] * 3
    assert retention.release_holds(store, rid, by="sgt-lee", reason="case closed") == 1
    assert [locked(store, sha256) for sha256 in blobs_of(store, rid)] == [False] * 3
