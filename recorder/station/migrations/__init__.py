"""The catalogue's schema revisions (Alembic): env.py and versions/. Run them with
`bwv station migrate` (recorder.station.catalogue.migrate); a developer adds one with
`python -m recorder.station.migrations new "what it does"` (README.md here)."""
