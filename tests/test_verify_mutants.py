"""Tests that kill the mutants of recorder/integrity/verify.py (`bash scripts/mutation verify`).

One real recording (three 2-second fragmented MP4 segments from PyAV, a signed manifest) is made
once per process and copied for each test; each test damages its copy and asserts the exact
problems `verify_recording` lists: code, where, line and file. The recording is kept in memory by
`_made`, so mutmut's test processes, forked after its first run, do not encode it again.
"""

from __future__ import annotations

import functools
import errno
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.segments import write_segments

from recorder.integrity import bmff, manifest, sha256, verify
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import EventKind, ManifestWriter, RecordingHeader
from recorder.integrity.sealed_segment import SealedSegment
from recorder.integrity.verify import ProblemCode as P

START_US = 7_000_000
HEADER = RecordingHeader("20261123T070000Z-cam7", "cam7", "PC 1234",
                         "2026-11-23T07:00:00.000000Z", START_US, "ntp", {})
NAMES = ["000001.mp4", "000002.mp4", "000003.mp4"]


@functools.cache
def _made() -> tuple[dict[str, bytes], list[SealedSegment], DeviceKey]:
    """The segment files, their manifest entries and the device key, made once per process."""
    with tempfile.TemporaryDirectory() as scratch:
        written = write_segments(Path(scratch) / "rec", seconds=6, segment_seconds=2)
        files = {segment.path.name: segment.path.read_bytes() for segment in written}
        key = DeviceKey.load_or_create(Path(scratch) / "key")
    entries = [SealedSegment(
        index=index, file=segment.path.name, bytes=len(files[segment.path.name]),
        sha256=hashlib.sha256(files[segment.path.name]).hexdigest(),
        first_pts_us=START_US + segment.first_pts_us, last_pts_us=START_US + segment.last_pts_us,
        utc_start="2026-11-23T07:00:00.000000Z", utc_end="2026-11-23T07:00:02.000000Z",
        fragments=segment.video_keyframes, recovered=False)
        for index, segment in enumerate(written, 1)]
    return files, entries, key


@functools.cache
def _with_a_hole() -> bytes:
    """One 6-second segment (a fragment per second) with its third and fourth fragments cut out:
    its decode times jump by 2 s inside the file."""
    with tempfile.TemporaryDirectory() as scratch:
        data = write_segments(Path(scratch), seconds=6, segment_seconds=6)[0].path.read_bytes()
    boxes, offset = [], 0
    while offset < len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        boxes.append(data[offset:offset + size])
        offset += size
    assert [box[4:8] for box in boxes] == [b"ftyp", b"moov", *[b"moof", b"mdat"] * 6, b"mfra"]
    return b"".join(boxes[:6] + boxes[10:14])  # the random-access index is left out


@pytest.fixture()
def key() -> DeviceKey:
    return _made()[2]


@pytest.fixture()
def entries() -> list[SealedSegment]:
    return list(_made()[1])


def write_manifest(directory: Path, key: DeviceKey, entries: list[SealedSegment],
                   name: str = manifest.MANIFEST_NAME) -> None:
    """A sealed manifest listing ``entries`` (renumbered), with a marker after the first."""
    with ManifestWriter.create(directory, key, HEADER) as writer:
        for index, entry in enumerate(entries, 1):
            writer.append_segment(replace(entry, index=index))
            if index == 1:
                writer.append_event(EventKind.MARKER, "2026-11-23T07:00:01.000000Z",
                                    pts_us=START_US + 1_000_000)
        writer.seal("2026-11-23T07:00:06.000000Z")
    if name != manifest.MANIFEST_NAME:
        (directory / manifest.MANIFEST_NAME).rename(directory / name)


@pytest.fixture()
def recording(tmp_path: Path, key: DeviceKey, entries: list[SealedSegment]) -> Path:
    directory = tmp_path / "rec"
    directory.mkdir()
    for name, data in _made()[0].items():
        (directory / name).write_bytes(data)
    write_manifest(directory, key, entries)
    return directory


def found(report: verify.VerifyReport) -> list[tuple[Any, str, int | None, str | None]]:
    return [(p.code, p.where, p.line, p.file) for p in report.problems]


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail, instead of hanging, when the block blocks (a FIFO opened without O_NONBLOCK)."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- a clean recording, in full


