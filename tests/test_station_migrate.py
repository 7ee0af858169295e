"""Schema revisions of the catalogue (Alembic, `bwv station migrate`), on SQLite and on a real
PostgreSQL cluster: a catalogue made by the previous release's own code (tests/support/
previous_release.py) is refused by `serve` until migrated, then opens with its rows intact and
its audit chain verifying; an older one gains the tables and columns it lacks; a catalogue
ahead of the code is refused; migrate is idempotent and, on PostgreSQL, one at a time; and the
newest revision is exactly catalogue.metadata, so a table added without a revision fails here;
and the next version's revision runs from this one's, a failing one changing nothing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from support.previous_release import BEFORE_NOTES, RELEASE_0_1_0, make_station
from support.station import (bwv, camera_key, catalogue_url, make_recording, make_store,
                             postgres_cluster)

from recorder.integrity.keys import DeviceKey, public_key_spki_b64
from recorder.station import audit, catalogue, retention

pytestmark = pytest.mark.usefixtures("no_fsync")

__all__ = ["camera_key", "catalogue_url", "postgres_cluster"]  # fixtures used by name below

HEAD = catalogue.head_revision()


def old_station(commit: str, tmp_path: Path, url: str,
                key: DeviceKey) -> tuple[Path, dict[str, Any]]:
    """A station in tmp_path/station on ``url`` made by release ``commit``, holding two
    recordings (the first held, the second's hold released)."""
    recordings = [make_recording(tmp_path / "camera", key, utc_start=start)
                  for start in ("2026-11-23T07:00:00.000000Z", "2026-11-23T07:10:00.000000Z")]
    data = tmp_path / "station"
    return data, make_station(commit, tmp_path, url, data, public_key_spki_b64(key.public_key),
                              recordings)


def rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table (but alembic_version), each table's rows in a stable order."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {name: sorted((dict(row) for row in conn.execute(
                        text(f'SELECT * FROM "{name}"')).mappings()), key=repr)
                    for name in inspect(conn).get_table_names() if name != "alembic_version"}
    finally:
        engine.dispose()


def schema_diff(url: str) -> list[Any]:
    """What Alembic's autogenerate finds between the database and catalogue.metadata."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(
                conn, opts={"compare_type": True}), catalogue.metadata))
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def station(*args: str, data: Path, url: str) -> subprocess.CompletedProcess[str]:
    return bwv("station", *args, "--data", str(data), "--db", url)


def assert_refused(run: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2, one line on stderr saying ``words``, no traceback."""
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    for word in words:
        assert word in run.stderr, run.stderr


def assert_kept(before: dict[str, list[dict[str, Any]]],
                after: dict[str, list[dict[str, Any]]]) -> None:
    """Every row of ``before`` is in ``after`` unchanged (new columns aside)."""
    for table, old_rows in before.items():
        assert len(after[table]) == len(old_rows), table
        now = sorted(({column: row[column] for column in old_rows[0]} for row in after[table]),
                     key=repr) if old_rows else []
        assert now == old_rows, table


