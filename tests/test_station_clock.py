"""Retention on the station's clock (issue 12, finding 2), on SQLite and on a real PostgreSQL
cluster: a camera whose clock says 2020-01-01 ("unsynchronised") does not have its footage swept
at once, one at 9999-12-31 neither keeps it for ever nor breaks `GET /` or `bwv station list`,
and the flag on an unbelievable camera clock is in the catalogue, the pages, the list, the
export README and the sweep's audit entry."""

from __future__ import annotations

import datetime
import os
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import update
from support.station import (FakeClock, camera_key, catalogue_url, clock, ingest, make_recording,
                             new_store, postgres_cluster, serve_web)
from support import warm
from support.staff import logged_in

from recorder.integrity.keys import DeviceKey
from recorder.station import audit, catalogue, retention
from recorder.station.camera_clock import ClockFlag
from recorder.station.evidence_store import EvidenceStore
from recorder.station.export import export_recording

pytestmark = pytest.mark.usefixtures("no_fsync")

__all__ = ["camera_key", "catalogue_url", "clock", "new_store",  # fixtures used by name below
           "postgres_cluster"]

DAY = 86_400 * 1_000_000


@pytest.fixture()
def store(new_store: Callable[[], EvidenceStore], camera_key: DeviceKey,
          clock: FakeClock) -> EvidenceStore:
    """cam7 enrolled a month before the station's clock (2026-11-23 08:00) starts."""
    clock.advance_days(-30)
    store = new_store()
    store.enroll("cam7", camera_key.public_key, by="admin")
    clock.advance_days(30)
    return store


def bwv_list(station: Path, db_url: str) -> subprocess.CompletedProcess[str]:
    """`bwv station list` as an operator runs it: a real process on the installed package."""
    return warm.run(["station", "list", "--data",
                           str(station), "--db", db_url], cwd="/", timeout=60, env=dict(os.environ, PYTHONPATH=""))


def test_an_unsynchronised_2020_clock_keeps_footage_31_days_from_receipt(
        store: EvidenceStore, clock: FakeClock, camera_key: DeviceKey, tmp_path: Path,
        catalogue_url: str) -> None:
    directory = make_recording(tmp_path / "recordings", camera_key,
                               utc_start="2020-01-01T00:00:05.000000Z",
                               clock_source="unsynchronised")
    received = clock.now_us
    assert ingest(store, directory).verified  # the signature holds: only the clock is wrong
    row = store.recording(directory.name)
    assert row.clock_flag == ClockFlag.UNSYNCHRONISED and row.clock_source == "unsynchronised"
    assert row.retain_until_us == received + 31 * DAY
    # the attack: on the old code the first sweep deleted it (2020 + 31 days is long past)
    assert retention.sweep(store).deleted == []
    clock.now_us = received + 31 * DAY - 1
    assert retention.sweep(store).deleted == []
    listed = bwv_list(tmp_path / "station", catalogue_url)
    assert listed.returncode == 0, listed.stderr
    assert "camera clock: unsynchronised" in listed.stdout
    assert "keep until 2026-12-24" in listed.stdout
    clock.now_us += 1
    assert retention.sweep(store).deleted == [directory.name]
    deletion = [e for e in audit.entries(store.engine) if e.action == "delete"][-1]
    assert deletion.detail["clock_flag"] == ClockFlag.UNSYNCHRONISED
    assert deletion.detail["received"] == received
    assert deletion.detail["retain_until"] == received + 31 * DAY


