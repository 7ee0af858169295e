"""The PostgreSQL roles of docs/deploy/postgresql-grants.sql, on a real cluster: the schema made
by the owner, the grants applied with the real psql, then the station run as the application's
role (enroll, ingest, hold, release, sweep, export, public request, revoke, rotate, assign,
checkpoint, `bwv station audit --verify` in a subprocess) works, and the attack of finding 4
done with the application's credentials (UPDATE, DELETE, TRUNCATE of audit entries or signed
checkpoints) is refused by the database."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.exc import ProgrammingError
from support.station import (PG_BIN_DIRS, FakeClock, camera_key, ingest, make_recording,
                             make_store, postgres_cluster)
from support import warm

from recorder.cli import station as commands
from recorder.integrity.keys import DeviceKey
from recorder.station import audit, devices, retention
from recorder.station.catalogue import parse_utc
from recorder.station.export import export_recording
from recorder.station.public_requests import export_request, record_request

pytestmark = pytest.mark.usefixtures("no_fsync")

__all__ = ["camera_key", "postgres_cluster"]

GRANTS = Path(__file__).resolve().parents[1] / "docs" / "deploy" / "postgresql-grants.sql"
DAY = 86_400 * 1_000_000
_numbers = itertools.count(1)


@pytest.fixture()
def database(postgres_cluster: tuple[Path, int]) -> Iterator[tuple[str, str, Path, int, str]]:
    """A database owned by bwv_owner, and the URLs of the owner and of bwv_app."""
    root, port = postgres_cluster
    name = f"bwv_grants_{os.getpid()}_{next(_numbers)}"  # workers share the cluster
    admin = sqlalchemy.create_engine(
        f"postgresql+psycopg://postgres@/postgres?host={root}&port={port}",
        isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for role in ("bwv_owner", "bwv_app"):
            if conn.exec_driver_sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'").first() \
                    is None:
                conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"CREATE DATABASE {name} OWNER bwv_owner")
    url = f"postgresql+psycopg://{{}}@/{name}?host={root}&port={port}"
    try:
        yield url.format("bwv_owner"), url.format("bwv_app"), root, port, name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


def psql(root: Path, port: int, user: str, name: str, script: Path) -> None:
    subprocess.run([str(Path(PG_BIN_DIRS[-1]) / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                    "-h", str(root), "-p", str(port), "-U", user, "-d", name, "-f", str(script)],
                   check=True, capture_output=True, text=True)


def test_the_application_role_runs_the_station_but_cannot_rewrite_the_audit(
        database: tuple[str, str, Path, int, str], tmp_path: Path,
        camera_key: DeviceKey) -> None:
    owner_url, app_url, root, port, name = database
    data = tmp_path / "station"
    make_store(data, db_url=owner_url).engine.dispose()  # the owner makes the schema
    psql(root, port, "bwv_owner", name, GRANTS)

    clock = FakeClock()
    store = make_store(data, clock=clock, db_url=app_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT current_user").scalar() == "bwv_app"
    store.enroll("cam7", camera_key.public_key, by="admin")
    store.enroll("cam8", DeviceKey.load_or_create(tmp_path / "cam8").public_key, by="admin")
    recording = make_recording(tmp_path / "recordings", camera_key)
    rid = recording.name
    assert ingest(store, recording).verified
    retention.place_hold(store, rid, "assault allegation", "CASE-001", by="dc.jones")
    assert export_recording(store, rid, tmp_path / "x.zip", by="dc.jones",
                            purpose="court").verified
    record_request(store, "SAR-1", "A. Member", "", parse_utc("2026-11-23T06:00:00Z"),
                   parse_utc("2026-11-23T08:00:00Z"), by="records")
    assert len(export_request(store, "SAR-1", tmp_path / "sar", by="records")) == 1
    devices.assign(store, "cam7", "PC 1234", by="admin", from_us=0)
    devices.rotate(store, "cam7", DeviceKey.load_or_create(tmp_path / "new").public_key,
                   by="admin")
    devices.revoke(store, "cam8", "lost", by="admin")
    clock.advance_days(40)
    assert retention.release_holds(store, rid, by="dc.jones", case_ref="CASE-001") == 1
    assert retention.release_holds(store, rid, by="records", case_ref="SAR-1") == 1
    assert retention.sweep(store).deleted == [rid]
    assert audit.checkpoint(store.engine, store.identity, clock()) is not None
    store.engine.dispose()

    environ = {**os.environ, "RECORDER_NATIVE": "off"}
    environ.pop(commands.DATA_ENV_VAR, None)
    result = warm.run(["station", "audit", "--data",
                             str(data), "--db", app_url, "--verify"], cwd="/", env=environ, timeout=60)
    assert result.returncode == 0 and "audit chain OK" in result.stdout, result.stderr

    app = sqlalchemy.create_engine(app_url)
    attacks = ["UPDATE audit SET actor = 'nobody' WHERE seq = 3",
               "DELETE FROM audit WHERE action = 'view' OR action = 'export'",
               "TRUNCATE audit",
               "UPDATE audit_checkpoints SET hash = repeat('0', 64)",
               "DELETE FROM audit_checkpoints",
               "TRUNCATE audit_checkpoints",
               "DELETE FROM device_revocations",
               "UPDATE notes SET text = 'rewritten'",
               "TRUNCATE notes",
               "CREATE TABLE audit_copy (seq bigint)"]
    for attack in attacks:
        with app.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
            conn.exec_driver_sql(attack)
    with app.connect() as conn:  # what the application does need still works
        conn.exec_driver_sql("UPDATE holds SET release_reason = release_reason")
        conn.rollback()
    app.dispose()

    owner = sqlalchemy.create_engine(owner_url)  # the grants were the only thing in the way
    with owner.begin() as conn:
        assert conn.exec_driver_sql("DELETE FROM audit WHERE action = 'export'").rowcount == 2
    owner.dispose()
