"""`bwv verify` on hostile recordings (issue 13, findings 2 and 3): every input gives exit 0, 1 or
2 and a message, never a traceback, on a strict UTF-8 stdout too; a FIFO never blocks it; crafted
``trun`` counts cost neither seconds nor gigabytes. Each test runs the real `bwv verify` as a
subprocess and performs the attack."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from sqlalchemy import select
from support.segments import write_segments
from support.station import (camera_key, catalogue_url, clock, ingest, make_recording, new_store,
                             postgres_cluster)
from support import warm
from test_verify import sealed_segments, write_manifest

from recorder.integrity import bmff, manifest
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import MANIFEST_NAME
from recorder.integrity.sealed_segment import SealedSegment
from recorder.station.catalogue import recordings
from recorder.station.evidence_store import EvidenceStore

# the station's fixtures, used by name below
__all__ = ["camera_key", "catalogue_url", "clock", "new_store", "postgres_cluster"]

BWV = Path(sys.executable).with_name("bwv")
TIMEOUT = 30


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A sealed recording of two 2-second segments, and its device key's data directory."""
    root = tmp_path_factory.mktemp("hostile")
    directory = root / "recording"
    segments = write_segments(directory, seconds=4, segment_seconds=2)
    DeviceKey.load_or_create(root / "data")
    write_manifest(directory, DeviceKey.load_or_create(root / "data"), sealed_segments(segments))
    return directory, root / "data"


@pytest.fixture()
def recording(template: tuple[Path, Path], tmp_path: Path) -> Path:
    directory = tmp_path / "recording"
    shutil.copytree(template[0], directory)
    return directory


def run_verify(*args: str | Path, encoding: str = "utf-8:strict",
               timeout: float = TIMEOUT) -> subprocess.CompletedProcess[bytes]:
    """`bwv verify ARGS` as a subprocess with stdout and stderr strict in ``encoding``."""
    env = dict(os.environ, PYTHONIOENCODING=encoding)
    return warm.run(["verify", *map(str, args)], env=env, timeout=timeout, text=False)


def assert_clean(result: subprocess.CompletedProcess[bytes], code: int) -> str:
    """Exit ``code``, no traceback, and an output that decodes; returns stdout."""
    assert b"Traceback" not in result.stderr, result.stderr.decode("utf-8", "replace")
    assert result.returncode == code, (result.stdout[-500:], result.stderr[-500:])
    return result.stdout.decode("utf-8")