def test_a_9999_clock_breaks_no_page_or_command_and_is_swept_31_days_from_receipt(
        store: EvidenceStore, clock: FakeClock, camera_key: DeviceKey, tmp_path: Path,
        catalogue_url: str) -> None:
    directory = make_recording(tmp_path / "recordings", camera_key,
                               utc_start="9999-12-31T23:59:59.999999Z")
    received = clock.now_us
    assert ingest(store, directory).verified
    row = store.recording(directory.name)
    assert row.clock_flag == ClockFlag.IN_FUTURE  # "ntp" says the header: the station disagrees
    assert row.retain_until_us == received + 31 * DAY
    served = serve_web(store)
    browser = logged_in(served.url, store)
    try:
        index = browser.get("/")
        assert index.status_code == 200 and "camera clock: in_future" in index.text
        assert "9999-12-31 23:59:59 UTC" in index.text
        page = browser.get(f"/recordings/{directory.name}")
        assert page.status_code == 200 and "camera clock: in_future" in page.text
    finally:
        browser.close()
        served.stop()
    listed = bwv_list(tmp_path / "station", catalogue_url)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert "camera clock: in_future" in listed.stdout and "keep until 2026-12-24" in listed.stdout
    with zipfile.ZipFile(export_recording(store, directory.name, tmp_path / "x.zip", "insp",
                                          "court").path) as package:
        readme = package.read("README.txt").decode()
    assert "camera clock: NOT believed (in_future)" in readme
    assert "received by the station 2026-11-23 08:00:00 UTC" in readme
    clock.now_us = received + 31 * DAY  # not never: 31 days after the station received it
    assert retention.sweep(store).deleted == [directory.name]


def test_a_recording_before_enrolment_is_flagged_and_kept_from_receipt(
        store: EvidenceStore, clock: FakeClock, camera_key: DeviceKey, tmp_path: Path) -> None:
    directory = make_recording(tmp_path / "recordings", camera_key,
                               utc_start="2026-01-05T09:00:00.000000Z")
    ingest(store, directory)
    row = store.recording(directory.name)
    assert row.clock_flag == ClockFlag.BEFORE_ENROLMENT
    assert row.retain_until_us == clock.now_us + 31 * DAY
    believed = make_recording(tmp_path / "recordings", camera_key)  # 07:00, an hour ago, ntp
    ingest(store, believed)
    assert store.recording(believed.name).clock_flag is None


@pytest.mark.parametrize("stored", [catalogue.MIN_US - 1, catalogue.MAX_US + 1, 2**62, -(2**62)])
def test_out_of_range_times_in_the_catalogue_render_as_invalid_dates(
        store: EvidenceStore, camera_key: DeviceKey, tmp_path: Path, catalogue_url: str,
        stored: int) -> None:
    # rows written before this check (or by hand) may hold any BIGINT: nothing may crash on one
    directory = make_recording(tmp_path / "recordings", camera_key)
    ingest(store, directory)
    with store.engine.begin() as conn:
        conn.execute(update(catalogue.recordings).values(recorded_us=stored,
                                                         retain_until_us=stored))
    served = serve_web(store)
    browser = logged_in(served.url, store)
    try:
        for path in ("/", f"/recordings/{directory.name}"):
            answer = browser.get(path)
            assert answer.status_code == 200 and "invalid date" in answer.text
    finally:
        browser.close()
        served.stop()
    listed = bwv_list(tmp_path / "station", catalogue_url)
    assert listed.returncode == 0 and "keep until invalid date" in listed.stdout, listed.stderr
    assert catalogue.iso(stored) == "invalid date"
    assert catalogue.from_us(stored).year in (1, 9999)


def test_the_catalogue_stores_no_time_outside_years_1_to_9999(
        store: EvidenceStore, camera_key: DeviceKey, tmp_path: Path) -> None:
    # a signed manifest whose start is before year 1 in UTC (year 1 at UTC+23:59)
    directory = make_recording(tmp_path / "recordings", camera_key,
                               utc_start="0001-01-01T00:00:00.000000+23:59")
    ingest(store, directory)
    row = store.recording(directory.name)
    assert row.recorded_us is None and row.clock_flag == ClockFlag.INVALID
    assert catalogue.in_range(row.retain_until_us)
    assert catalogue.shown(catalogue.MAX_US) == "9999-12-31 23:59:59 UTC"
    assert catalogue.iso(catalogue.to_us(datetime.datetime(2026, 11, 23, 7, tzinfo=datetime.UTC))
                         ) == "2026-11-23T07:00:00.000000Z"