def test_a_clean_recording_reports_everything_it_read(recording: Path, key: DeviceKey) -> None:
    report = verify.verify_recording(recording)
    assert report.ok and report.first_problem is None and report.problems == []
    assert (report.path, report.manifest) == (str(recording), str(recording / "manifest.jsonl"))
    assert (report.recording_id, report.device_id, report.officer_id) == \
        ("20261123T070000Z-cam7", "cam7", "PC 1234")
    assert (report.key_fingerprint, report.key_source) == (key.fingerprint, "header")
    assert (report.lines, report.sealed, report.events, report.extra_files) == \
        (6, True, {"marker": 1}, [])
    sizes = [len(data) for data in _made()[0].values()]
    assert [(s.index, s.file, s.line, s.bytes, s.recovered, s.present, s.size_ok, s.sha256_ok,
             s.boxes_ok, s.fragments) for s in report.segments] == [
        (1, NAMES[0], 2, sizes[0], False, True, True, True, True, 2),
        (2, NAMES[1], 4, sizes[1], False, True, True, True, True, 2),
        (3, NAMES[2], 5, sizes[2], False, True, True, True, True, 2)]
    for segment in report.segments:
        assert [(t.track_id, t.handler, t.timescale) for t in segment.tracks] == \
            [(1, "vide", 15360), (2, "soun", 48000)]
    video = [segment.tracks[0] for segment in report.segments]
    assert [(t.samples, t.first_decode_us, t.end_decode_us) for t in video] == [
        (60, 0, 2_000_000), (60, 2_000_000, 4_000_000), (60, 4_000_000, 6_000_000)]
    assert [(s.before, s.after, s.track_id, s.handler, s.gap_us) for s in report.steps] == [
        (NAMES[0], NAMES[1], 1, "vide", 0), (NAMES[0], NAMES[1], 2, "soun", 0),
        (NAMES[1], NAMES[2], 1, "vide", 0), (NAMES[1], NAMES[2], 2, "soun", 0)]
    assert [s.tolerance_us for s in report.steps] == [34_333, 22_333, 34_333, 22_333]
    trusted = verify.verify_recording(recording / "manifest.jsonl", trusted_key=key.public_key)
    assert trusted.ok and trusted.key_source == "trusted" and trusted.path == str(recording)


def test_known_digests_are_trusted_for_hashing_and_still_compared(recording: Path) -> None:
    good = hashlib.sha256(_made()[0][NAMES[0]]).hexdigest()
    assert verify.verify_recording(recording, known_sha256={NAMES[0]: good}).ok
    report = verify.verify_recording(recording, known_sha256={NAMES[1]: "0" * 64})
    assert found(report) == [(P.SHA256, NAMES[1], 4, NAMES[1])]
    assert report.segments[1].size_ok is True and report.segments[1].boxes_ok is None


# --- the path given


def test_the_path_must_be_a_recording_directory_or_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(verify.VerifyUsageError, match="does not exist: give a recording"):
        verify.verify_recording(tmp_path / "absent")
    with pytest.raises(verify.VerifyUsageError, match=r"cannot be used \(its name cannot be "
                                                        r"encoded\)"):
        verify.verify_recording(Path("a\0b"))
    with pytest.raises(verify.VerifyUsageError, match=r"cannot be used \(File name too long\)"):
        verify.verify_recording(tmp_path / ("x" * 300))
    os.mkfifo(tmp_path / "fifo")
    with deadline(5), pytest.raises(verify.VerifyUsageError,
                                    match="is a FIFO \\(named pipe\\), not a recording"):
        verify.verify_recording(tmp_path / "fifo")
    with pytest.raises(verify.VerifyUsageError, match="is a character device, not"):
        verify.verify_recording(Path("/dev/null"))


@pytest.mark.parametrize("kind, name", [
    (stat.S_IFDIR, "a directory"), (stat.S_IFIFO, "a FIFO (named pipe)"),
    (stat.S_IFCHR, "a character device"), (stat.S_IFBLK, "a block device"),
    (stat.S_IFSOCK, "a socket"), (stat.S_IFREG, "not a regular file"),
    (stat.S_IFLNK, "not a regular file")])
def test_each_kind_of_file_is_named(kind: int, name: str) -> None:
    assert verify._kind(kind | 0o644) == name


def test_os_reasons_leave_out_the_path() -> None:
    assert verify._os_reason(OSError(2, "No such file", "/very/long")) == "No such file"
    assert verify._os_reason(ValueError("x")) == "its name cannot be encoded"
    assert verify._os_reason(OSError("bare")) == "bare"


def test_a_recording_without_a_readable_manifest_lists_its_files(recording: Path) -> None:
    (recording / "manifest.jsonl").unlink()
    report = verify.verify_recording(recording)
    assert found(report) == [(P.NO_MANIFEST, "manifest.jsonl", None, None)]
    assert report.problems[0].message == (
        f"{recording} has no readable manifest.jsonl (No such file or directory): without it "
        "nothing can be verified")
    assert report.extra_files == NAMES and report.segments == [] and not report.sealed
    os.mkfifo(recording / "manifest.jsonl")
    with deadline(5):
        report = verify.verify_recording(recording)
    assert "(it is a FIFO (named pipe))" in report.problems[0].message
    assert report.extra_files == [*NAMES, "manifest.jsonl"]


def test_a_manifest_under_another_name_is_not_an_unlisted_file(
        recording: Path, key: DeviceKey, entries: list[SealedSegment]) -> None:
    (recording / "manifest.jsonl").rename(recording / "copy.jsonl")
    report = verify.verify_recording(recording / "copy.jsonl")
    assert report.ok, report.problems
    assert report.manifest == str(recording / "copy.jsonl")
    (recording / "copy.jsonl").rename(recording / "manifest.jsonl")
    shutil.copy(recording / "manifest.jsonl", recording / "other.jsonl")
    report = verify.verify_recording(recording)
    assert found(report) == [(P.EXTRA_FILE, "other.jsonl", None, "other.jsonl")]
    assert report.problems[0].message == ("a file the manifest does not list: nothing in a "
                                          "recording directory is unlisted")