def edit_line(directory: Path, number: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Change line ``number`` (1-based) of the manifest as JSON, escapes kept as written."""
    lines = (directory / MANIFEST_NAME).read_bytes().splitlines(keepends=True)
    obj = json.loads(lines[number - 1])
    change(obj)
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    lines[number - 1] = text.encode("ascii") + b"\n"
    (directory / MANIFEST_NAME).write_bytes(b"".join(lines))


# --- finding 2: no traceback, whatever the manifest or directory holds


@pytest.mark.parametrize("value", [["000001.mp4"], {"a": 1}, 7, None, True])
def test_a_segment_file_of_another_json_type_fails_cleanly(recording: Path, value: Any) -> None:
    edit_line(recording, 2, lambda obj: obj.update(file=value))
    out = assert_clean(run_verify(recording), 1)
    assert "segment field 'file' is missing or not a str" in out


@pytest.mark.parametrize("encoding", ["utf-8:strict", "ascii:strict"])
@pytest.mark.parametrize("json_output", [False, True])
def test_a_lone_surrogate_in_the_officer_id_prints(recording: Path, encoding: str,
                                                   json_output: bool) -> None:
    edit_line(recording, 1, lambda obj: obj.update(officer_id="\ud800 \x1b[2J\nforged"))
    result = run_verify(*(["--json"] if json_output else []), recording, encoding=encoding)
    out = assert_clean(result, 1)
    if json_output:
        data = json.loads(out)
        assert data["officer_id"] == "\ud800 \x1b[2J\nforged"  # the escape round-trips
        assert data["first_problem"]["code"] == "not_canonical"
    else:
        # escaped: no raw control character reaches the terminal, the line is not broken
        assert "officer \\ud800 \\x1b[2J\\nforged)" in out
        assert "\x1b" not in out and "\nforged" not in out


@pytest.mark.parametrize("json_output", [False, True])
def test_a_non_utf8_file_name_in_the_directory_prints(recording: Path,
                                                      json_output: bool) -> None:
    with open(os.fsencode(recording) + b"/\xff\xfe.mp4", "wb") as file:
        file.write(b"x")
    result = run_verify(*(["--json"] if json_output else []), recording)
    out = assert_clean(result, 1)
    if json_output:
        assert json.loads(out)["extra_files"] == ["\udcff\udcfe.mp4"]
    else:
        assert "\\udcff\\udcfe.mp4: a file the manifest does not list" in out


@pytest.mark.parametrize("depth", [985, 989, 993, 5000])
def test_deeply_nested_values_fail_cleanly(recording: Path, depth: int) -> None:
    lines = (recording / MANIFEST_NAME).read_bytes().splitlines(keepends=True)
    nested = b"[" * depth + b"]" * depth
    lines[2] = lines[2].replace(b'{"event"', b'{"a":' + nested + b',"event"')
    lines[0] = lines[0].replace(b'"settings":{', b'"settings":{"x":' + nested + b",")
    (recording / MANIFEST_NAME).write_bytes(b"".join(lines))
    out = assert_clean(run_verify(recording), 1)
    assert "manifest.jsonl line 1:" in out


def test_canonical_bytes_refuses_deep_nesting_without_recursion_error() -> None:
    value: Any = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(manifest.ManifestFormatError, match="nested more than"):
        manifest.canonical_bytes({"a": value})
    shallow: Any = []
    for _ in range(manifest.MAX_NESTING - 1):
        shallow = [shallow]
    assert manifest.canonical_bytes({"a": shallow}).startswith(b'{"a":[[')


def test_a_listed_name_longer_than_name_max_is_missing(recording: Path) -> None:
    edit_line(recording, 2, lambda obj: obj.update(file="a" * 300 + ".mp4"))
    out = assert_clean(run_verify(recording), 1)
    assert "listed on line 2 but no file by that name can exist: its 304 bytes" in out


def test_a_path_longer_than_name_max_is_a_usage_error(tmp_path: Path) -> None:
    result = run_verify(tmp_path / ("b" * 300))
    assert_clean(result, 2)
    assert b"File name too long" in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("kind", ["fifo", "dev-null", "directory"])
def test_a_segment_that_is_not_a_regular_file_is_named_and_never_blocks(
        recording: Path, kind: str) -> None:
    segment = recording / "000001.mp4"
    segment.unlink()
    if kind == "fifo":
        os.mkfifo(segment)  # opening it for reading would block until a writer came
    elif kind == "dev-null":
        segment.symlink_to("/dev/null")
    else:
        segment.mkdir()
    start = time.monotonic()
    out = assert_clean(run_verify(recording, timeout=10), 1)
    assert time.monotonic() - start < 10
    what = {"fifo": "a FIFO (named pipe)", "dev-null": "a character device",
            "directory": "a directory"}[kind]
    assert f"000001.mp4: listed on line 2 but it is {what}, not a regular file" in out
    assert "does not exist" not in out and "deleted or renamed" not in out


def test_a_fifo_given_as_the_path_or_manifest_never_blocks(recording: Path,
                                                          tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = run_verify(fifo, timeout=10)
    assert_clean(result, 2)
    assert b"is a FIFO (named pipe), not a recording directory" in result.stderr
    (recording / MANIFEST_NAME).unlink()
    os.mkfifo(recording / MANIFEST_NAME)
    out = assert_clean(run_verify(recording, timeout=10), 1)
    assert "has no readable manifest.jsonl (it is a FIFO (named pipe))" in out
    key_fifo = tmp_path / "key"
    os.mkfifo(key_fifo)
    result = run_verify("--key", key_fifo, recording, timeout=10)
    assert_clean(result, 2)
    assert b"is not a regular file" in result.stderr


# --- finding 3: crafted trun counts are bounded


def crafted_trun_segment(source: Path, runs: int = 40, count: int = 1_000_000,
                         padding: int = 48 << 20) -> bytes:
    """The first fragment's first traf rebuilt with ``runs`` trun boxes of ``count`` samples
    and no per-sample fields (16 bytes each: 640 bytes for 40), and a ``free`` box of
    ``padding`` bytes at the end so the file is larger than the samples it declares (the old
    per-file budget, one sample per byte, let them all through)."""
    data = source.read_bytes()
    top = list(bmff.iter_boxes(data))
    moof = next(item for item in top if item.type == "moof")
    children = list(bmff.iter_boxes(data, moof.payload_offset, moof.end))
    traf = next(item for item in children if item.type == "traf")
    parts = list(bmff.iter_boxes(data, traf.payload_offset, traf.end))
    keep = b"".join(data[item.offset:item.end] for item in parts if item.type in ("tfhd", "tfdt"))
    truns = struct.pack(">I4sII", 16, b"trun", 0, count) * runs
    new_traf = struct.pack(">I4s", 8 + len(keep) + len(truns), b"traf") + keep + truns
    inner = b"".join(new_traf if item is traf else data[item.offset:item.end]
                     for item in children)
    new_moof = struct.pack(">I4s", 8 + len(inner), b"moof") + inner
    free = struct.pack(">I4s", 8 + padding, b"free") + bytes(padding)
    return data[:moof.offset] + new_moof + data[moof.end:] + free


def measured(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[bytes], float,
                                                     int]:
    """Run ``command`` under /usr/bin/time in ``cwd`` (not the source tree: the installed
    package is measured): (result, seconds, peak RSS in MB)."""
    if not Path("/usr/bin/time").exists():
        pytest.skip("needs /usr/bin/time (Debian package time) to measure peak RSS")
    start = time.monotonic()
    result = subprocess.run(["/usr/bin/time", "-f", "RSS_KB=%M", *command], capture_output=True,
                            timeout=TIMEOUT, check=False, cwd=cwd)
    seconds = time.monotonic() - start
    line = next(item for item in result.stderr.splitlines() if item.startswith(b"RSS_KB="))
    return result, seconds, int(line.split(b"=")[1]) // 1024


def test_the_reader_refuses_crafted_trun_counts_in_a_second_and_little_memory(
        recording: Path, tmp_path: Path) -> None:
    crafted = tmp_path / "crafted.mp4"
    crafted.write_bytes(crafted_trun_segment(recording / "000001.mp4"))
    script = ("import sys\nfrom recorder.integrity import bmff\ntry:\n"
              "    bmff.read_segment(sys.argv[1])\nexcept bmff.BoxFormatError as exc:\n"
              "    print(exc)\n")
    result, seconds, rss_mb = measured([sys.executable, "-c", script, str(crafted)], tmp_path)
    assert result.returncode == 0, result.stderr[-800:]
    assert b"trun declares 1000000 samples" in result.stdout
    assert seconds < 1.5 and rss_mb < 100, (seconds, rss_mb)


def test_verify_of_a_signed_crafted_segment_is_bounded(template: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    """The crafted segment listed with its own SHA-256 in a manifest signed by the device key
    (a compromised camera, or what the station verifies on upload): its boxes are parsed."""
    directory = tmp_path / "recording"
    shutil.copytree(template[0], directory)
    (directory / MANIFEST_NAME).unlink()
    data = crafted_trun_segment(directory / "000001.mp4")
    (directory / "000001.mp4").write_bytes(data)
    segments = write_segments(tmp_path / "again", seconds=4, segment_seconds=2)
    sealed = sealed_segments(segments)
    sealed[0] = sealed[0].__class__(**{**sealed[0].as_dict(), "bytes": len(data),
                                       "sha256": hashlib.sha256(data).hexdigest()})
    write_manifest(directory, DeviceKey.load_or_create(template[1]), sealed)
    result, seconds, rss_mb = measured([str(BWV), "verify", str(directory)], tmp_path)
    out = assert_clean(result, 1)
    assert "000001.mp4" in out and "the MP4 boxes do not parse" in out
    assert "trun declares 1000000 samples" in out
    assert seconds < 2 and rss_mb < 100, (seconds, rss_mb)


def test_an_edited_segment_is_not_parsed_at_all(recording: Path) -> None:
    """A hash mismatch is the first fatal fault: the edited file's boxes are never read."""
    (recording / "000001.mp4").write_bytes(crafted_trun_segment(recording / "000001.mp4",
                                                                padding=0))
    out = assert_clean(run_verify(recording), 1)
    assert "first problem: 000001.mp4:" in out and "boxes parse 1/2" in out
    assert "trun declares" not in out


# --- the station's verifier: the same inputs uploaded (SQLite and a real PostgreSQL)


def signed_recording(root: Path, key: DeviceKey, change: Callable[[Path], None]) -> Path:
    """A sealed recording as the camera uploads it; ``change`` edits its files, then every
    segment is listed with its (new) size and SHA-256 in a manifest signed with ``key``."""
    directory = make_recording(root, key)
    change(directory)
    (directory / MANIFEST_NAME).unlink()
    segments = []
    for index, path in enumerate(sorted(directory.glob("*.mp4")), 1):
        data = path.read_bytes()
        segments.append(SealedSegment(
            index=index, file=path.name, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
            first_pts_us=7_000_000 + index * 2_000_000, last_pts_us=8_900_000 + index * 2_000_000,
            utc_start="2026-11-23T07:00:00.000000Z", utc_end="2026-11-23T07:00:02.000000Z",
            fragments=2, recovered=False))
    write_manifest(directory, key, segments)
    return directory


@pytest.fixture()
def station_store(new_store: Callable[[], EvidenceStore], camera_key: DeviceKey) -> EvidenceStore:
    store = new_store()
    store.enroll("cam7", camera_key.public_key, by="admin")
    return store


def test_the_station_catalogues_a_lone_surrogate_instead_of_failing(
        station_store: EvidenceStore, camera_key: DeviceKey, tmp_path: Path) -> None:
    """A manifest whose officer_id is "\\ud800" made the catalogue insert raise
    UnicodeEncodeError (HTTP 500 at the station): it is now a failed recording, catalogued."""
    directory = make_recording(tmp_path / "camera", camera_key)
    lines = (directory / MANIFEST_NAME).read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"PC 1234"', b'"\\ud800"')
    (directory / MANIFEST_NAME).write_bytes(b"".join(lines))
    holdings = ingest(station_store, directory)
    assert holdings.status == "failed" and not holdings.verified
    assert holdings.problems[0]["code"] == "not_canonical"
    with station_store.engine.connect() as conn:
        officer = conn.execute(select(recordings.c.officer_id)).scalar()
    assert officer == "\\ud800"


def test_the_station_verifies_a_signed_crafted_segment_quickly(
        station_store: EvidenceStore, camera_key: DeviceKey, tmp_path: Path) -> None:
    """The crafted trun segment, signed by an enrolled (compromised) camera and uploaded: the
    station's verifier refuses it in well under a second of verification."""
    def craft(directory: Path) -> None:
        segment = directory / "000001.mp4"
        segment.write_bytes(crafted_trun_segment(segment))

    directory = signed_recording(tmp_path / "camera", camera_key, craft)
    start = time.monotonic()
    holdings = ingest(station_store, directory)
    assert time.monotonic() - start < 3
    assert holdings.status == "failed"
    assert any(problem["code"] == "boxes" and "trun declares 1000000 samples"
               in problem["message"] for problem in holdings.problems)
