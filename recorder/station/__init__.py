"""The evidence station: ingests signed uploads from enrolled cameras, verifies them, keeps them
under retention and holds, and records every action in a hash-chained audit log.

Pieces: ``request_signing`` (shared with the camera's uploader), ``blobs`` (where bytes live),
``catalogue`` (SQLAlchemy Core tables), ``audit`` (the chain), ``evidence_store`` (ingest),
``retention`` (holds, sweep, stats), ``app`` (the Starlette ASGI app) and ``commands`` (the
``bwv station`` subcommands).
"""
