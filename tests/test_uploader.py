"""The camera's Uploader against a real station on loopback: oldest first, unsealed recordings
untouched, local copies deleted only after the station verified them, and every fault (a cut at
many points, the station killed and restarted, a duplicate, a wrong hash, an unenrolled camera,
a full disk, no station) leaves nothing lost, nothing deleted early and the audit chain intact."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from support import warm
from support.station import (CuttingProxy, FullBlobStore, ServedStation, camera_key,
                             make_certificate, make_recording, make_store, serve, station, store)
from support.http import http

from recorder.integrity import manifest
from recorder.integrity.keys import DeviceKey
from recorder.integrity.station_pin import StationPin
from recorder.station import audit, catalogue
from recorder.station.app import startup_partial_age_s
from recorder.station.evidence_store import EvidenceStore
from recorder.station.limits import Limits
from recorder.uploader import (CaFileError, UploadProgress, Uploader, find_sealed_recordings,
                               progress_line, read_sealed)

__all__ = ["camera_key", "station", "store"]  # fixtures used by name below

# what is uploaded, catalogued or kept is checked here, not durability: fsync does nothing
pytestmark = pytest.mark.usefixtures("no_fsync")


@pytest.fixture()
def recordings(tmp_path: Path, camera_key: DeviceKey) -> Path:
    """Two sealed recordings (07:00 and 07:10), directories named against time order."""
    root = tmp_path / "recordings"
    newer = make_recording(root, camera_key, utc_start="2026-11-23T07:10:00.000000Z")
    older = make_recording(root, camera_key, utc_start="2026-11-23T07:00:00.000000Z")
    newer.rename(root / "a-newer")
    older.rename(root / "b-older")
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def uploader(url: str, key: DeviceKey, root: Path, *, pin: StationPin | None,
             **kwargs: object) -> Uploader:
    options: dict[str, object] = {"attempts": 1, "retry_delay_s": 0.0, "timeout_s": 10.0}
    options.update(kwargs)
    return Uploader(url, key, "cam7", root, pin=pin, **options)  # type: ignore[arg-type]


def assert_station_consistent(store: EvidenceStore) -> None:
    """Every catalogued blob exists with the catalogued hash; the audit chain holds; every
    ingest_segment entry has its segment row and the other way round."""
    assert audit.verify(store.engine).ok, audit.verify(store.engine).problems
    with store.engine.connect() as conn:
        rows = list(conn.execute(select(catalogue.segments)
                                 .where(catalogue.segments.c.blob_deleted.is_(False))))
    for row in rows:
        with store.blobs.open(row.sha256) as blob:
            assert hashlib.sha256(blob.read()).hexdigest() == row.sha256
    ingested = {(e.recording_id, e.detail["file"]) for e in audit.entries(store.engine)
                if e.action == "ingest_segment"}
    assert ingested == {(row.recording_id, row.file) for row in rows}


# --- the happy path


def test_sealed_recordings_go_oldest_first_and_are_deleted_once_verified(
        station: ServedStation, store: EvidenceStore, camera_key: DeviceKey,
        recordings: Path) -> None:
    before = snapshot(recordings)
    seen: list[UploadProgress] = []
    with uploader(station.url, camera_key, recordings, pin=station.pin, progress=seen.append,
                  chunk_bytes=4096) as up:
        summary = up.upload_all()
    assert summary.ok, summary
    assert [o.recording_id for o in summary.outcomes] == ["20261123T070000Z-cam7",
                                                          "20261123T071000Z-cam7"]
    assert all(o.verified and o.deleted and len(o.uploaded) == 2 for o in summary.outcomes)
    assert list(recordings.iterdir()) == []
    ingests = [e.recording_id for e in audit.entries(store.engine) if e.action == "ingest"]
    assert ingests == ["20261123T070000Z-cam7", "20261123T071000Z-cam7"]
    held = {sha for rid in ingests for sha in store.holdings(rid).segments.values()}
    assert held == {sha for name, sha in before.items() if name.endswith(".mp4")}
    done = [p.bytes_done for p in seen]
    assert done == sorted(done) and done[-1] == seen[-1].bytes_total
    assert_station_consistent(store)


def test_the_progress_total_is_every_segment_and_manifest_byte(
        station: ServedStation, camera_key: DeviceKey, recordings: Path) -> None:
    total = sum(path.stat().st_size for path in recordings.rglob("*") if path.is_file())
    seen: list[UploadProgress] = []
    with uploader(station.url, camera_key, recordings, pin=station.pin, progress=seen.append) as up:
        assert up.upload_all().ok
    assert seen[-1].bytes_done == seen[-1].bytes_total == total
    assert "100%" in progress_line(seen[-1]) and "recording 2/2" in progress_line(seen[-1])


def test_an_unsealed_recording_is_never_touched(station: ServedStation, store: EvidenceStore,
                                                camera_key: DeviceKey, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    open_one = make_recording(root, camera_key, sealed=False)
    before = snapshot(root)
    with uploader(station.url, camera_key, root, pin=station.pin) as up:
        summary = up.upload_all()
    assert summary.ok and summary.outcomes == [] and summary.skipped_unsealed == [open_one]
    assert snapshot(root) == before
    assert store.holdings(open_one.name).status == "unknown"
    assert read_sealed(open_one) is None


def test_a_manifest_with_a_partial_last_line_counts_as_unsealed(camera_key: DeviceKey,
                                                                tmp_path: Path) -> None:
    directory = make_recording(tmp_path / "recordings", camera_key)
    with open(directory / manifest.MANIFEST_NAME, "ab") as file:
        file.write(b'{"type":"ev')
    assert read_sealed(directory) is None
    assert find_sealed_recordings(tmp_path / "recordings") == ([], [directory])


def test_a_manifest_naming_a_file_outside_the_recording_is_never_acted_on(
        camera_key: DeviceKey, tmp_path: Path) -> None:
    directory = make_recording(tmp_path / "recordings", camera_key)
    path = directory / manifest.MANIFEST_NAME
    path.write_bytes(path.read_bytes().replace(b'"file":"000002.mp4"', b'"file":"../x.mp4"'))
    assert read_sealed(directory) is None


def test_a_duplicate_upload_sends_nothing_and_deletes_the_second_copy(
        station: ServedStation, store: EvidenceStore, camera_key: DeviceKey, recordings: Path,
        tmp_path: Path) -> None:
    spare = tmp_path / "spare"
    shutil.copytree(recordings, spare)
    with uploader(station.url, camera_key, recordings, pin=station.pin) as up:
        assert up.upload_all().ok
    entries = len(list(audit.entries(store.engine)))
    with uploader(station.url, camera_key, spare, pin=station.pin) as up:
        summary = up.upload_all()
    assert summary.ok and all(o.uploaded == [] and o.deleted for o in summary.outcomes)
    assert all(len(o.already_held) == 2 for o in summary.outcomes)
    assert len(list(audit.entries(store.engine))) == entries and list(spare.iterdir()) == []


def test_uploads_over_tls_trust_the_station_certificate_given(
        store: EvidenceStore, camera_key: DeviceKey, recordings: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "station.pem", tmp_path / "station-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    served = serve(store, tls=(cert, key))
    try:
        assert served.url.startswith("https://")
        before = snapshot(recordings)
        with uploader(served.url, camera_key, recordings, pin=served.pin) as up:
            untrusted = up.upload_all()
        assert untrusted.stopped is not None and "CERTIFICATE_VERIFY_FAILED" in untrusted.stopped
        assert snapshot(recordings) == before
        with uploader(served.url, camera_key, recordings, pin=served.pin, cafile=cert) as up:
            assert up.upload_all().ok
    finally:
        served.stop()
    assert list(recordings.iterdir()) == []


# --- faults


def test_a_segment_changed_on_the_camera_is_refused_and_kept(
        station: ServedStation, store: EvidenceStore, camera_key: DeviceKey,
        recordings: Path) -> None:
    damaged = recordings / "b-older" / "000002.mp4"
    data = bytearray(damaged.read_bytes())
    data[500] ^= 0xFF
    damaged.write_bytes(bytes(data))
    before = snapshot(recordings / "b-older")
    with uploader(station.url, camera_key, recordings, pin=station.pin) as up:
        summary = up.upload_all()
    older, newer = summary.outcomes
    assert older.error is not None and "422 hash_mismatch" in older.error and not older.deleted
    assert newer.error is None and newer.deleted  # the other recording still goes
    assert snapshot(recordings / "b-older") == before
    assert store.holdings(older.recording_id).segments.keys() == {"000001.mp4"}
    assert "refused" in [e.action for e in audit.entries(store.engine)]
    assert_station_consistent(store)


def test_a_recording_the_station_cannot_verify_is_kept(station: ServedStation,
                                                      store: EvidenceStore,
                                                      camera_key: DeviceKey,
                                                      recordings: Path) -> None:
    manifest_path = recordings / "b-older" / manifest.MANIFEST_NAME
    lines = manifest_path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"marker"', b'"stealth"')  # an edited, no longer signed line
    manifest_path.write_bytes(b"".join(lines))
    before = snapshot(recordings / "b-older")
    with uploader(station.url, camera_key, recordings, pin=station.pin) as up:
        summary = up.upload_all()
    older, newer = summary.outcomes
    assert older.error is not None and "the station did not verify" in older.error
    assert "signature does not verify" in older.error and not older.deleted
    assert newer.deleted and snapshot(recordings / "b-older") == before
    assert store.holdings(older.recording_id).status == "failed"
    assert_station_consistent(store)


def test_an_unenrolled_camera_keeps_everything(station: ServedStation, store: EvidenceStore,
                                               recordings: Path, tmp_path: Path) -> None:
    stranger = DeviceKey.load_or_create(tmp_path / "stranger")
    before = snapshot(recordings)
    with Uploader(station.url, stranger, "cam9", recordings, attempts=1, pin=station.pin) as up:
        summary = up.upload_all()
    assert not summary.ok and all("401 unauthorised" in str(o.error) for o in summary.outcomes)
    assert snapshot(recordings) == before
    assert [e.action for e in audit.entries(store.engine)] == ["enroll"]


def test_a_full_station_disk_keeps_everything_on_the_camera(
        tmp_path: Path, camera_key: DeviceKey, recordings: Path) -> None:
    first_segment = (recordings / "b-older" / "000001.mp4").stat().st_size
    blobs = FullBlobStore(tmp_path / "full" / "blobs", room=first_segment + 100)
    store = make_store(tmp_path / "full", blobs=blobs)
    store.enroll("cam7", camera_key.public_key, by="admin")
    served = serve(store)
    before = snapshot(recordings)
    try:
        with uploader(served.url, camera_key, recordings, pin=served.pin) as up:
            summary = up.upload_all()
    finally:
        served.stop()
    assert not summary.ok
    assert all("507 storage_full" in str(o.error) for o in summary.outcomes)
    assert snapshot(recordings) == before
    assert not list((blobs.root / ".partial").iterdir())
    assert_station_consistent(store)


def test_no_station_stops_the_run_and_deletes_nothing(camera_key: DeviceKey,
                                                      recordings: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    before = snapshot(recordings)
    with uploader(f"http://127.0.0.1:{port}", camera_key, recordings, attempts=2,
                  pin=None) as up:
        summary = up.upload_all()
    assert summary.stopped is not None and "Nothing was deleted" in summary.stopped
    assert len(summary.outcomes) == 1  # it does not go on to the next recording
    assert snapshot(recordings) == before


@pytest.fixture(scope="module")
def clean_upload_bytes(tmp_path_factory: pytest.TempPathFactory) -> int:
    """Bytes a camera sends for a whole clean upload of recordings like ``recordings``."""
    root = tmp_path_factory.mktemp("measure")
    key = DeviceKey.load_or_create(root / "camera")
    make_recording(root / "recordings", key, utc_start="2026-11-23T07:10:00.000000Z")
    make_recording(root / "recordings", key, utc_start="2026-11-23T07:00:00.000000Z")
    store = make_store(root / "station")
    store.enroll("cam7", key.public_key, by="admin")
    served = serve(store)
    proxy = CuttingProxy(served.port, None)
    try:
        with uploader(proxy.url, key, root / "recordings", pin=store.identity.pin, chunk_bytes=4096) as up:
            assert up.upload_all().ok
    finally:
        proxy.close()
        served.stop()
    assert proxy.forwarded > 50_000
    return proxy.forwarded


@pytest.mark.parametrize("fraction", [0.02, 0.15, 0.3, 0.45, 0.55, 0.7, 0.85, 0.97, 0.999])
def test_a_connection_cut_anywhere_loses_nothing_and_the_next_run_resumes(
        fraction: float, clean_upload_bytes: int, station: ServedStation, store: EvidenceStore,
        camera_key: DeviceKey, recordings: Path) -> None:
    proxy = CuttingProxy(station.port, int(clean_upload_bytes * fraction))
    originals = snapshot(recordings)
    try:
        with uploader(proxy.url, camera_key, recordings, pin=station.pin, chunk_bytes=4096) as up:
            first = up.upload_all()
        assert proxy.cuts == 1 and not first.ok
        # whatever is gone from the camera is verified at the station
        for outcome in first.outcomes:
            if outcome.deleted:
                assert store.holdings(outcome.recording_id).verified
        for name, digest in snapshot(recordings).items():
            assert originals[name] == digest
        assert_station_consistent(store)
        with uploader(proxy.url, camera_key, recordings, pin=station.pin, chunk_bytes=4096) as up:
            second = up.upload_all()
    finally:
        proxy.close()
    assert second.ok and list(recordings.iterdir()) == []
    sent_twice = {(o.recording_id, f) for o in first.outcomes for f in o.uploaded} & {
        (o.recording_id, f) for o in second.outcomes for f in o.uploaded}
    assert sent_twice == set()  # the second run sends only what the station lacks
    station_hashes = {sha for o in second.outcomes
                      for sha in store.holdings(o.recording_id).segments.values()}
    assert station_hashes == {sha for name, sha in originals.items() if name.endswith(".mp4")}
    assert_station_consistent(store)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_station_process(data: Path, port: int) -> warm.Process | subprocess.Popen[bytes]:
    """`bwv station serve` as a process of its own (forked from the warm one), to be killed."""
    log = data.parent / "station.log"
    with open(log, "ab") as sink:
        process = warm.spawn(["station", "serve", "--data", str(data), "--listen",
                              f"127.0.0.1:{port}", "--sweep-every", "0", "--log-level",
                              "warning"], stderr=sink, cwd=data.parent)
    for pipe in (process.stdin, process.stdout):  # it reads and writes neither
        if pipe is not None:
            pipe.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if http.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"station did not start: {log.read_text()}")


def test_the_station_killed_mid_upload_and_restarted_loses_nothing(
        tmp_path: Path, camera_key: DeviceKey, recordings: Path) -> None:
    data = tmp_path / "station-process"
    seeded = make_store(data)
    seeded.enroll("cam7", camera_key.public_key, by="admin")
    pin = seeded.identity.pin
    port = _free_port()
    process = _start_station_process(data, port)
    originals = snapshot(recordings)
    killed_at: list[int] = []

    def kill_in_second_segment(state: UploadProgress) -> None:
        if not killed_at and state.recording_number == 1 and state.file == "000002.mp4":
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed_at.append(state.bytes_done)

    try:
        with uploader(f"http://127.0.0.1:{port}", camera_key, recordings, pin=pin, chunk_bytes=2048,
                      progress=kill_in_second_segment) as up:
            first = up.upload_all()
        assert killed_at and first.stopped is not None
        assert snapshot(recordings) == originals
        process = _start_station_process(data, port)
        with uploader(f"http://127.0.0.1:{port}", camera_key, recordings, pin=pin) as up:
            second = up.upload_all()
    finally:
        process.kill()
        process.wait()
    assert second.ok and list(recordings.iterdir()) == []
    assert second.outcomes[0].already_held == ["000001.mp4"]
    assert second.outcomes[0].uploaded == ["000002.mp4"]
    store = make_store(data)
    # What the killed process was writing (if it got that far) is young: a restart keeps it, as
    # it could be a live sibling process's upload (docs/station.md, partial blobs); once older
    # than the start-up age, the next start removes it
    partials = list((data / "blobs" / ".partial").iterdir())
    age_s = startup_partial_age_s(Limits())
    for path in partials:
        os.utime(path, (time.time() - age_s - 60,) * 2)
    assert store.blobs.remove_partials(age_s) == len(partials)
    assert not list((data / "blobs" / ".partial").iterdir())
    assert_station_consistent(store)
    assert all(store.holdings(o.recording_id).verified for o in second.outcomes)


# --- files beside a recording, CA files and untrusted certificates


def test_files_beside_a_recording_keep_its_directory_and_are_reported_once(
        station: ServedStation, store: EvidenceStore, camera_key: DeviceKey,
        recordings: Path) -> None:
    (recordings / "b-older" / "notes.txt").write_text("handed over to PC 1234\n")
    (recordings / "b-older" / "thumbs").mkdir()
    with uploader(station.url, camera_key, recordings, pin=station.pin) as up:
        first = up.upload_all()
    assert first.ok and [o.kept_files for o in first.outcomes] == [["notes.txt", "thumbs"], []]
    assert all(o.verified and o.deleted for o in first.outcomes)
    assert sorted(p.name for p in (recordings / "b-older").iterdir()) == ["notes.txt", "thumbs"]
    assert [p.name for p in recordings.iterdir()] == ["b-older"]
    with uploader(station.url, camera_key, recordings, pin=station.pin) as up:
        second = up.upload_all()
    assert second.ok and second.outcomes == [] and second.skipped_unsealed == []
    assert (recordings / "b-older" / "notes.txt").is_file()  # still not ours to delete


def test_a_directory_with_media_but_no_manifest_still_needs_recovery(camera_key: DeviceKey,
                                                                     tmp_path: Path) -> None:
    directory = make_recording(tmp_path / "recordings", camera_key)
    (directory / manifest.MANIFEST_NAME).unlink()
    assert find_sealed_recordings(tmp_path / "recordings") == ([], [directory])


def test_an_untrusted_certificate_says_how_to_trust_it_and_is_not_retried(
        store: EvidenceStore, camera_key: DeviceKey, recordings: Path, tmp_path: Path) -> None:
    served = serve(store, tls=make_certificate(tmp_path))
    before = snapshot(recordings)
    started = time.monotonic()
    try:
        with uploader(served.url, camera_key, recordings, pin=served.pin, attempts=3, retry_delay_s=20.0) as up:
            summary = up.upload_all()
    finally:
        served.stop()
    assert time.monotonic() - started < 15  # no retry: another try cannot help
    assert summary.stopped is not None and summary.stopped.startswith(
        "the station's certificate is not trusted: give its CA with --cafile or station.cafile "
        f"({served.url}: CERTIFICATE_VERIFY_FAILED, self-signed certificate)")
    assert len(summary.outcomes) == 1 and snapshot(recordings) == before


def test_a_certificate_for_another_host_is_named_as_such(
        store: EvidenceStore, camera_key: DeviceKey, recordings: Path, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, "DNS:station.example")
    served = serve(store, tls=(cert, key))
    try:
        with uploader(served.url, camera_key, recordings, pin=served.pin, cafile=cert) as up:
            summary = up.upload_all()
    finally:
        served.stop()
    assert summary.stopped is not None
    assert summary.stopped.startswith("the station's certificate is not issued for the host in "
                                      "the station URL")
    assert "127.0.0.1" in summary.stopped and "--cafile" not in summary.stopped


def test_a_missing_or_unusable_ca_file_is_named(camera_key: DeviceKey, recordings: Path,
                                               tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(CaFileError, match=f"the CA file {missing} .* does not exist"):
        uploader("https://127.0.0.1:9", camera_key, recordings, pin=None, cafile=missing)
    garbage = tmp_path / "not-a-cert.pem"
    garbage.write_text("hello\n")
    with pytest.raises(CaFileError, match=f"the CA file {garbage} .* holds no usable PEM"):
        uploader("https://127.0.0.1:9", camera_key, recordings, pin=None, cafile=garbage)