# --- the segment files


def test_a_missing_segment(recording: Path) -> None:
    (recording / NAMES[1]).unlink()
    report = verify.verify_recording(recording)
    assert found(report) == [(P.MISSING_FILE, NAMES[1], 4, NAMES[1])]
    assert report.problems[0].message == ("listed on line 4 but not in the recording directory: "
                                          "it was deleted or renamed")
    assert [s.present for s in report.segments] == [True, False, True]
    assert report.segments[1].size_ok is None and report.steps == []


@pytest.mark.parametrize("make, kind", [
    (os.mkfifo, "a FIFO (named pipe)"), (os.mkdir, "a directory")])
def test_a_segment_that_is_not_a_regular_file(recording: Path, make: Any, kind: str) -> None:
    (recording / NAMES[2]).unlink()
    make(recording / NAMES[2])
    with deadline(5):
        report = verify.verify_recording(recording)
    assert found(report) == [(P.NOT_A_FILE, NAMES[2], 5, NAMES[2])]
    assert report.problems[0].message == (f"listed on line 5 but it is {kind}, not a regular "
                                          "file: it cannot hold the segment's bytes")
    assert report.segments[2].present is False


def test_a_segment_that_cannot_be_opened_is_unreadable(recording: Path) -> None:
    (recording / NAMES[2]).unlink()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(recording / NAMES[2]))  # opening a socket file fails with ENXIO
        report = verify.verify_recording(recording)
    assert found(report) == [(P.UNREADABLE, NAMES[2], 5, NAMES[2])]
    assert report.problems[0].message == \
        "listed on line 5 but it cannot be read (No such device or address)"


def test_a_segment_name_no_file_can_have(recording: Path, key: DeviceKey,
                                         entries: list[SealedSegment]) -> None:
    (recording / "manifest.jsonl").unlink()
    write_manifest(recording, key, [replace(entries[0], file="x" * 300 + ".mp4")])
    report = verify.verify_recording(recording)
    assert [(code, line) for code, _, line, _ in found(report)][0] == (P.MISSING_FILE, 2)
    assert report.problems[0].message == ("listed on line 2 but no file by that name can exist: "
                                          "its 304 bytes are more than the file system allows "
                                          "in a name")
    # a lone surrogate (only an edited manifest holds one) cannot be encoded as a file name
    data = (recording / "manifest.jsonl").read_bytes()
    (recording / "manifest.jsonl").write_bytes(data.replace(b"x" * 300, b"\\ud800"))
    report = verify.verify_recording(recording)
    missing = [p for p in report.problems if p.code is P.MISSING_FILE]
    assert [(p.where, p.line, p.message) for p in missing] == [
        ("\ud800.mp4", 2, "listed on line 2 but no file by that name can exist: it cannot be "
         "encoded as a file name")]


def test_a_segment_name_outside_the_directory_is_never_opened(
        recording: Path, key: DeviceKey, entries: list[SealedSegment]) -> None:
    (recording / "manifest.jsonl").unlink()
    write_manifest(recording, key, [replace(entries[0], file="../000001.mp4")])
    (recording.parent / "000001.mp4").write_bytes(b"outside")
    report = verify.verify_recording(recording)
    assert report.segments == []
    assert [(code, line) for code, _, line, _ in found(report)][0] == \
        (manifest.LineProblemCode.STRUCTURE, 2)


@pytest.mark.parametrize("change, how", [(-1, "truncated"), (1, "extended")])
def test_a_segment_of_another_size(recording: Path, change: int, how: str) -> None:
    data = _made()[0][NAMES[0]]
    (recording / NAMES[0]).write_bytes(data[:change] if change < 0 else data + b"\0")
    report = verify.verify_recording(recording)
    assert found(report)[:2] == [(P.SIZE, NAMES[0], 2, NAMES[0]),
                                 (P.SHA256, NAMES[0], 2, NAMES[0])]
    assert report.problems[0].message == (f"{len(data) + change} bytes, but line 2 says "
                                          f"{len(data)}: the file was {how} or replaced")
    assert (report.segments[0].size_ok, report.segments[0].boxes_ok) == (False, None)


def test_a_segment_of_the_same_size_with_other_bytes(recording: Path) -> None:
    data = bytearray(_made()[0][NAMES[2]])
    data[-1] ^= 1
    (recording / NAMES[2]).write_bytes(bytes(data))
    report = verify.verify_recording(recording)
    assert found(report) == [(P.SHA256, NAMES[2], 5, NAMES[2])]
    digest = hashlib.sha256(bytes(data)).hexdigest()
    listed = hashlib.sha256(_made()[0][NAMES[2]]).hexdigest()
    assert report.problems[0].message == (
        f"SHA-256 {digest[:16]}…, but line 5 says {listed[:16]}…: its bytes were changed after "
        "it was sealed")
    assert (report.segments[2].size_ok, report.segments[2].sha256_ok) == (True, False)


