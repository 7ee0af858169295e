"""The catalogue through SQLAlchemy Core on SQLite and on a real PostgreSQL cluster: the same
ingest, holdings, nonce and audit behaviour on both, and an audit chain that stays one chain when
two station processes (two engines) append at once."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.station import (FakeClock, camera_key, catalogue_url, clock, ingest, make_recording,
                             new_store, postgres_cluster)

from recorder.integrity.keys import DeviceKey
from recorder.integrity.request_signing import EMPTY_SHA256, sign_request
from recorder.station import audit, catalogue, retention
from recorder.station.errors import ConflictError, RequestAuthError
from recorder.station.evidence_store import EvidenceStore
from recorder.station.request_headers import parse_headers

# what is uploaded, catalogued or kept is checked here, not durability: fsync does nothing
pytestmark = pytest.mark.usefixtures("no_fsync")

__all__ = ["camera_key", "catalogue_url", "clock", "new_store",  # fixtures used by name below
           "postgres_cluster"]


@pytest.fixture()
def store(new_store: Callable[[], EvidenceStore], camera_key: DeviceKey) -> EvidenceStore:
    store = new_store()
    store.enroll("cam7", camera_key.public_key, by="admin")
    return store


def test_the_schema_is_created_once_and_reopening_keeps_everything(
        new_store: Callable[[], EvidenceStore], store: EvidenceStore, camera_key: DeviceKey,
        tmp_path: Path) -> None:
    directory = make_recording(tmp_path / "recordings", camera_key)
    ingest(store, directory)
    again = new_store()
    assert again.holdings(directory.name).verified
    assert again.device_key("cam7") is not None
    assert audit.verify(again.engine).ok and audit.verify(again.engine).entries == 4


def test_ingest_records_recording_segments_officer_and_markers(
        store: EvidenceStore, camera_key: DeviceKey, tmp_path: Path) -> None:
    directory = make_recording(tmp_path / "recordings", camera_key)
    holdings = ingest(store, directory)
    assert holdings.verified and holdings.status == "verified"
    assert holdings.segments == {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                                 for p in directory.glob("*.mp4")}
    with store.engine.connect() as conn:
        assert conn.execute(select(catalogue.officers.c.officer_id)).scalars().all() == [
            "PC 1234"]
        marker = conn.execute(select(catalogue.markers)).one()
        assert (marker.recording_id, marker.pts_us) == (directory.name, 8_000_000)
        row = conn.execute(select(catalogue.recordings)).one()
    assert row.recorded_us == catalogue.parse_utc("2026-11-23T07:00:00.000000Z")
    assert row.retain_until_us == row.received_us + 31 * 86_400 * 1_000_000  # received later
    assert row.total_bytes == sum(p.stat().st_size for p in directory.glob("*.mp4"))


def test_a_nonce_is_accepted_once(store: EvidenceStore, camera_key: DeviceKey,
                                  clock: FakeClock) -> None:
    path = "/api/v1/recordings/x"
    headers = sign_request(camera_key, "cam7", "GET", path, EMPTY_SHA256,
                           timestamp=clock.now_us // 1_000_000,
                           station_id=store.identity.station_id)
    assert store.authenticate(parse_headers(headers), "GET", path) == "cam7"
    with pytest.raises(RequestAuthError) as caught:
        store.authenticate(parse_headers(headers), "GET", path)
    assert caught.value.reason == "replayed" and "nonce was used before" in caught.value.detail


def test_old_nonces_are_forgotten_once_their_requests_would_be_stale(
        store: EvidenceStore, camera_key: DeviceKey, clock: FakeClock) -> None:
    for _ in range(3):
        headers = sign_request(camera_key, "cam7", "GET", "/p", EMPTY_SHA256,
                               timestamp=clock.now_us // 1_000_000,
                               station_id=store.identity.station_id)
        store.authenticate(parse_headers(headers), "GET", "/p")
    clock.advance_days(1)
    headers = sign_request(camera_key, "cam7", "GET", "/p", EMPTY_SHA256,
                           timestamp=clock.now_us // 1_000_000,
                           station_id=store.identity.station_id)
    store.authenticate(parse_headers(headers), "GET", "/p")
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(catalogue.nonces)).scalar() == 1


def test_another_device_cannot_add_to_a_recording(store: EvidenceStore, camera_key: DeviceKey,
                                                  tmp_path: Path) -> None:
    directory = make_recording(tmp_path / "recordings", camera_key)
    ingest(store, directory)
    store.enroll("cam8", DeviceKey.load_or_create(tmp_path / "k8").public_key, by="admin")
    with pytest.raises(ConflictError, match="was uploaded by device cam7, not cam8"):
        store.precheck_segment("cam8", directory.name, "000003.mp4", "0" * 64)


def test_two_station_processes_appending_at_once_keep_one_chain(
        new_store: Callable[[], EvidenceStore], store: EvidenceStore, camera_key: DeviceKey,
        tmp_path: Path) -> None:
    directory = make_recording(tmp_path / "recordings", camera_key)
    ingest(store, directory)
    other = new_store()  # its own engine and lock, as a second process has
    errors: list[BaseException] = []

    def work(each: EvidenceStore, case: str) -> None:
        try:
            for number in range(10):
                retention.place_hold(each, directory.name, "r", f"{case}-{number}", by=case)
                each.record_access(f"{case}-viewer", "view", directory.name, {"n": number})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(each, case))
               for each, case in ((store, "A"), (other, "B"), (store, "C"), (other, "D"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    check = audit.verify(store.engine)
    assert check.ok, check.problems
    assert check.entries == 4 + 4 * 20
    assert len(retention.active_holds(store, directory.name)) == 40
