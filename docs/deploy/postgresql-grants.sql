-- bwv station: the privileges of a catalogue on PostgreSQL (docs/station.md, "Audit log",
-- "PostgreSQL roles"). Two roles: bwv_owner owns the database and its tables (it creates and
-- upgrades the schema); bwv_app is the role `bwv station serve` and the commands run as. The
-- application may only append to and read the audit log and its signed checkpoints (and the
-- revocations, which are final, and staff's notes): no UPDATE, DELETE or TRUNCATE there, for
-- anyone who gets the application's password.
--
-- Once, as a superuser:
--     CREATE ROLE bwv_owner LOGIN PASSWORD '...';
--     CREATE ROLE bwv_app LOGIN PASSWORD '...';
--     CREATE DATABASE bwv OWNER bwv_owner;
-- Then create the schema as the owner (the first command with --db creates it):
--     bwv station enroll --data DIR --db postgresql+psycopg://bwv_owner@HOST/bwv --device-id ...
-- After installing a new version, migrate the schema as the owner (docs/station.md, "Upgrading a
-- station"): bwv station migrate --data DIR --db postgresql+psycopg://bwv_owner@HOST/bwv
-- Then, as bwv_owner (again after every upgrade that adds tables):
--     psql -v ON_ERROR_STOP=1 -h HOST -U bwv_owner -d bwv -f postgresql-grants.sql
-- From then on run the station with --db postgresql+psycopg://bwv_app@HOST/bwv.

GRANT USAGE ON SCHEMA public TO bwv_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO bwv_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO bwv_app;

-- append and read only: the hash-chained log, the station-signed checkpoints, revocations,
-- staff's notes on recordings
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
    ON audit, audit_checkpoints, device_revocations, notes FROM bwv_app;
-- nor the schema's revision (it only reads it, to refuse a catalogue behind or ahead)
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM bwv_app;
-- the application never changes the schema (PostgreSQL before 15 let every role create there)
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM bwv_app;
