"""Fuzzing the evidence path's parsers (issue 13): mutations of a real recording's segments and
manifest (byte flips, truncations, insertions, deletions, box-size and count edits) through the
BMFF reader, the manifest reader and `verify_recording` give only the documented errors or a
report, each in bounded time; every crasher ever found (tests/corpus/) is replayed; and the
coverage-guided harness (tests/fuzz/run.py, atheris) runs for a while (marked slow)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from fuzz.targets import TARGETS, bmff_target, manifest_target
from hypothesis import given, settings
from hypothesis import strategies as st
from support.segments import write_segments
from test_verify import sealed_segments, write_manifest

from recorder.integrity import bmff, manifest, verify
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import MANIFEST_NAME

TESTS = Path(__file__).resolve().parent
CORPUS = TESTS / "corpus"
# one example may take this long on a loaded 2-core machine; a parser that loops or allocates
# per declared count instead of per byte takes seconds on these files
EXAMPLE_SECONDS = 1.5
CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl", "mvex", "moof", "traf", "dinf", "edts"}
NESTED = "@nested@"  # stands for a nested value of a drawn depth
INTERESTING_U32 = [0, 1, 7, 8, 9, 16, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1_000_000]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A sealed recording of two 2-second segments, and its device key's data directory."""
    root = tmp_path_factory.mktemp("fuzz")
    directory = root / "recording"
    segments = write_segments(directory, seconds=4, segment_seconds=2)
    write_manifest(directory, DeviceKey.load_or_create(root / "data"), sealed_segments(segments))
    return directory, root / "data"