def test_swapped_segments_name_each_other(recording: Path) -> None:
    files = _made()[0]
    (recording / NAMES[0]).write_bytes(files[NAMES[2]])
    (recording / NAMES[2]).write_bytes(files[NAMES[0]])
    report = verify.verify_recording(recording)
    shas = [p for p in report.problems if p.code is P.SHA256]
    assert [p.message.split(": ", 1)[1] for p in shas] == [
        "its bytes are those listed for 000003.mp4 (line 5): segment files were swapped or "
        "renamed",
        "its bytes are those listed for 000001.mp4 (line 2): segment files were swapped or "
        "renamed"]


def test_signed_bytes_that_are_not_mp4_and_a_wrong_fragment_count(
        recording: Path, key: DeviceKey, entries: list[SealedSegment]) -> None:
    junk = b"\0\0\0\x10junkjunkjunk"
    (recording / "000004.mp4").write_bytes(junk)
    listed = [entries[0], replace(entries[1], fragments=3),
              replace(entries[2], file="000004.mp4", bytes=len(junk),
                      sha256=hashlib.sha256(junk).hexdigest())]
    (recording / "manifest.jsonl").unlink()
    (recording / NAMES[2]).unlink()
    write_manifest(recording, key, listed)
    report = verify.verify_recording(recording)
    assert found(report) == [(P.FRAGMENTS, NAMES[1], 4, NAMES[1]),
                             (P.BOXES, "000004.mp4", 5, "000004.mp4")]
    assert report.problems[0].message == "holds 2 fragments, but line 4 says 3"
    assert report.problems[1].message.startswith("the MP4 boxes do not parse ")
    assert [(s.boxes_ok, s.fragments) for s in report.segments] == \
        [(True, 2), (True, 2), (False, None)]
    assert report.segments[2].tracks == []


# --- files nobody listed


def test_unlisted_files_and_directories_and_copies(recording: Path) -> None:
    files = _made()[0]
    (recording / "a.mp4").write_bytes(b"inserted")
    (recording / "b.txt").write_bytes(b"note")
    (recording / "c").mkdir()
    (recording / "d.mp4").write_bytes(files[NAMES[1]])
    report = verify.verify_recording(recording)
    assert report.extra_files == ["a.mp4", "b.txt", "c", "d.mp4"]
    assert [(p.code, p.where, p.line, p.file, p.message) for p in report.problems] == [
        (P.EXTRA_FILE, "a.mp4", None, "a.mp4", "a file the manifest does not list: a foreign or "
         "inserted segment, or a leftover of an unfinished recording"),
        (P.EXTRA_FILE, "b.txt", None, "b.txt", "a file the manifest does not list: nothing in a "
         "recording directory is unlisted"),
        (P.EXTRA_FILE, "c", None, "c", "a directory the manifest does not list: nothing in a "
         "recording directory is unlisted"),
        (P.EXTRA_FILE, "d.mp4", None, "d.mp4",
         "a file the manifest does not list: it is a copy of 000002.mp4")]


