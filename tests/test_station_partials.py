"""Partial blobs in a blob directory shared by several station processes: one that starts removes
only the leftovers of interrupted uploads (not written to for a long time), never a partial a
live sibling is writing, whose upload then completes; an explicit clean-up removes them all."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from support.station import make_store, serve

from recorder.station.app import startup_partial_age_s
from recorder.station.blobs import LocalBlobStore
from recorder.station.limits import Limits

pytestmark = pytest.mark.usefixtures("no_fsync")


def partials(blobs: LocalBlobStore) -> set[str]:
    return {entry.name for entry in (blobs.root / ".partial").iterdir()}


def test_a_starting_process_keeps_a_siblings_live_partial_and_removes_an_old_one(
        tmp_path: Path) -> None:
    data = b"a segment arriving on the sibling process" * 1000
    digest = hashlib.sha256(data).hexdigest()
    sibling = make_store(tmp_path / "station")  # the live process, writing a blob
    writing = sibling.blobs.begin(digest)
    writing.write(data[:1000])
    live = partials(sibling.blobs)
    left = sibling.blobs.begin(hashlib.sha256(b"cut off").hexdigest())
    left.write(b"cut off")  # an upload of a process killed long ago
    (old,) = partials(sibling.blobs) - live
    age = startup_partial_age_s(Limits.default())
    assert age >= 300
    stale = time.time() - age - 60
    os.utime(sibling.blobs.root / ".partial" / old, (stale, stale))

    starting = make_store(tmp_path / "station")  # a second process on the same directory
    served = serve(starting)  # its start-up clean-up has run once it listens
    try:
        assert partials(sibling.blobs) == live
        writing.write(data[1000:])
        assert writing.commit() == len(data)  # the sibling's upload completes
        assert sibling.blobs.exists(digest) and partials(sibling.blobs) == set()
    finally:
        left.abort()  # closes the file its clean-up removed
        served.stop()
        sibling.engine.dispose()
        starting.engine.dispose()


def test_an_explicit_clean_up_removes_every_partial_and_an_age_keeps_fresh_ones(
        tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    writers = [blobs.begin(hashlib.sha256(bytes([n])).hexdigest()) for n in range(3)]
    for writer in writers:
        writer.write(b"x")
    (first, *_) = sorted(partials(blobs))
    stale = time.time() - 3_600
    os.utime(blobs.root / ".partial" / first, (stale, stale))
    assert blobs.remove_partials(older_than_s=600) == 1
    assert first not in partials(blobs) and len(partials(blobs)) == 2
    assert blobs.remove_partials() == 2  # no age: all of them (no write can be under way)
    assert partials(blobs) == set()
    for writer in writers:  # interrupted writes: their files are gone
        writer.abort()
