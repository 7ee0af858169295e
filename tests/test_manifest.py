"""The manifest: canonical lines, the prev chain, Ed25519 signatures, fsync per line, reopening.

External oracles: `sha256sum` recomputes each `prev`, and `openssl pkeyutl` checks each `sig`
through exactly the shell recipe documented in recorder/integrity/manifest.py.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.integrity import manifest
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import (
    EventKind,
    LineProblemCode,
    ManifestFormatError,
    ManifestIntegrityError,
    ManifestStateError,
    ManifestWriteError,
    ManifestWriter,
    RecordingHeader,
)
from recorder.integrity.sealed_segment import SealedSegment

HEADER = RecordingHeader(recording_id="20261123T070427Z-cam7", device_id="cam7",
                         officer_id="PC 1234", utc_start="2026-11-23T07:04:27.000000Z",
                         monotonic_start_us=5_000_000, clock_source="ntp",
                         settings={"pre_event_seconds": 30, "audio_pre_event": False})


def segment(index: int, size: int = 1000) -> SealedSegment:
    return SealedSegment(index=index, file=f"{index:06d}.mp4", bytes=size,
                         sha256=hashlib.sha256(str(index).encode()).hexdigest(),
                         first_pts_us=index * 30_000_000,
                         last_pts_us=index * 30_000_000 + 29_966_666,
                         utc_start="2026-11-23T07:04:27.000000Z",
                         utc_end="2026-11-23T07:04:57.000000Z", fragments=15, recovered=False)


@pytest.fixture()
def key(tmp_path: Path) -> DeviceKey:
    return DeviceKey.load_or_create(tmp_path / "data")


def write_recording(directory: Path, key: DeviceKey, segments: int = 2) -> Path:
    directory.mkdir(exist_ok=True)
    with ManifestWriter.create(directory, key, HEADER) as writer:
        for index in range(1, segments + 1):
            writer.append_segment(segment(index))
            if index == 1:
                writer.append_event(EventKind.MARKER, "2026-11-23T07:04:30.000000Z",
                                    pts_us=33_000_000)
        writer.append_event(EventKind.STEALTH, "2026-11-23T07:05:00.000000Z",
                            detail={"on": True})
        writer.seal("2026-11-23T07:06:00.000000Z")
    return directory / manifest.MANIFEST_NAME


# --- canonical encoding


def test_canonical_form_sorts_keys_without_spaces_and_keeps_utf8() -> None:
    assert manifest.canonical_bytes({"b": 1, "a": {"z": "é", "y": [True, None]}}) == \
        '{"a":{"y":[true,null],"z":"é"},"b":1}'.encode()


@pytest.mark.parametrize("value, match", [
    ({"x": 1.5}, "floats are not allowed"),
    ({"x": 2**53}, "outside"),
    ({"é": 1}, "ASCII"),
    ({"x": {"sig": "y"}}, "reserved"),
    ({"x": b"bytes"}, "cannot be stored"),
    ({"x": "\ud800"}, "not valid Unicode"),
])
def test_values_without_a_canonical_form_are_refused(value: dict[str, Any], match: str) -> None:
    with pytest.raises(ManifestFormatError, match=match):
        manifest.canonical_bytes(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127), max_size=6).filter(
        lambda k: k != "sig"), children, max_size=4),
    max_leaves=12)


@given(st.dictionaries(st.text(alphabet="abcdefgh", min_size=1, max_size=5), json_values,
                       max_size=6))
def test_canonical_form_parses_back_to_the_same_object_and_is_stable(obj: dict[str, Any]) -> None:
    data = manifest.canonical_bytes(obj)
    assert b"\n" not in data
    parsed = manifest.parse_line(data)
    assert parsed == obj
    assert manifest.canonical_bytes(parsed) == data
    # json.loads of the standard library agrees (our parser only adds strictness)
    assert json.loads(data) == obj


@pytest.mark.parametrize("line", [b'{"a":1,"a":2}', b'{"a":1.0}', b'{"a":NaN}', b'[1]',
                                  b'\xff'])
def test_strict_parser_refuses_duplicates_floats_constants_non_objects_and_bad_utf8(
        line: bytes) -> None:
    with pytest.raises(ValueError):
        manifest.parse_line(line)


# --- writing and checking


def test_written_manifest_checks_clean_and_has_the_documented_shape(tmp_path: Path,
                                                                    key: DeviceKey) -> None:
    path = write_recording(tmp_path / "rec", key)
    data = path.read_bytes()
    check = manifest.check_manifest(data)
    assert check.problems == [] and check.sealed and check.key_source == "header"
    types = [line["type"] for line in check.lines]
    assert types == ["header", "segment", "event", "segment", "event", "sealed"]
    header = check.lines[0]
    assert header["seq"] == 1 and header["prev"] == "0" * 64
    assert header["key_fingerprint"] == key.fingerprint
    assert header["format"] == "bwv-manifest/1"
    assert check.lines[1] == {**segment(1).as_dict(), "type": "segment", "seq": 2,
                              "prev": check.lines[1]["prev"], "sig": check.lines[1]["sig"]}
    assert check.lines[-1]["segments"] == 2 and check.lines[-1]["bytes"] == 2000
    for stored in check.stored:
        assert stored.endswith(b"\n") and len(manifest.parse_line(stored[:-1])["sig"]) == 88


def test_each_prev_is_the_sha256sum_of_the_previous_line(tmp_path: Path,
                                                         key: DeviceKey) -> None:
    path = write_recording(tmp_path / "rec", key)
    lines = path.read_bytes().splitlines()
    for number in range(1, len(lines)):
        digest = subprocess.run(f"sed -n {number}p {path} | sha256sum", shell=True, check=True,
                                capture_output=True, text=True).stdout.split()[0]
        assert json.loads(lines[number])["prev"] == digest


OPENSSL_CHECK = """
set -e
sed -n {n}p manifest.jsonl | sed 's/,"sig":"[^"]*"//' | tr -d '\\n' > msg
sed -n {n}p manifest.jsonl | sed 's/.*,"sig":"\\([^"]*\\)".*/\\1/' | base64 -d > sig
openssl pkeyutl -verify -pubin -inkey device.pem -rawin -in msg -sigfile sig
"""


def test_openssl_verifies_every_line_with_the_documented_recipe(tmp_path: Path,
                                                                key: DeviceKey) -> None:
    path = write_recording(tmp_path / "rec", key)
    (path.parent / "device.pem").write_text(key.public_key_pem)
    count = len(path.read_bytes().splitlines())
    for number in range(1, count + 1):
        result = subprocess.run(OPENSSL_CHECK.format(n=number), shell=True, cwd=path.parent,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "Signature Verified Successfully" in result.stdout


def test_openssl_rejects_an_edited_line(tmp_path: Path, key: DeviceKey) -> None:
    path = write_recording(tmp_path / "rec", key)
    (path.parent / "device.pem").write_text(key.public_key_pem)
    path.write_bytes(path.read_bytes().replace(b'"bytes":1000', b'"bytes":1001', 1))
    result = subprocess.run(OPENSSL_CHECK.format(n=2), shell=True, cwd=path.parent,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "Signature Verification Failure" in result.stdout + result.stderr


def test_header_public_key_is_the_pem_body_so_openssl_can_use_it_offline(
        tmp_path: Path, key: DeviceKey) -> None:
    path = write_recording(tmp_path / "rec", key)
    script = ("printf -- '-----BEGIN PUBLIC KEY-----\\n%s\\n-----END PUBLIC KEY-----\\n' "
              "\"$(head -n 1 manifest.jsonl | jq -r .public_key)\" > device.pem\n"
              + OPENSSL_CHECK.format(n=1))
    result = subprocess.run(script, shell=True, cwd=path.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (path.parent / "device.pem").read_text() == key.public_key_pem


def edit_lines(path: Path, edit: Any) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(edit(lines)))


@pytest.mark.parametrize("name, edit, line, code", [
    ("delete", lambda ls: ls[:2] + ls[3:], 3, LineProblemCode.SEQ),
    ("duplicate", lambda ls: ls[:3] + ls[2:], 4, LineProblemCode.SEQ),
    ("reorder", lambda ls: ls[:2] + [ls[3], ls[2]] + ls[4:], 3, LineProblemCode.SEQ),
    ("drop_last", lambda ls: ls[:-1], 5, LineProblemCode.NOT_SEALED),
    ("edit", lambda ls: ls[:1] + [ls[1].replace(b'"fragments":15', b'"fragments":14')] + ls[2:],
     2, LineProblemCode.SIGNATURE),
    ("spaces", lambda ls: ls[:1] + [ls[1].replace(b",", b", ")] + ls[2:], 2,
     LineProblemCode.NOT_CANONICAL),
    ("truncate", lambda ls: ls[:-1] + [ls[-1][:20]], 6, LineProblemCode.PARTIAL_LINE),
])
def test_changes_to_the_lines_are_caught_at_the_first_changed_line(
        tmp_path: Path, key: DeviceKey, name: str, edit: Any, line: int,
        code: LineProblemCode) -> None:
    path = write_recording(tmp_path / "rec", key)
    edit_lines(path, edit)
    check = manifest.check_manifest(path.read_bytes())
    assert check.problems, name
    first = check.problems[0]
    assert (first.line, first.code) == (line, code), check.problems


def test_a_resigned_manifest_is_caught_only_against_the_trusted_key(tmp_path: Path,
                                                                    key: DeviceKey) -> None:
    thief = DeviceKey.load_or_create(tmp_path / "thief")
    path = write_recording(tmp_path / "rec", thief)
    assert manifest.check_manifest(path.read_bytes()).ok
    check = manifest.check_manifest(path.read_bytes(), trusted_key=key.public_key)
    assert check.problems[0].code is LineProblemCode.KEY
    assert "not the trusted key" in check.problems[0].message


def test_segment_index_must_follow_and_sealed_takes_no_more_lines(tmp_path: Path,
                                                                  key: DeviceKey) -> None:
    with ManifestWriter.create(tmp_path, key, HEADER) as writer:
        with pytest.raises(ManifestStateError, match="expected 1"):
            writer.append_segment(segment(2))
        writer.append_segment(segment(1))
        writer.seal("2026-11-23T07:06:00.000000Z")
        with pytest.raises(ManifestStateError, match="sealed"):
            writer.append_event(EventKind.MARKER, "2026-11-23T07:06:01.000000Z")
    with pytest.raises(FileExistsError):
        ManifestWriter.create(tmp_path, key, HEADER)


# --- durability: fsync per line, faults mid-append, reopening


def test_every_line_is_fsynced_before_the_append_returns(tmp_path: Path, key: DeviceKey,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.fstat(fd).st_size)

    monkeypatch.setattr(manifest.os, "fsync", recording_fsync)
    with ManifestWriter.create(tmp_path, key, HEADER) as writer:
        line = writer.append_segment(segment(1))
        size = (tmp_path / "manifest.jsonl").stat().st_size
        assert synced[-1] == size and line.stored == (tmp_path / "manifest.jsonl").read_bytes()[
            -len(line.stored):]


def fail_write_after(monkeypatch: pytest.MonkeyPatch, keep: int) -> None:
    """The next os.write writes only ``keep`` bytes and then the disk is full."""
    real_write = os.write
    calls = {"n": 0}

    def failing_write(fd: int, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1 and keep:
            return real_write(fd, bytes(data)[:keep])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(manifest.os, "write", failing_write)


@pytest.mark.parametrize("keep", [0, 1, 57, 200])
def test_a_write_failing_mid_line_leaves_verifiable_lines_and_reopen_repairs_the_tail(
        tmp_path: Path, key: DeviceKey, monkeypatch: pytest.MonkeyPatch, keep: int) -> None:
    writer = ManifestWriter.create(tmp_path, key, HEADER)
    writer.append_segment(segment(1))
    with monkeypatch.context() as patch:
        fail_write_after(patch, keep)
        with pytest.raises(ManifestWriteError, match="line 3.*No space left.*reopen"):
            writer.append_segment(segment(2))
    with pytest.raises(ManifestStateError, match="earlier write.*failed"):
        writer.append_segment(segment(2))
    writer.close()

    data = (tmp_path / "manifest.jsonl").read_bytes()
    check = manifest.check_manifest(data, require_sealed=False)
    assert len(check.lines) == 2 and len(check.partial_tail) == keep
    assert [p.code for p in check.problems] == ([LineProblemCode.PARTIAL_LINE] if keep else [])

    with ManifestWriter.reopen(tmp_path, key, utc="2026-11-23T08:00:00.000000Z") as reopened:
        assert (reopened.repair is not None) == bool(keep)
        reopened.append_segment(segment(2))
        reopened.seal("2026-11-23T08:00:01.000000Z", reason="recovered")
    check = manifest.check_manifest((tmp_path / "manifest.jsonl").read_bytes(),
                                    trusted_key=key.public_key)
    assert check.ok, check.problems
    events = [line for line in check.lines if line["type"] == "event"]
    if keep:
        assert events[0]["event"] == "manifest_repaired"
        assert events[0]["detail"] == {
            "dropped_bytes": keep, "dropped_sha256": hashlib.sha256(data[-keep:]).hexdigest()}
    else:
        assert events == []


def test_an_fsync_failure_after_a_whole_line_keeps_that_line_in_the_chain(
        tmp_path: Path, key: DeviceKey, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = ManifestWriter.create(tmp_path, key, HEADER)
    with monkeypatch.context() as patch:
        def failing_fsync(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")
        patch.setattr(manifest.os, "fsync", failing_fsync)
        with pytest.raises(ManifestWriteError, match="Input/output error"):
            writer.append_segment(segment(1))
    writer.close()
    with ManifestWriter.reopen(tmp_path, key) as reopened:
        assert reopened.repair is None and reopened.next_seq == 3
        reopened.append_segment(segment(2))
        reopened.seal("2026-11-23T08:00:01.000000Z")
    check = manifest.check_manifest((tmp_path / "manifest.jsonl").read_bytes())
    assert check.ok and check.lines[-1]["segments"] == 2


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0, 1))
def test_a_power_cut_at_any_byte_leaves_complete_lines_that_verify(
        tmp_path_factory: pytest.TempPathFactory, cut: float) -> None:
    directory = tmp_path_factory.mktemp("cut")
    key = DeviceKey.load_or_create(directory / "data")
    path = write_recording(directory / "rec", key, segments=3)
    data = path.read_bytes()
    kept = data[:int(len(data) * cut)]
    path.write_bytes(kept)
    check = manifest.check_manifest(kept, trusted_key=key.public_key, require_sealed=False)
    assert all(p.code in (LineProblemCode.PARTIAL_LINE, LineProblemCode.EMPTY)
               for p in check.problems)
    assert b"".join(check.stored) + check.partial_tail == kept
    if not check.lines:
        with pytest.raises(ManifestIntegrityError, match="no complete header"):
            ManifestWriter.reopen(directory / "rec", key)
    elif check.sealed:
        with pytest.raises(ManifestStateError, match="sealed"):
            ManifestWriter.reopen(directory / "rec", key)
    else:
        with ManifestWriter.reopen(directory / "rec", key) as writer:
            writer.seal("2026-11-23T08:00:01.000000Z", reason="recovered")
        assert manifest.check_manifest(path.read_bytes(), trusted_key=key.public_key).ok


def test_reopen_refuses_a_tampered_manifest_or_another_devices_key(tmp_path: Path,
                                                                    key: DeviceKey) -> None:
    with ManifestWriter.create(tmp_path, key, HEADER) as writer:
        writer.append_segment(segment(1))
    other = DeviceKey.load_or_create(tmp_path / "other")
    with pytest.raises(ManifestIntegrityError, match="line 1: the header's public key"):
        ManifestWriter.reopen(tmp_path, other)
    edit_lines(tmp_path / "manifest.jsonl",
               lambda ls: [ls[0], ls[1].replace(b'"bytes":1000', b'"bytes":9')])
    with pytest.raises(ManifestIntegrityError, match="line 2: the signature does not verify"):
        ManifestWriter.reopen(tmp_path, key)


def test_a_header_with_a_float_setting_is_refused_before_any_file_exists(
        tmp_path: Path, key: DeviceKey) -> None:
    from dataclasses import replace

    with pytest.raises(ManifestFormatError, match=r"line\.settings\.fps: floats"):
        ManifestWriter.create(tmp_path, key, replace(HEADER, settings={"fps": 29.97}))
    assert not (tmp_path / "manifest.jsonl").exists()
