"""The S3 blob store (recorder.station.blobs_s3) against a real S3 server: Ceph 16's RADOS gateway,
started by the tests (support.ceph), never a mock."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
from support.ceph import ceph, s3_bucket

from recorder.station.blobs_s3 import BlobLockedError, S3BlobStore, client_from_environment
from recorder.station.errors import BlobMissingError, HashMismatchError

__all__ = ["ceph", "s3_bucket"]  # fixtures used by name below

MIB = 1 << 20


@pytest.fixture()
def s3_store(s3_bucket: str) -> Iterator[S3BlobStore]:
    yield S3BlobStore(client_from_environment(), s3_bucket, "station-a", part_size=5 * MIB)


def _put(store: S3BlobStore, data: bytes, chunk: int = 64 * 1024) -> str:
    sha256 = hashlib.sha256(data).hexdigest()
    writer = store.begin(sha256)
    for at in range(0, len(data), chunk):
        writer.write(data[at:at + chunk])
    assert writer.commit() == len(data)
    return sha256


def _keys(store: S3BlobStore) -> list[str]:
    answer = store.client.list_object_versions(Bucket=store.bucket)
    return sorted(entry["Key"] for entry in answer.get("Versions", []))


def test_a_blob_is_stored_under_its_hash_and_read_back(s3_store: S3BlobStore) -> None:
    data = os.urandom(300_000)
    sha256 = _put(s3_store, data)
    assert _keys(s3_store) == [f"station-a/{sha256[:2]}/{sha256[2:4]}/{sha256}"]
    assert s3_store.exists(sha256)
    assert s3_store.size(sha256) == len(data)
    with s3_store.open(sha256) as blob:
        assert blob.read() == data
    assert s3_store.local_path(sha256) is None
    reader, total = s3_store.open_range(sha256, (1000, 1999))
    with reader:
        assert reader.read() == data[1000:2000]
    assert total == len(data)


def test_a_large_blob_goes_in_parts_and_a_wrong_hash_leaves_nothing(
        s3_store: S3BlobStore) -> None:
    data = os.urandom(12 * MIB + 12345)
    sha256 = _put(s3_store, data, chunk=MIB)
    with s3_store.open(sha256) as blob:
        assert hashlib.sha256(blob.read()).hexdigest() == sha256
    wrong = hashlib.sha256(b"something else").hexdigest()
    writer = s3_store.begin(wrong)
    for at in range(0, len(data), MIB):
        writer.write(data[at:at + MIB])
    with pytest.raises(HashMismatchError):
        writer.commit()
    assert not s3_store.exists(wrong)
    assert s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", []) == []
    small = s3_store.begin(wrong)
    small.write(b"not what was declared")
    with pytest.raises(HashMismatchError):
        small.commit()
    assert _keys(s3_store) == [s3_store.key_of(sha256)]


def test_an_aborted_upload_leaves_nothing(s3_store: S3BlobStore) -> None:
    data = os.urandom(6 * MIB)
    sha256 = hashlib.sha256(data).hexdigest()
    writer = s3_store.begin(sha256)
    writer.write(data)  # one part has left
    writer.abort()
    assert not s3_store.exists(sha256)
    assert s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", []) == []


def test_a_held_object_is_never_overwritten(s3_store: S3BlobStore) -> None:
    data = os.urandom(100_000)
    sha256 = _put(s3_store, data)
    first = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store.key_of(sha256))
    _put(s3_store, data)  # the same blob again: nothing new is stored
    versions = s3_store.client.list_object_versions(Bucket=s3_store.bucket)["Versions"]
    assert [v["VersionId"] for v in versions] == [first["VersionId"]]


def test_delete_and_a_missing_blob(s3_store: S3BlobStore) -> None:
    sha256 = _put(s3_store, b"a segment")
    assert s3_store.delete(sha256)
    assert not s3_store.exists(sha256)
    assert _keys(s3_store) == []
    assert s3_store.client.list_object_versions(Bucket=s3_store.bucket).get(
        "DeleteMarkers", []) == []
    assert not s3_store.delete(sha256)
    with pytest.raises(BlobMissingError):
        s3_store.open(sha256)
    with pytest.raises(BlobMissingError):
        s3_store.size(sha256)


def test_the_server_refuses_to_delete_a_blob_under_a_legal_hold(s3_store: S3BlobStore) -> None:
    assert s3_store.locking()
    sha256 = _put(s3_store, b"evidence")
    s3_store.set_legal_hold(sha256, True)
    with pytest.raises(BlobLockedError):
        s3_store.delete(sha256)
    with s3_store.open(sha256) as blob:
        assert blob.read() == b"evidence"
    s3_store.set_legal_hold(sha256, False)
    assert s3_store.delete(sha256)
    assert not s3_store.exists(sha256)


def test_ceph_startup_seconds_are_recorded(ceph: dict[str, Any]) -> None:
    print(f"Ceph single-node cluster started in {ceph['startup_s']} s")
    assert 0 < ceph["startup_s"] < 120