def box_offsets(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(offset, payload offset) of every box of a well-formed file, containers descended."""
    found = []
    for item in bmff.iter_boxes(data, start, end):
        found.append((item.offset, item.payload_offset))
        if item.type in CONTAINERS:
            found.extend(box_offsets(data, item.payload_offset, item.end))
    return found


@st.composite
def mutated(draw: st.DrawFn, data: bytes, boxes: list[tuple[int, int]] | None = None) -> bytes:
    """``data`` with one to four mutations: flips, truncation, insertion, deletion, and (given
    the file's ``boxes``) a box size or a field just after a box header set to a boundary."""
    content = bytearray(data)
    kinds = ["flip", "truncate", "insert", "delete"] + (["size", "field"] if boxes else [])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(kinds))
        position = draw(st.integers(0, max(len(content) - 1, 0)))
        if kind == "flip" and content:
            content[position] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del content[position:]
        elif kind == "insert":
            content[position:position] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del content[position:position + draw(st.integers(1, 64))]
        elif boxes:
            offset, payload = draw(st.sampled_from(boxes))
            where = offset if kind == "size" else payload + 4 * draw(st.integers(0, 3))
            value = draw(st.sampled_from(INTERESTING_U32) | st.integers(0, 2**32 - 1))
            if where + 4 <= len(content):
                content[where:where + 4] = struct.pack(">I", value)
    return bytes(content)


def timed(run: object, *args: object) -> float:
    start = time.monotonic()
    run(*args)  # type: ignore[operator]
    return time.monotonic() - start


# --- the BMFF reader


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_segments_give_only_box_format_errors(template: tuple[Path, Path],
                                                      data: st.DataObject) -> None:
    original = (template[0] / "000001.mp4").read_bytes()
    content = data.draw(mutated(original, box_offsets(original)))
    assert timed(bmff_target, content) < EXAMPLE_SECONDS


# --- the manifest reader and checker


@st.composite
def mutated_manifest(draw: st.DrawFn, data: bytes) -> bytes:
    """Byte mutations, or one value of one line replaced by a hostile JSON value."""
    if draw(st.booleans()):
        return draw(mutated(data))
    lines = data.splitlines(keepends=True)
    number = draw(st.integers(0, len(lines) - 1))
    obj = json.loads(lines[number])
    key = draw(st.sampled_from(sorted(obj)))
    hostile = draw(st.sampled_from([
        [], {}, None, True, -1, 2**63, 1.5, "\ud800", "\udcff.mp4", "a" * 300, "../x",
        "\x1b[2J\n", "manifest.jsonl", {"sig": "x"}, NESTED]))
    obj[key] = hostile
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    depth = draw(st.sampled_from([2, 40, 900, 985, 990, 3000]))
    text = text.replace(json.dumps(NESTED), "[" * depth + "]" * depth)  # too deep for dumps
    lines[number] = text.encode("ascii") + b"\n"
    return b"".join(lines)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_manifests_read_and_check_without_raising(template: tuple[Path, Path],
                                                          data: st.DataObject) -> None:
    original = (template[0] / MANIFEST_NAME).read_bytes()
    content = data.draw(mutated_manifest(original))
    assert timed(manifest_target, content) < EXAMPLE_SECONDS


# --- verify_recording: a report, never another exception


def check_report(directory: Path) -> verify.VerifyReport:
    start = time.monotonic()
    report = verify.verify_recording(directory)
    verify.render_human(report).encode("utf-8")
    json.loads(verify.render_json(report).encode("utf-8"))
    verify.render_json(report, ascii_only=True).encode("ascii")
    assert time.monotonic() - start < EXAMPLE_SECONDS * 2
    return report


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_mutated_recordings_verify_to_a_report(template: tuple[Path, Path], tmp_path_factory:
                                               pytest.TempPathFactory,
                                               data: st.DataObject) -> None:
    """A segment mutated and, half the time, listed with its new SHA-256 in a manifest signed
    with the device's key (so its boxes are parsed, as on a compromised camera); or the manifest
    mutated. Each gives a report that renders, and fails unless the changed segment was
    re-signed (a change inside media data then makes a valid recording of other pictures)."""
    directory = tmp_path_factory.mktemp("case") / "recording"
    shutil.copytree(template[0], directory)
    if data.draw(st.booleans(), label="mutate a segment"):
        name = data.draw(st.sampled_from(["000001.mp4", "000002.mp4"]))
        original = (directory / name).read_bytes()
        content = data.draw(mutated(original, box_offsets(original)))
        if content == original:
            return
        (directory / name).write_bytes(content)
        if data.draw(st.booleans(), label="re-sign"):
            resign(directory, template[1], name, content)
            check_report(directory)
            return
    else:
        original = (directory / MANIFEST_NAME).read_bytes()
        content = data.draw(mutated_manifest(original))
        if content == original:
            return
        (directory / MANIFEST_NAME).write_bytes(content)
    assert not check_report(directory).ok


def resign(directory: Path, key_dir: Path, name: str, content: bytes) -> None:
    """Write the manifest again, listing ``content`` as segment ``name``."""
    read = manifest.read_records((directory / MANIFEST_NAME).read_bytes())
    segments = []
    for record in read:
        if isinstance(record, manifest.SegmentLine):
            fields = {field: getattr(record, field) for field in (
                "index", "file", "bytes", "sha256", "first_pts_us", "last_pts_us", "utc_start",
                "utc_end", "fragments", "recovered")}
            segments.append(fields)
    from recorder.integrity.sealed_segment import SealedSegment

    sealed = [SealedSegment(**fields) for fields in segments]
    sealed = [replace(item, bytes=len(content), sha256=hashlib.sha256(content).hexdigest())
              if item.file == name else item for item in sealed]
    (directory / MANIFEST_NAME).unlink()
    write_manifest(directory, DeviceKey.load_or_create(key_dir), sealed)


# --- the corpus of crashers found: replayed for ever


def corpus_files() -> list[Path]:
    return sorted(path for path in CORPUS.glob("*/*")
                  if path.is_file() and path.parent.name in TARGETS)


@pytest.mark.parametrize("path", corpus_files(), ids=lambda path: f"{path.parent.name}/"
                         f"{path.name}")
def test_every_input_in_the_corpus_is_handled(path: Path) -> None:
    assert timed(TARGETS[path.parent.name], path.read_bytes()) < EXAMPLE_SECONDS


def test_the_corpus_is_not_empty() -> None:
    assert {path.parent.name for path in corpus_files()} == set(TARGETS)


# --- the coverage-guided harness, for a short while


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_atheris_harness_finds_no_crasher(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")
    artifacts = tmp_path / "found"
    result = subprocess.run(
        [sys.executable, str(TESTS / "fuzz" / "run.py"), target, "--seconds", "1",
         "--work", str(tmp_path / "work"), "--artifacts", str(artifacts)],
        capture_output=True, timeout=240, check=False, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=""))
    found = sorted(path.name for path in artifacts.iterdir()) if artifacts.exists() else []
    assert result.returncode == 0 and not found, (found, result.stderr[-3000:])
    assert b"Done " in result.stderr  # libFuzzer ran to its time limit