def test_a_copy_is_recognised_only_against_hashed_segments(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    assert verify._copy_of(tmp_path / "x", {}) is None
    assert verify._copy_of(tmp_path / "x", {"a": "0" * 64, "b": digest}) == "b"
    assert verify._copy_of(tmp_path / "absent", {"b": digest}) is None
    assert verify._hash_file(tmp_path / "x") == (digest, 3)
    big = os.urandom(sha256.FILE_BUFFER_BYTES + 1)  # read in two pieces
    (tmp_path / "big").write_bytes(big)
    assert verify._hash_file(tmp_path / "big") == (hashlib.sha256(big).hexdigest(), len(big))


# --- timing


def test_segment_lines_whose_pts_do_not_follow_each_other(
        recording: Path, key: DeviceKey, entries: list[SealedSegment]) -> None:
    (recording / "manifest.jsonl").unlink()
    write_manifest(recording, key, [entries[0], replace(entries[1],
                                                        first_pts_us=entries[0].last_pts_us),
                                    entries[2]])
    report = verify.verify_recording(recording)
    assert [(c, w, line, f) for c, w, line, f in found(report) if c is P.PTS][0] == \
        (P.PTS, "manifest.jsonl line 4", 4, NAMES[1])
    assert report.problems[0].message == (
        f"segment 000002.mp4 starts at pts {entries[0].last_pts_us} µs, not after 000001.mp4 "
        f"ends ({entries[0].last_pts_us} µs)")


def test_pts_one_past_the_tolerance_disagree_with_the_media(
        recording: Path, key: DeviceKey, entries: list[SealedSegment]) -> None:
    with open(recording / NAMES[1], "rb") as file:
        structure = bmff.read_segment(file)
    tolerance = verify._tolerance_us(structure, structure.timing())
    assert tolerance == 1000 + 33_333 + 21_333  # a video frame, an AAC frame, 1 ms
    for shift, problems in ((tolerance, []), (tolerance + 1, ["first"]),
                            (-tolerance - 1, ["first"])):
        (recording / "manifest.jsonl").unlink()
        moved = replace(entries[1], first_pts_us=entries[1].first_pts_us + shift)
        write_manifest(recording, key, [entries[0], moved, entries[2]])
        report = verify.verify_recording(recording)
        media = [p for p in report.problems if p.code is P.PTS and p.where == NAMES[1]]
        assert [p.message.split()[1] for p in media] == problems, report.problems
        for problem in media:
            assert (problem.line, problem.file) == (4, NAMES[1])
            assert problem.message == (
                f"the first sample lies {-shift:+d} µs from where line 4's first_pts_us puts it "
                f"(tolerance {tolerance} µs): the manifest and the media disagree about when it "
                "was recorded")
    (recording / "manifest.jsonl").unlink()
    late = replace(entries[2], last_pts_us=entries[2].last_pts_us + 10**6)
    write_manifest(recording, key, [entries[0], entries[1], late])
    report = verify.verify_recording(recording)
    assert [(p.code, p.where, p.message.split()[1]) for p in report.problems] == \
        [(P.PTS, NAMES[2], "last")]


def test_the_origin_is_the_first_readable_segment(recording: Path, key: DeviceKey,
                                                  entries: list[SealedSegment]) -> None:
    # every stated pts moved by the same amount: only the differences are compared
    (recording / "manifest.jsonl").unlink()
    write_manifest(recording, key, [replace(entry, first_pts_us=entry.first_pts_us + 10**9,
                                            last_pts_us=entry.last_pts_us + 10**9)
                                    for entry in entries])
    assert verify.verify_recording(recording).ok
    (recording / NAMES[0]).unlink()
    report = verify.verify_recording(recording)
    assert found(report) == [(P.MISSING_FILE, NAMES[0], 2, NAMES[0])]


def test_a_missing_stretch_of_media_is_a_gap_and_an_unreadable_segment_ends_comparison(
        recording: Path, key: DeviceKey, entries: list[SealedSegment]) -> None:
    (recording / "manifest.jsonl").unlink()
    (recording / NAMES[1]).unlink()
    write_manifest(recording, key, [entries[0], entries[2]])
    report = verify.verify_recording(recording)
    gaps = [(p.code, p.where, p.line, p.file) for p in report.problems]
    assert gaps == [(P.GAP, "000001.mp4 -> 000003.mp4", None, NAMES[2])] * 2
    assert report.problems[0].message == (
        "vide track 1: a gap of 2000000 µs (2.000 s) in decode time (tolerance 34333 µs): "
        "media is missing or out of order")
    assert report.problems[1].message.startswith("soun track 2: a gap of 2005333 µs")
    # the same, but the segment in between listed and unreadable: nothing compared across it
    (recording / "manifest.jsonl").unlink()
    write_manifest(recording, key, entries)
    report = verify.verify_recording(recording)
    assert found(report) == [(P.MISSING_FILE, NAMES[1], 4, NAMES[1])]
    assert report.steps == []


def test_an_overlap_is_named_as_such() -> None:
    report = verify.VerifyReport("r", "r/manifest.jsonl")
    verify._step(report, verify.Gap("a.mp4", "b.mp4 fragment 3", 1, "vide", -5000, 4999))
    verify._step(report, verify.Gap("a.mp4", "b.mp4", 1, "vide", 4999, 4999))
    verify._step(report, verify.Gap("a.mp4", "b\tc.mp4 fragment 2", 2, "soun", 1, 0))
    verify._step(report, verify.Gap("a.mp4", "d.mp4", 1, "vide", 10**9, 0))
    assert len(report.steps) == 4
    assert found(report) == [(P.GAP, "a.mp4 -> b.mp4 fragment 3", None, "b.mp4"),
                             (P.GAP, "a.mp4 -> b\tc.mp4 fragment 2", None, "b\tc.mp4"),
                             (P.GAP, "a.mp4 -> d.mp4", None, "d.mp4")]
    assert report.problems[1].message.startswith("soun track 2: a gap of 1 µs (0.000 s) in")
    assert report.problems[2].message.startswith("vide track 1: a gap of 1000000000 µs "
                                                 "(1000.000 s) in")
    assert report.problems[0].message == (
        "vide track 1: an overlap of -5000 µs (-0.005 s) in decode time (tolerance 4999 µs): "
        "media is missing or out of order")


def test_gap_tolerance_is_inclusive() -> None:
    assert verify.Gap("a", "b", 1, "vide", 10, 10).within_tolerance
    assert verify.Gap("a", "b", 1, "vide", -10, 10).within_tolerance
    assert not verify.Gap("a", "b", 1, "vide", 11, 10).within_tolerance
    assert not verify.Gap("a", "b", 1, "vide", -11, 10).within_tolerance


def test_the_stated_tracks_are_the_video_or_else_all() -> None:
    video = SimpleNamespace(track=SimpleNamespace(handler="vide"))
    audio = SimpleNamespace(track=SimpleNamespace(handler="soun"))
    assert verify._stated_tracks({1: video, 2: audio}) == [video]  # type: ignore[dict-item]
    assert verify._stated_tracks({2: audio}) == [audio]  # type: ignore[dict-item]


def test_pts_entries_read_even_damaged_segment_lines() -> None:
    lines = (b'{"type":"segment","file":"a.mp4","first_pts_us":1,"last_pts_us":2}\n'
             b'{"type":"segment","file":"b.mp4","first_pts_us":"3","last_pts_us":4}\n'
             b'{"type":"segment","file":7,"first_pts_us":3,"last_pts_us":4}\n'
             b'{"type":"segment","file":"c.mp4","first_pts_us":3}\n'
             b'{"type":"event","file":"d.mp4","first_pts_us":3,"last_pts_us":4}\n')
    assert verify._pts_entries(manifest.read_lines(lines)) == [verify._PtsEntry(1, "a.mp4", 1, 2)]


# --- what the report says about a damaged manifest


def test_a_damaged_header_still_names_the_recording(recording: Path) -> None:
    lines = (recording / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"clock_source":"ntp",', b"")
    lines[2] = lines[2].replace(b'"utc":"2026-11-23T07:00:01.000000Z",', b"")
    (recording / "manifest.jsonl").write_bytes(b"".join(lines))
    report = verify.verify_recording(recording)
    assert (report.recording_id, report.device_id, report.officer_id) == \
        ("20261123T070000Z-cam7", "cam7", "PC 1234")
    assert report.key_fingerprint is None and report.events == {"marker": 1}
    assert found(report)[:2] == [(manifest.LineProblemCode.MISSING_FIELD,
                                  "manifest.jsonl line 1", 1, None),
                                 (manifest.LineProblemCode.CHAIN,
                                  "manifest.jsonl line 2", 2, None)]
    assert report.lines == 6


def test_a_first_line_that_is_not_a_header_names_nothing(recording: Path) -> None:
    lines = (recording / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    (recording / "manifest.jsonl").write_bytes(b"".join(lines[1:]))
    report = verify.verify_recording(recording)
    assert report.recording_id is None and report.device_id is None
    assert report.officer_id is None and report.lines == 5
    assert report.problems[0].where == "manifest.jsonl line 1"


# --- rendering


def test_the_human_report_of_a_clean_recording(recording: Path, key: DeviceKey) -> None:
    report = verify.verify_recording(recording)
    assert verify.render_human(report) == "\n".join([
        f"bwv verify: OK  {recording}", "",
        "recording   20261123T070000Z-cam7  (device cam7, officer PC 1234)",
        f"key         sha256 {key.fingerprint}: checked against the key in the manifest itself; "
        "pass --key with the enrolled key to prove which device signed it",
        "manifest    6 lines, sealed, chain and signatures intact",
        "segments    3 listed, 3 present, SHA-256 matches 3/3, boxes parse 3/3, 0 unlisted files",
        "events      marker 1",
        "timing      0 gaps beyond tolerance; largest step in decode time 0 µs"])
    trusted = verify.verify_recording(recording, trusted_key=key.public_key)
    assert f"key         sha256 {key.fingerprint}: checked against the trusted key given " \
        "with --key" in \
        verify.render_human(trusted).splitlines()


def test_the_human_report_of_a_damaged_recording(recording: Path, key: DeviceKey) -> None:
    lines = (recording / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    (recording / "manifest.jsonl").write_bytes(b"".join(lines[:-1]).replace(
        b'"recovered":false', b'"recovered":true', 2))
    (recording / NAMES[2]).unlink()
    for number in range(25):
        (recording / f"x{number:02d}\n").write_bytes(b"")
    text = verify.render_human(verify.verify_recording(recording))
    out = text.splitlines()
    assert out[:11] == [
        f"bwv verify: FAILED  {recording}",
        "first problem: manifest.jsonl line 2: the signature does not verify against the "
        "header's key: the line was changed after it was signed, or signed by another key",
        "",
        "recording   20261123T070000Z-cam7  (device cam7, officer PC 1234)",
        f"key         sha256 {key.fingerprint}: checked against the key in the manifest itself; "
        "pass --key with the enrolled key to prove which device signed it",
        "manifest    5 lines, NOT sealed, chain and signatures BROKEN",
        "segments    3 listed, 2 present, SHA-256 matches 2/3, boxes parse 2/3, 25 unlisted files",
        "recovered   000001.mp4, 000002.mp4: cut to the last whole fragment after a power cut",
        "events      marker 1",
        "timing      0 gaps beyond tolerance; largest step in decode time 0 µs",
        ""]
    assert out[11] == "problems (31):"
    problems = out[12:]
    assert len(problems) == 21 and problems[-1] == "  … and 11 more (all with --json)"
    assert problems[0] == "  manifest.jsonl line 2  the signature does not verify against " \
        "the header's key: the line was changed after it was signed, or signed by another key"
    assert problems[5] == "  000003.mp4             listed on line 5 but not in the recording " \
        "directory: it was deleted or renamed"
    # aligned on the names as they are, then escaped: a newline in a name cannot break a line
    assert problems[6] == f"  x00\\n{' ' * 19}a file the manifest does not list: nothing in a " \
        "recording directory is unlisted"


def test_a_long_where_is_cut_to_36_columns_of_alignment() -> None:
    report = verify.VerifyReport("r", "r/manifest.jsonl")
    report.problems.append(verify.Problem(P.EXTRA_FILE, "y" * 50, "m"))
    report.problems.append(verify.Problem(P.EXTRA_FILE, "z", "n"))
    out = verify.render_human(report).splitlines()
    assert out[-2:] == ["  " + "y" * 50 + "  m", "  " + "z" + " " * 35 + "  n"]
    assert "timing      0 gaps beyond tolerance; largest step in decode time 0 µs" in out
    assert "recording" not in verify.render_human(report)


def test_the_largest_step_is_reported_whatever_its_sign() -> None:
    report = verify.VerifyReport("r", "r/manifest.jsonl")
    report.steps += [verify.Gap("a", "b", 1, "vide", -700, 1000),
                     verify.Gap("a", "b", 1, "vide", 500, 1000)]
    assert "timing      0 gaps beyond tolerance; largest step in decode time 700 µs" in \
        verify.render_human(report).splitlines()


def test_printable_escapes_only_what_cannot_be_printed() -> None:
    assert verify.printable("plain é") == "plain é"
    assert verify.printable("a\nb\x1bc\ud800") == "a\\nb\\x1bc\\ud800"
    assert verify.printable("é\n") == "é\\n"  # printable characters stay as they are


def test_the_json_report_is_sorted_complete_and_always_utf8(recording: Path) -> None:
    (recording / "b\udcffd.mp4").write_bytes(b"x")
    report = verify.verify_recording(recording)
    text = verify.render_json(report)
    assert "\\udcff" in text and text.isascii()
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data["ok"] is False and data["gaps"] == []
    assert data["first_problem"] == {"code": "extra_file", "where": "b\udcffd.mp4",
                                     "message": data["problems"][0]["message"], "line": None,
                                     "file": "b\udcffd.mp4"}
    assert data["segments"][0]["tracks"][0]["handler"] == "vide"
    (recording / "b\udcffd.mp4").unlink()
    (recording / "é.txt").write_bytes(b"x")
    text = verify.render_json(verify.verify_recording(recording))
    assert "é.txt" in text and text.count("\n  \"") == len(json.loads(text))
    assert "\\u00e9" in verify.render_json(verify.verify_recording(recording), ascii_only=True)


def test_the_json_report_lists_only_gaps_beyond_tolerance() -> None:
    report = verify.VerifyReport("r", "r/manifest.jsonl")
    report.steps += [verify.Gap("a", "b", 1, "vide", 10, 10), verify.Gap("a", "c", 2, "soun",
                                                                         11, 10)]
    report.events["marker"] = 2
    data = report.to_json()
    assert [gap["after"] for gap in data["gaps"]] == ["c"]
    assert data["events"] == {"marker": 2} and data["ok"] is True
    assert data["first_problem"] is None


def _keys_sorted_everywhere(text: str) -> bool:
    orders: list[list[str]] = []
    json.loads(text, object_pairs_hook=lambda pairs: orders.append([k for k, _ in pairs]) or {})
    return all(keys == sorted(keys) for keys in orders) and len(orders) > 5


def test_every_object_of_the_json_report_is_sorted_and_indented(recording: Path) -> None:
    report = verify.verify_recording(recording)
    text = verify.render_json(report)
    assert _keys_sorted_everywhere(text) and text.startswith('{\n  "device_id": "cam7",\n')
    (recording / "b\udcffd.mp4").write_bytes(b"x")  # the ASCII fallback: sorted and indented too
    text = verify.render_json(verify.verify_recording(recording))
    assert _keys_sorted_everywhere(text) and text.startswith('{\n  "device_id": "cam7",\n')


def test_the_human_report_says_broken_only_for_the_manifests_own_problems() -> None:
    report = verify.VerifyReport("r", "r/manifest.jsonl", lines=3)
    report.problems.append(verify.Problem(P.SHA256, "a.mp4", "m", line=2, file="a.mp4"))
    report.problems.append(verify.Problem(P.NO_MANIFEST, "manifest.jsonl", "m"))
    assert "manifest    3 lines, NOT sealed, chain and signatures intact" in \
        verify.render_human(report).splitlines()
    report.problems.append(verify.Problem(manifest.LineProblemCode.SEQ, "l", "m", line=2))
    assert "manifest    3 lines, NOT sealed, chain and signatures BROKEN" in \
        verify.render_human(report).splitlines()


def test_twenty_problems_are_all_shown_and_twenty_one_are_not() -> None:
    report = verify.VerifyReport("r", "r/manifest.jsonl")
    report.problems += [verify.Problem(P.EXTRA_FILE, f"f{n}", "m") for n in range(20)]
    out = verify.render_human(report).splitlines()
    assert out[-21:] == ["problems (20):", *[f"  f{n:<2}  m" for n in range(20)]]
    report.problems.append(verify.Problem(P.EXTRA_FILE, "g", "m"))
    assert verify.render_human(report).splitlines()[-1] == "  … and 1 more (all with --json)"


def test_not_regular_says_what_the_file_is() -> None:
    error = verify._NotRegular("a socket")
    assert (str(error), error.kind) == ("a socket", "a socket")


def test_the_tolerance_adds_each_tracks_longest_sample_and_largest_reordering() -> None:
    def run(track_id: int, offsets: tuple[int, ...]) -> SimpleNamespace:
        return SimpleNamespace(track_id=track_id, composition_offsets=offsets)

    def timing(track_id: int, longest: int) -> SimpleNamespace:
        return SimpleNamespace(track=SimpleNamespace(track_id=track_id),
                               max_sample_duration=longest, to_us=lambda ticks: ticks * 10)

    structure = SimpleNamespace(fragments=[
        SimpleNamespace(runs=[run(1, (0, -300, 600)), run(2, ())]),
        SimpleNamespace(runs=[run(1, (200,)), run(2, (5,))])])
    timings = {1: timing(1, 40), 2: timing(2, 20), 3: timing(3, 7)}  # track 3 has no runs
    # 1 ms, then per track (longest sample + largest |offset|) in µs
    assert verify._tolerance_us(structure, timings) == \
        1000 + (400 + 6000) + (200 + 50) + (70 + 0)


def test_reading_a_segment_failing_is_unreadable_not_changed(recording: Path) -> None:
    # /proc/self/mem is a regular file whose first page cannot be read: EIO, for real
    (recording / NAMES[1]).unlink()
    (recording / NAMES[1]).symlink_to("/proc/self/mem")
    report = verify.verify_recording(recording)
    assert found(report) == [(P.UNREADABLE, NAMES[1], 4, NAMES[1])]
    assert report.problems[0].message == \
        "listed on line 4, but reading it failed (Input/output error)"
    assert report.segments[1].present is True and report.segments[1].size_ok is None


def test_reading_the_boxes_failing_is_unreadable(recording: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(file: Any) -> Any:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(verify.bmff, "read_segment", failing)
    report = verify.verify_recording(recording)
    assert found(report) == [(P.UNREADABLE, name, line, name)
                             for name, line in zip(NAMES, (2, 4, 5))]
    assert report.problems[0].message == "reading its boxes failed (Input/output error)"
    assert [s.boxes_ok for s in report.segments] == [None, None, None]


def test_bytes_of_a_segment_listed_twice_are_not_called_a_swap(
        recording: Path, key: DeviceKey, entries: list[SealedSegment]) -> None:
    (recording / "manifest.jsonl").unlink()
    other = replace(entries[0], sha256=entries[1].sha256)
    write_manifest(recording, key, [other, entries[0]])
    report = verify.verify_recording(recording)
    shas = [p for p in report.problems if p.code is P.SHA256]
    assert [(p.line, p.message.split(": ", 1)[1]) for p in shas] == \
        [(2, "its bytes were changed after it was sealed")]


def test_an_empty_manifest_or_a_headless_one_names_no_recording(recording: Path) -> None:
    (recording / "manifest.jsonl").write_bytes(b"")
    report = verify.verify_recording(recording)
    assert report.problems[0].code is manifest.LineProblemCode.EMPTY
    assert report.recording_id is None and report.lines == 0
    (recording / "manifest.jsonl").write_bytes(
        b'{"device_id":"x","officer_id":"y","recording_id":"z","type":"event"}\n')
    report = verify.verify_recording(recording)
    assert (report.recording_id, report.device_id, report.officer_id) == (None, None, None)


def test_events_are_counted_by_kind_even_on_damaged_lines(recording: Path) -> None:
    (recording / "manifest.jsonl").write_bytes(
        b'{"event":"marker","type":"event"}\n' * 2 + b'{"event":7,"type":"event"}\n'
        + b'{"event":"stop","type":"event"}\n')
    assert verify.verify_recording(recording).events == {"marker": 2, "stop": 1}


def test_a_hole_inside_a_segment_is_a_gap_even_after_an_unreadable_segment(
        recording: Path, key: DeviceKey, entries: list[SealedSegment]) -> None:
    holed = _with_a_hole()
    for name in (*NAMES, "manifest.jsonl"):
        (recording / name).unlink()
    (recording / "000002.mp4").write_bytes(holed)
    missing = replace(entries[0], first_pts_us=START_US - 3_000_000,
                      last_pts_us=START_US - 2_000_000)
    listed = replace(entries[0], file="000002.mp4", bytes=len(holed), fragments=4,
                     sha256=hashlib.sha256(holed).hexdigest(), last_pts_us=entries[2].last_pts_us)
    write_manifest(recording, key, [missing, listed])
    report = verify.verify_recording(recording)
    assert found(report) == [(P.MISSING_FILE, NAMES[0], 2, NAMES[0])] + \
        [(P.GAP, "000002.mp4 -> 000002.mp4 fragment 5", None, "000002.mp4")] * 2
    assert report.problems[1].message == (
        "vide track 1: a gap of 2000000 µs (2.000 s) in decode time (tolerance 34333 µs): media "
        "is missing or out of order")
    assert report.problems[2].message == (
        "soun track 2: a gap of 2005333 µs (2.005 s) in decode time (tolerance 22333 µs): media "
        "is missing or out of order")
    assert [(s.before, s.after, s.track_id, s.handler) for s in report.steps] == \
        [("000002.mp4", "000002.mp4 fragment 5", 1, "vide"),
         ("000002.mp4", "000002.mp4 fragment 5", 2, "soun")]
