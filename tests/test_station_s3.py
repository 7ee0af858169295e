"""The S3 blob store (recorder.station.blobs_s3) against a real S3 server: Ceph 16's RADOS gateway,
started by the tests (support.ceph), never a mock. The store alone (parts, wrong hashes, aborts,
no overwrite, deletes, legal holds), and a whole station: `bwv station serve --blobs s3://...`
in its own process takes a `bwv upload`, the staff pages play ranges of it from the bucket, an
export is built from it, and a hold makes the gateway refuse to delete its segments."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.ceph import ceph, s3_bucket
from support.staff import logged_in
from support.station import camera, serve_web

from recorder import cli
from recorder.cli.station import open_store
from recorder.integrity import keys
from recorder.integrity.keys import DeviceKey
from recorder.station import retention
from recorder.station.blobs_s3 import (BlobLockedError, S3BlobStore, client_from_environment,
                                       parse_url)
from recorder.station.errors import BlobMissingError, HashMismatchError
from recorder.station.export import export_recording
from recorder.station.identity import StationIdentity
from recorder.station.media import parse_range

__all__ = ["camera", "ceph", "s3_bucket"]  # fixtures used by name below

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


def test_blob_urls_are_bucket_and_prefix_and_never_carry_credentials() -> None:
    assert parse_url("s3://evidence/force-a/station-1/") == ("evidence", "force-a/station-1")
    assert parse_url("s3://evidence") == ("evidence", "")
    for refused in ("s3://AKID:secret@evidence/p", "s3://AKID@evidence/p", "http://evidence/p",
                    "s3://evidence:9000/p", "s3:///p", "s3://evidence/p?key=secret"):
        with pytest.raises(ValueError):
            parse_url(refused)


def test_player_ranges_are_parsed_as_http_says() -> None:
    assert parse_range("bytes=0-7", 100) == (0, 7)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=90-500", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=-500", 100) == (0, 99)
    assert parse_range("bytes=0-1,5-6", 100) is None  # several ranges: the whole body
    assert parse_range("items=0-1", 100) is None
    for unsatisfiable in ("bytes=100-", "bytes=7-3", "bytes=-0"):
        with pytest.raises(ValueError):
            parse_range(unsatisfiable, 100)


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


def test_the_hash_and_if_none_match_go_to_the_server_and_memory_stays_one_part(
        s3_store: S3BlobStore) -> None:
    sent: list[tuple[str, dict[str, str]]] = []

    def capture(request: Any, **_: Any) -> None:
        sent.append((request.method, {k.lower(): v.decode() if isinstance(v, bytes) else str(v)
                                      for k, v in request.headers.items()}))

    s3_store.client.meta.events.register("before-send.s3", capture)
    small = os.urandom(1000)
    sha256 = _put(s3_store, small)
    puts = [headers for method, headers in sent if method == "PUT"]
    assert len(puts) == 1 and puts[0]["if-none-match"] == "*"
    assert puts[0]["x-amz-checksum-sha256"] == base64.b64encode(
        hashlib.sha256(small).digest()).decode()
    assert "aws-chunked" not in puts[0].get("content-encoding", "")
    sent.clear()
    large = os.urandom(11 * MIB)
    large_sha256 = hashlib.sha256(large).hexdigest()
    writer = s3_store.begin(large_sha256)
    for at in range(0, len(large), MIB):
        writer.write(large[at:at + MIB])
        assert len(writer._buffer) < s3_store.part_size  # parts leave as they fill
    writer.commit()
    parts = [headers for method, headers in sent if method == "PUT"]
    assert [int(h["content-length"]) for h in parts] == [5 * MIB, 5 * MIB, MIB]
    for at, headers in zip(range(0, len(large), 5 * MIB), parts):
        assert headers["x-amz-checksum-sha256"] == base64.b64encode(
            hashlib.sha256(large[at:at + 5 * MIB]).digest()).decode()
    assert s3_store.size(large_sha256) == len(large) and s3_store.exists(sha256)


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the station did not start: {log.read_text()}")
        time.sleep(0.1)


def _bwv(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_station_on_ceph_ingests_an_upload_plays_a_range_and_locks_a_held_recording(
        s3_bucket: str, tmp_path: Path, camera: tuple[Path, DeviceKey],
        capsys: pytest.CaptureFixture[str]) -> None:
    data, key = camera
    station = str(tmp_path / "station")
    blobs = f"s3://{s3_bucket}/fleet-a"
    code, _, err = _bwv(capsys, "station", "enroll", "--data", station, "--blobs", blobs,
                        "--device-id", "cam7", "--public-key",
                        keys.public_key_spki_b64(key.public_key), "--by", "sgt-lee")
    assert code == 0, err
    identity = StationIdentity.find(Path(station))
    assert identity is not None
    pin = tmp_path / "station.pin"
    pin.write_text(identity.pin_line() + "\n")
    port = _free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as errors:  # `bwv station serve --blobs`, the environment inherited
        process = subprocess.Popen(
            [sys.executable, "-m", "recorder", "station", "serve", "--data", station, "--blobs",
             blobs, "--listen", f"127.0.0.1:{port}", "--sweep-every", "0", "--log-level",
             "warning"], cwd="/", stdout=subprocess.DEVNULL, stderr=errors)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for(url, process, log)
        code, out, err = _bwv(capsys, "upload", "--station", url, "--data", str(data),
                              "--device-id", "cam7", "--station-key", str(pin))
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert code == 0, err + log.read_text()
    rid = "20261123T070000Z-cam7"
    assert f"uploaded {rid}: 2 segments sent" in out and "verified by the station" in out
    args = cli.build_parser().parse_args(["station", "list", "--data", station, "--blobs", blobs])
    store = open_store(args)
    assert isinstance(store.blobs, S3BlobStore) and store.blobs.prefix == "fleet-a"
    holdings = store.holdings(rid)
    assert holdings.verified and not (tmp_path / "station" / "blobs").exists()
    stored = sorted(store.blobs.key_of(sha) for sha in
                    [*holdings.segments.values(), holdings.manifest_sha256])
    assert _keys(store.blobs) == stored  # every blob in the bucket, nothing on local disk

    web = serve_web(store)
    try:
        officer = logged_in(web.url, store)
        path = f"/recordings/{rid}/media/000001.mp4"
        whole = officer.get(path)
        digest = holdings.segments["000001.mp4"]
        assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == digest
        part = officer.get(path, headers={"Range": "bytes=4-1003"})
        assert part.status_code == 206 and part.content == whole.content[4:1004]
        assert part.headers["content-range"] == f"bytes 4-1003/{len(whole.content)}"
        tail = officer.get(path, headers={"Range": "bytes=-100"})
        assert tail.status_code == 206 and tail.content == whole.content[-100:]
        beyond = officer.get(path, headers={"Range": f"bytes={len(whole.content)}-"})
        assert beyond.status_code == 416
        officer.close()
    finally:
        web.stop()

    exported = export_recording(store, rid, tmp_path / "export" / "package.zip", by="insp-khan",
                                purpose="court bundle")
    assert exported.verified  # the package's blobs came from the bucket

    # a hold locks the recording's objects in the bucket: the server refuses their deletion
    retention.place_hold(store, rid, "assault complaint", "CR-2026-118", by="sgt-lee")
    with pytest.raises(BlobLockedError):
        store.blobs.delete(digest)
    assert store.blobs.exists(digest)
    assert retention.release_holds(store, rid, by="sgt-lee", reason="case closed") == 1
    assert store.blobs.delete(digest) and not store.blobs.exists(digest)


def test_blob_urls_with_credentials_or_unusable_stores_are_one_line_errors(
        s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    station = str(tmp_path / "station")
    base = ["station", "serve", "--data", station]
    code, _, err = _bwv(capsys, *base, "--blobs", f"s3://AKID:secret@{s3_bucket}/p")
    assert code == 2 and "credentials in the --blobs URL are refused" in err
    assert err.count("\n") == 1 and "secret" not in err.replace("AWS_SECRET", "")
    code, _, err = _bwv(capsys, *base, "--blobs", "s3://no-such-bucket-here/p")
    assert code == 1 and "no bucket 'no-such-bucket-here'" in err and err.count("\n") == 1
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    code, _, err = _bwv(capsys, *base, "--blobs", f"s3://{s3_bucket}/p")
    assert code == 1 and "refused the credentials" in err and err.count("\n") == 1
    monkeypatch.setenv("BWV_S3_ENDPOINT", "http://127.0.0.1:9")
    code, _, err = _bwv(capsys, *base, "--blobs", f"s3://{s3_bucket}/p")
    assert code == 1 and "cannot be reached" in err and err.count("\n") == 1
    assert not (tmp_path / "station").exists()  # nothing was made for a store that failed
