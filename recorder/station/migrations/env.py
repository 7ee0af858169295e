"""Alembic's environment for the catalogue. Configured in code (recorder.station.catalogue
.migrations_config), never by an alembic.ini: the connection is handed in, already inside the
transaction (and, on PostgreSQL, holding the advisory lock) that `migrate` opened, so every
revision runs in that one transaction."""

from __future__ import annotations

from alembic import context

from recorder.station.catalogue import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("the catalogue's revisions run through `bwv station migrate` (or "
                       "recorder.station.catalogue.migrate), on a connection it opens")
context.configure(connection=connection, target_metadata=metadata, compare_type=True,
                  # SQLite alters a table by copying it: autogenerate writes batch operations
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