def served(data: Path, url: str) -> None:
    """`bwv station serve` starts on the catalogue and answers on its port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environ = {**os.environ, "RECORDER_NATIVE": "off"}
    process = subprocess.Popen([sys.executable, "-m", "recorder", "station", "serve", "--data",
                                str(data), "--db", url, "--listen", f"127.0.0.1:{port}",
                                "--sweep-every", "0"], env=environ, cwd="/",
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "serve did not listen"
                time.sleep(0.1)
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_a_new_station_is_made_at_the_newest_revision_and_needs_no_migrate(
        catalogue_url: str, tmp_path: Path, camera_key: DeviceKey) -> None:
    store = make_store(tmp_path / "station", db_url=catalogue_url)
    store.engine.dispose()
    assert revision_of(catalogue_url) == HEAD
    assert schema_diff(catalogue_url) == []
    run = station("migrate", data=tmp_path / "station", url=catalogue_url)
    assert run.returncode == 0, run.stderr
    assert f"at revision {HEAD}, the newest: nothing to do" in run.stdout


def test_the_newest_revision_is_exactly_the_catalogue_metadata(catalogue_url: str) -> None:
    """Every revision from an empty database gives catalogue.metadata, no more, no less: a
    table or column added to catalogue.py without its revision fails here."""
    said: list[str] = []
    assert catalogue.migrate(catalogue_url, say=said.append) == (None, HEAD)
    assert said[0].endswith(f"empty -> revision {HEAD}")
    assert revision_of(catalogue_url) == HEAD
    assert schema_diff(catalogue_url) == []


def test_the_previous_release_catalogue_is_refused_then_migrated_and_served(
        catalogue_url: str, tmp_path: Path, camera_key: DeviceKey) -> None:
    data, made = old_station(RELEASE_0_1_0, tmp_path, catalogue_url, camera_key)
    assert revision_of(catalogue_url) is None  # made before revisions
    before = rows(catalogue_url)
    assert len(before["recordings"]) == 2 and len(before["holds"]) == 2
    assert len(before["audit"]) >= 7 and len(before["notes"]) == 1
    for command in ("serve", "list"):
        assert_refused(station(command, data=data, url=catalogue_url),
                       "made before schema revisions", "`bwv station migrate`")
    assert rows(catalogue_url) == before  # refusing wrote nothing

    run = station("migrate", data=data, url=catalogue_url)
    assert run.returncode == 0, run.stderr
    assert f"made before schema revisions -> revision {HEAD}" in run.stdout
    assert f"now at revision {HEAD}" in run.stdout
    assert revision_of(catalogue_url) == HEAD
    assert schema_diff(catalogue_url) == []
    assert_kept(before, rows(catalogue_url))

    checked = station("audit", "--verify", data=data, url=catalogue_url)
    assert checked.returncode == 0 and "audit chain OK" in checked.stdout, checked
    store = make_store(data, db_url=catalogue_url)
    try:
        first, last = made["recordings"]
        assert store.holdings(first).verified and store.holdings(last).verified
        assert [hold.case_ref for hold in retention.active_holds(store, first)] == ["CASE-1"]
        assert retention.active_holds(store, last) == []
        check = audit.verify(store.engine, store.identity)
        assert check.ok and check.checkpoints >= 1, check.problems
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text("UPDATE notes SET text = 'rewritten'"))
    finally:
        store.engine.dispose()
    served(data, catalogue_url)


def test_an_older_catalogue_gains_the_tables_and_columns_it_lacks(
        catalogue_url: str, tmp_path: Path, camera_key: DeviceKey) -> None:
    data, made = old_station(BEFORE_NOTES, tmp_path, catalogue_url, camera_key)
    before = rows(catalogue_url)
    assert "notes" not in before and "footage_start_us" not in before["recordings"][0]
    assert len(schema_diff(catalogue_url)) > 0

    run = station("migrate", data=data, url=catalogue_url)
    assert run.returncode == 0, run.stderr
    assert schema_diff(catalogue_url) == []
    after = rows(catalogue_url)
    assert_kept(before, after)
    assert [row["footage_start_us"] for row in after["recordings"]] == [None, None]
    assert after["notes"] == []
    store = make_store(data, db_url=catalogue_url)
    try:
        assert all(store.holdings(rid).verified for rid in made["recordings"])
        assert audit.verify(store.engine, store.identity).ok
        with store.engine.begin() as conn:  # the new notes table has its append-only trigger
            conn.execute(text("INSERT INTO notes (recording_id, text, author, written_us) "
                              "VALUES (:r, 'seen', 'sgt', 1)"), {"r": made["recordings"][0]})
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text("DELETE FROM notes"))
    finally:
        store.engine.dispose()


def test_migrate_twice_does_nothing_the_second_time(
        catalogue_url: str, tmp_path: Path, camera_key: DeviceKey) -> None:
    data, _ = old_station(RELEASE_0_1_0, tmp_path, catalogue_url, camera_key)
    assert station("migrate", data=data, url=catalogue_url).returncode == 0
    once = rows(catalogue_url)
    again = station("migrate", data=data, url=catalogue_url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith(f"at revision {HEAD}, the newest: nothing to do")
    assert "->" not in again.stdout
    assert rows(catalogue_url) == once and revision_of(catalogue_url) == HEAD


def test_a_catalogue_ahead_of_this_version_is_refused(
        catalogue_url: str, tmp_path: Path) -> None:
    make_store(tmp_path / "station", db_url=catalogue_url).engine.dispose()
    engine = create_engine(catalogue_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    for command in ("serve", "migrate", "audit"):
        assert_refused(station(command, data=tmp_path / "station", url=catalogue_url),
                       "revision 9999, which this version does not know", f"needs {HEAD}")
    assert revision_of(catalogue_url) == "9999"


def test_migrate_refuses_a_place_with_no_station(tmp_path: Path) -> None:
    assert_refused(bwv("station", "migrate", "--data", str(tmp_path / "nowhere")),
                   "no station in")
    (tmp_path / "empty").mkdir()
    assert_refused(bwv("station", "migrate", "--data", str(tmp_path / "empty")),
                   "does not exist")
    assert not (tmp_path / "empty" / catalogue.CATALOGUE_FILE).exists()


@pytest.mark.parametrize("catalogue_url", ["postgresql"], indirect=True)
def test_two_migrates_on_postgresql_run_one_after_the_other(
        catalogue_url: str, tmp_path: Path, camera_key: DeviceKey) -> None:
    """While another holds the schema lock, migrate waits; of two started together, one
    upgrades and the other then finds nothing to do."""
    url = catalogue_url
    data, _ = old_station(RELEASE_0_1_0, tmp_path, url, camera_key)
    holder = create_engine(url)
    environ = {**os.environ, "RECORDER_NATIVE": "off"}
    command = [sys.executable, "-m", "recorder", "station", "migrate", "--data", str(data),
               "--db", url]
    with holder.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": catalogue.SCHEMA_LOCK_ID})
        conn.commit()
        runs = [subprocess.Popen(command, env=environ, cwd="/", stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        time.sleep(3)
        assert [run.poll() for run in runs] == [None, None]  # both wait for the lock
        assert revision_of(url) is None
        conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": catalogue.SCHEMA_LOCK_ID})
        conn.commit()
    holder.dispose()
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    upgraded = [out for out, _ in outputs if f"made before schema revisions -> revision {HEAD}"
                in out]
    idle = [out for out, _ in outputs if "nothing to do" in out]
    assert len(upgraded) == 1 and len(idle) == 1, outputs
    assert revision_of(url) == HEAD and schema_diff(url) == []


NEXT = f"{int(HEAD) + 1:04d}"
NEXT_REVISION = f'''"""Probe: a revision after the head, as the next version would ship one.

Revision ID: {NEXT}
Revises: {HEAD}
"""

from alembic import op
import sqlalchemy as sa

revision = "{NEXT}"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("recordings", sa.Column("probe", sa.Integer()))
    FAIL
'''


def next_version(tmp_path: Path, fail: bool) -> Path:
    """This version's revisions plus the next one (failing after its ALTER when ``fail``):
    what the next version would carry."""
    migrations = tmp_path / "next-migrations"
    shutil.copytree(catalogue.MIGRATIONS, migrations,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / f"v{NEXT}_probe.py").write_text(NEXT_REVISION.replace(
        "    FAIL\n", "    raise RuntimeError('probe failed')\n" if fail else ""))
    return migrations


def test_a_later_revision_runs_from_the_one_before_and_a_failure_changes_nothing(
        catalogue_url: str, tmp_path: Path) -> None:
    make_store(tmp_path / "station", db_url=catalogue_url).engine.dispose()
    before = rows(catalogue_url)
    said: list[str] = []
    with pytest.raises(RuntimeError, match="probe failed"):
        catalogue.migrate(catalogue_url, say=said.append,
                          script_location=next_version(tmp_path / "bad", fail=True))
    assert said[-1] == (f"  {HEAD} -> {NEXT}: Probe: a revision after the head, as the next "
                        "version would ship one.")
    assert revision_of(catalogue_url) == HEAD and rows(catalogue_url) == before
    assert schema_diff(catalogue_url) == []  # the column added before the failure is gone

    said.clear()
    assert catalogue.migrate(catalogue_url, say=said.append,
                             script_location=next_version(tmp_path / "good", fail=False)) == (
        HEAD, NEXT)
    assert said[0].endswith(f"revision {HEAD} -> revision {NEXT}")
    assert said[-1].endswith(f"now at revision {NEXT}")
    assert revision_of(catalogue_url) == NEXT
    assert [diff[0] for diff in schema_diff(catalogue_url)] == ["remove_column"]  # the probe
