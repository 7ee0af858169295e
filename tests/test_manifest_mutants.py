"""Tests that kill the mutants of recorder/integrity/manifest.py (`bash scripts/mutation manifest`).

Every rejection of `check_manifest` is asserted by its exact problem codes and the lines they
point at, on one signed recording shared by the module and forged copies of it: the forger below
signs and chains lines independently of the module under test (json.dumps, hashlib and the device
key), so that a changed line carries only the one fault a test means, with a correct seq, prev and
signature around it.
"""

from __future__ import annotations

import base64
import datetime
import errno
import hashlib
import json
import os
import re
import stat
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from recorder.integrity import keys, manifest
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import (
    EventKind,
    LineProblemCode,
    ManifestFormatError,
    ManifestIntegrityError,
    ManifestReadError,
    ManifestStateError,
    ManifestWriter,
    RecordingHeader,
)
from recorder.integrity.sealed_segment import SealedSegment

C = LineProblemCode
HEADER = RecordingHeader(recording_id="20261123T070427Z-cam7", device_id="cam7",
                         officer_id="PC 1234", utc_start="2026-11-23T07:04:27.000000Z",
                         monotonic_start_us=5_000_000, clock_source="ntp",
                         settings={"pre_event_seconds": 30})
Bodies = list[dict[str, Any]]


def segment(index: int, size: int = 1000) -> SealedSegment:
    return SealedSegment(index=index, file=f"{index:06d}.mp4", bytes=size,
                         sha256=hashlib.sha256(str(index).encode()).hexdigest(),
                         first_pts_us=index * 1_000_000, last_pts_us=index * 1_000_000 + 966_666,
                         utc_start="2026-11-23T07:04:27.000000Z",
                         utc_end="2026-11-23T07:04:28.000000Z", fragments=1, recovered=False)


def canon(obj: dict[str, Any]) -> bytes:
    """The canonical form, computed here rather than by the module under test."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def forge(key: DeviceKey, bodies: Bodies, signers: dict[int, DeviceKey] | None = None) -> bytes:
    """Sign and chain ``bodies`` as the recorder does; a body's own seq, prev or sig is kept, and
    line N is signed by ``signers[N]`` when given."""
    out, prev = b"", "0" * 64
    for number, body in enumerate(bodies, 1):
        obj = {"seq": number, "prev": prev, **body}
        if "sig" not in body:
            unsigned = {name: value for name, value in obj.items() if name != "sig"}
            signer = (signers or {}).get(number, key)
            obj["sig"] = base64.b64encode(signer.sign(canon(unsigned))).decode()
        line = canon(obj) + b"\n"
        out, prev = out + line, hashlib.sha256(line).hexdigest()
    return out


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> DeviceKey:
    return DeviceKey.load_or_create(tmp_path_factory.mktemp("key"))


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> DeviceKey:
    return DeviceKey.load_or_create(tmp_path_factory.mktemp("other"))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, key: DeviceKey) -> bytes:
    """A sealed manifest as the writer makes it: header, segment, marker, segment, stealth,
    sealed."""
    directory = tmp_path_factory.mktemp("rec")
    with ManifestWriter.create(directory, key, HEADER) as writer:
        writer.append_segment(segment(1))
        writer.append_event(EventKind.MARKER, "2026-11-23T07:04:30.000000Z", pts_us=1_500_000)
        writer.append_segment(segment(2, 500))
        writer.append_event(EventKind.STEALTH, "2026-11-23T07:05:00.000000Z", detail={"on": True})
        writer.seal("2026-11-23T07:06:00.000000Z")
    return (directory / manifest.MANIFEST_NAME).read_bytes()


@pytest.fixture()
def bodies(written: bytes) -> Bodies:
    """The written lines without seq, prev and sig: edit them, then `forge`."""
    return [{name: value for name, value in json.loads(line).items()
             if name not in ("seq", "prev", "sig")} for line in written.splitlines()]


def found(data: bytes, **options: Any) -> list[tuple[int, LineProblemCode]]:
    return [(item.line, item.code) for item in manifest.check_manifest(data, **options).problems]


def lines_of(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


# --- the writer


def test_written_lines_carry_exactly_the_documented_fields(written: bytes, key: DeviceKey) -> None:
    """The first test of `written`: mutmut runs only this one against a mutant of the writer,
    since the module's recording is made while it runs."""
    objs = [json.loads(line) for line in written.splitlines()]
    assert objs[0] == {
        "type": "header", "format": "bwv-manifest/1", "recording_id": HEADER.recording_id,
        "device_id": "cam7", "officer_id": "PC 1234",
        "public_key": keys.public_key_spki_b64(key.public_key),
        "key_fingerprint": key.fingerprint, "utc_start": HEADER.utc_start,
        "monotonic_start_us": 5_000_000, "clock_source": "ntp",
        "settings": {"pre_event_seconds": 30}, "seq": 1, "prev": "0" * 64,
        "sig": objs[0]["sig"]}
    strip = [{k: v for k, v in obj.items() if k not in ("prev", "sig")} for obj in objs[1:]]
    assert strip[0] == {"type": "segment", "seq": 2, **segment(1).as_dict()}
    assert strip[2] == {"type": "segment", "seq": 4, **segment(2, 500).as_dict()}
    assert strip[1] == {"type": "event", "event": "marker", "utc": "2026-11-23T07:04:30.000000Z",
                        "pts_us": 1_500_000, "seq": 3}
    assert strip[3] == {"type": "event", "event": "stealth", "seq": 5, "detail": {"on": True},
                        "utc": "2026-11-23T07:05:00.000000Z"}
    assert strip[4] == {"type": "sealed", "utc": "2026-11-23T07:06:00.000000Z", "seq": 6,
                        "reason": "stopped", "segments": 2, "bytes": 1500}
    for number, line in enumerate(lines_of(written)[:-1], 2):
        assert objs[number - 1]["prev"] == hashlib.sha256(line).hexdigest()
    for obj, line in zip(objs, lines_of(written)):
        unsigned = {name: value for name, value in obj.items() if name != "sig"}
        assert keys.verify_signature(key.public_key, base64.b64decode(obj["sig"]),
                                     canon(unsigned))
        assert line == canon(obj) + b"\n"


def test_the_forger_reproduces_the_writer_byte_for_byte(written: bytes, bodies: Bodies,
                                                        key: DeviceKey) -> None:
    assert forge(key, bodies) == written


def test_an_event_at_pts_zero_keeps_its_pts_and_an_empty_detail_is_left_out(
        tmp_path: Path, key: DeviceKey) -> None:
    with ManifestWriter.create(tmp_path, key, HEADER) as writer:
        zero = writer.append_event(EventKind.TRIGGER, "2026-11-23T07:04:27.000000Z", pts_us=0,
                                   detail={})
        bare = writer.append_event(EventKind.MARKER, "2026-11-23T07:04:28.000000Z")
        assert writer.next_seq == 4 and not writer.sealed
        sealed = writer.seal("2026-11-23T07:04:29.000000Z", reason="storage_full")
        assert writer.sealed
    assert zero.seq == 2 and zero.obj["pts_us"] == 0 and "detail" not in zero.obj
    assert "pts_us" not in bare.obj and "detail" not in bare.obj
    assert bare.obj["event"] == "marker" and bare.hash == hashlib.sha256(bare.stored).hexdigest()
    assert (sealed.obj["reason"], sealed.obj["segments"], sealed.obj["bytes"]) == \
        ("storage_full", 0, 0)
    assert manifest.check_manifest((tmp_path / "manifest.jsonl").read_bytes()).ok


def test_the_manifest_is_private_and_the_writer_refuses_appends_once_closed(
        tmp_path: Path, key: DeviceKey) -> None:
    os.chmod(tmp_path, 0o755)
    writer = ManifestWriter.create(tmp_path, key, HEADER)
    assert writer.__enter__() is writer
    path = tmp_path / "manifest.jsonl"
    assert writer.path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ManifestStateError, match="is closed"):
        writer.append_segment(segment(1))
    os.chmod(path, 0o644)
    with ManifestWriter.reopen(tmp_path, key) as reopened:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert reopened.next_seq == 2 and reopened.repair is None
    # the file is only ever appended to: a reopened writer never rewrites the header
    assert path.read_bytes().count(b'"type":"header"') == 1


def test_reopen_continues_the_count_the_totals_and_the_chain(tmp_path: Path,
                                                             key: DeviceKey) -> None:
    with ManifestWriter.create(tmp_path, key, HEADER) as writer:
        writer.append_segment(segment(1, 700))
        writer.append_segment(segment(2, 300))
    with ManifestWriter.reopen(tmp_path, key) as writer:
        assert writer.next_seq == 4
        with pytest.raises(ManifestStateError, match="expected 3"):
            writer.append_segment(segment(4))
        writer.append_segment(segment(3, 5))
        sealed = writer.seal("2026-11-23T08:00:00.000000Z")
    assert (sealed.seq, sealed.obj["segments"], sealed.obj["bytes"]) == (5, 3, 1005)
    assert found((tmp_path / "manifest.jsonl").read_bytes(), trusted_key=key.public_key) == []


def test_reopen_cuts_exactly_the_partial_line_and_signs_the_repair(tmp_path: Path,
                                                                   key: DeviceKey) -> None:
    with ManifestWriter.create(tmp_path, key, HEADER) as writer:
        writer.append_segment(segment(1))
    path = tmp_path / "manifest.jsonl"
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"partial')
    with ManifestWriter.reopen(tmp_path, key) as writer:
        assert writer.repair is not None and writer.next_seq == 4
        assert path.read_bytes() == whole + writer.repair.stored
        detail = writer.repair.obj["detail"]
        assert detail == {"dropped_bytes": 9,
                          "dropped_sha256": hashlib.sha256(b'{"partial').hexdigest()}
        utc = writer.repair.obj["utc"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", utc)
    assert writer.repair.obj["event"] == "manifest_repaired"


def test_reopen_refuses_sealed_empty_and_damaged_manifests(tmp_path: Path, key: DeviceKey,
                                                           written: bytes) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(written)
    with pytest.raises(ManifestStateError, match="is sealed"):
        ManifestWriter.reopen(tmp_path, key)
    path.write_bytes(b"")
    with pytest.raises(ManifestIntegrityError, match="no complete header line"):
        ManifestWriter.reopen(tmp_path, key)
    path.write_bytes(b'{"type":"head')
    with pytest.raises(ManifestIntegrityError, match="no complete header line"):
        ManifestWriter.reopen(tmp_path, key)
    assert path.read_bytes() == b'{"type":"head'  # refused before anything is cut
    path.write_bytes(lines_of(written)[0] + b"{}\n")
    with pytest.raises(ManifestIntegrityError, match="line 2: field 'seq' is missing"):
        ManifestWriter.reopen(tmp_path, key)


def test_utc_now_is_microsecond_iso8601_utc() -> None:
    before = datetime.datetime.now(datetime.timezone.utc)
    text = manifest.utc_now()
    after = datetime.datetime.now(datetime.timezone.utc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text), text
    parsed = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    assert before <= parsed <= after


# --- canonical encoding and strict parsing


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_is_refused_exactly_past_the_limit() -> None:
    assert manifest.canonical_bytes({"x": nested(manifest.MAX_NESTING - 1)})
    with pytest.raises(ManifestFormatError, match="nested more than 32 deep"):
        manifest.canonical_bytes({"x": nested(manifest.MAX_NESTING)})
    assert manifest.canonical_bytes({"x": [{"y": nested(manifest.MAX_NESTING - 3)}]})
    with pytest.raises(ManifestFormatError, match="nested"):
        manifest.canonical_bytes({"x": [{"y": nested(manifest.MAX_NESTING - 2)}]})


@pytest.mark.parametrize("value", [2**53 - 1, -(2**53) + 1, 0, True, None, "", "é"])
def test_values_at_the_edges_of_the_format_encode(value: Any) -> None:
    assert manifest.canonical_bytes({"x": value}) == canon({"x": value})


@pytest.mark.parametrize("value, match", [
    (2**53, "outside"), (-(2**53), "outside"), ({1: 2}, "ASCII string"),
    ({"x": {"é": 1}}, "ASCII"),
    ([{"sig": 1}], "reserved"), ({1.0}, "set cannot be stored"), ([0.5], "floats"),
])
def test_values_without_a_canonical_form_are_refused_at_any_depth(value: Any, match: str) -> None:
    with pytest.raises(ManifestFormatError, match=match):
        manifest.canonical_bytes({"x": value})


def test_only_a_top_level_sig_is_allowed_and_signed_bytes_leave_out_only_it() -> None:
    obj = {"type": "event", "sig": "abc", "b": (1, "ü")}
    assert manifest.canonical_bytes(obj) == '{"b":[1,"ü"],"sig":"abc","type":"event"}'.encode()
    assert manifest.signed_bytes(obj) == '{"b":[1,"ü"],"type":"event"}'.encode()
    assert manifest.line_hash(b"x\n") == hashlib.sha256(b"x\n").hexdigest()


@pytest.mark.parametrize("data, match", [
    (b'{"a":1,"a":2}', "key 'a' appears twice"), (b'{"a":1e3}', "number 1e3 is not an integer"),
    (b'{"a":Infinity}', "Infinity is not JSON"), (b'"text"', "must be a JSON object, not str"),
])
def test_the_strict_parser_says_what_is_wrong(data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        manifest.parse_line(data)
    assert manifest.parse_line(b'{"a":[1,{"b":null}]}') == {"a": [1, {"b": None}]}


def test_split_lines_keeps_newlines_and_the_tail() -> None:
    assert manifest.split_lines(b"") == ([], b"")
    assert manifest.split_lines(b"a\n") == ([b"a\n"], b"")
    assert manifest.split_lines(b"a\nb\nc") == ([b"a\n", b"b\n"], b"c")
    assert manifest.split_lines(b"abc") == ([], b"abc")


# --- reading lines into records


def test_read_lines_types_every_valid_line(written: bytes) -> None:
    read = manifest.read_lines(written)
    assert read.problems == () and read.tail == b""
    assert [type(record).__name__ for record in read.records] == \
        ["Header", "SegmentLine", "EventLine", "SegmentLine", "EventLine", "SealedLine"]
    assert read.header is read.records[0] and read.header.settings == {"pre_event_seconds": 30}
    assert [s.index for s in read.segments()] == [1, 2]
    assert [(e.event, e.pts_us, e.detail) for e in read.events()] == \
        [("marker", 1_500_000, None), ("stealth", None, {"on": True})]
    assert [line.number for line in read.of_type(manifest.LineType.SEGMENT)] == [2, 4]
    stored = lines_of(written)
    for number, record in enumerate(read.records, 1):
        assert (record.number, record.seq, record.stored) == (number, number, stored[number - 1])
        assert record.hash == hashlib.sha256(stored[number - 1]).hexdigest()
        assert record.obj == json.loads(stored[number - 1])
    assert manifest.read_records(written) == read.records


def test_an_event_whose_pts_or_detail_has_the_wrong_type_reads_as_none(
        key: DeviceKey, bodies: Bodies) -> None:
    bodies[2]["pts_us"], bodies[4]["detail"] = "1500000", ["on"]
    read = manifest.read_lines(forge(key, bodies))
    assert read.problems == ()
    assert [(e.pts_us, e.detail) for e in read.events()] == [(None, None), (None, None)]


def test_lines_that_do_not_read_have_no_record_but_say_what_they_can() -> None:
    read = manifest.read_lines(b'[1]\n{"type":7}\n{"file":"a","type":"segment"}\n')
    assert [line.record for line in read.lines] == [None, None, None]
    assert [line.type for line in read.lines] == [None, None, "segment"]
    assert read.lines[0].obj is None and read.lines[0].value("file") is None
    assert read.lines[0].not_json == "a line must be a JSON object, not list"
    assert read.lines[2].value("file") == "a" and read.lines[2].value("bytes") is None
    assert read.header is None and read.segments() == [] and read.events() == []
    assert [(p.line, p.code) for p in read.problems] == \
        [(1, C.NOT_JSON), (2, C.MISSING_FIELD), (3, C.MISSING_FIELD)]
    assert [line.number for line in read.of_type(manifest.LineType.SEGMENT)] == [3]
    check = manifest.check_manifest(b'[1]\n{"type":"x"}\n')
    assert check.lines == [{}, {"type": "x"}] and check.stored == [b"[1]\n", b'{"type":"x"}\n']


def test_read_records_raises_at_the_first_bad_line_or_a_partial_tail(written: bytes) -> None:
    stored = lines_of(written)
    with pytest.raises(ManifestReadError, match="^line 2: ") as raised:
        manifest.read_records(stored[0] + b"{}\n" + b"[]\n")
    assert (raised.value.problem.line, raised.value.problem.code) == (2, C.MISSING_FIELD)
    with pytest.raises(ManifestReadError) as raised:
        manifest.read_records(written + b'{"seq"')
    assert (raised.value.problem.line, raised.value.problem.code) == (7, C.PARTIAL_LINE)
    assert "(6 bytes without a newline)" in raised.value.problem.message


# --- check_manifest: every rejection, exact codes and lines


def test_the_written_manifest_checks_clean_against_its_own_or_the_trusted_key(
        written: bytes, key: DeviceKey) -> None:
    check = manifest.check_manifest(written)
    assert check.ok and check.sealed and check.key_source == "header"
    assert check.header_key is not None
    assert keys.public_key_raw(check.header_key) == key.public_key_raw
    trusted = manifest.check_manifest(written, trusted_key=key.public_key)
    assert trusted.ok and trusted.key_source == "trusted" and trusted.partial_tail == b""


@pytest.mark.parametrize("data, require_sealed, expected", [
    (b"", True, [(1, C.EMPTY)]),
    (b"", False, [(1, C.EMPTY)]),
    (b'{"type"', True, [(1, C.PARTIAL_LINE), (1, C.NOT_SEALED)]),
    (b'{"type"', False, [(1, C.PARTIAL_LINE)]),
    (b"\n", True, [(1, C.NOT_JSON), (1, C.NOT_SEALED)]),
])
def test_an_empty_or_headless_manifest_never_passes(
        data: bytes, require_sealed: bool, expected: list[tuple[int, LineProblemCode]]) -> None:
    check = manifest.check_manifest(data, require_sealed=require_sealed)
    assert [(p.line, p.code) for p in check.problems] == expected
    if not data:
        assert check.problems[0].message == "the manifest is empty"
    assert not check.ok and not check.sealed and check.key_source == "none"


def test_an_unsealed_manifest_fails_only_when_sealing_is_required(written: bytes) -> None:
    unsealed = b"".join(lines_of(written)[:-1])
    assert found(unsealed) == [(5, C.NOT_SEALED)]
    assert found(unsealed, require_sealed=False) == []
    assert found(unsealed + b'{"x', require_sealed=False) == [(6, C.PARTIAL_LINE)]
    assert found(unsealed + b'{"x') == [(6, C.PARTIAL_LINE), (6, C.NOT_SEALED)]
    check = manifest.check_manifest(unsealed + b'{"x', require_sealed=False)
    assert check.partial_tail == b'{"x' and len(check.stored) == 5 and not check.sealed


def replace_line(data: bytes, number: int, new: bytes) -> bytes:
    stored = lines_of(data)
    stored[number - 1] = new
    return b"".join(stored)


@pytest.mark.parametrize("new, code", [
    (b"not json\n", C.NOT_JSON), (b"[1]\n", C.NOT_JSON), (b'{"a":1,"a":1}\n', C.NOT_JSON),
    (b'{"a":1.5}\n', C.NOT_JSON), (b'{"a":NaN}\n', C.NOT_JSON), (b'{"a":"\xff"}\n', C.NOT_JSON),
    (b"{}\n", C.MISSING_FIELD),
])
def test_a_line_that_is_not_a_manifest_object_is_named_and_breaks_the_next_link(
        written: bytes, new: bytes, code: LineProblemCode) -> None:
    data = replace_line(written, 3, new)
    # line 4's prev was the hash of the old line 3; the sealed line still counts both segments
    assert found(data) == [(3, code), (4, C.CHAIN)]


def test_a_deeply_nested_line_is_not_json_not_a_crash(written: bytes) -> None:
    deep = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    assert found(replace_line(written, 3, deep)) == [(3, C.NOT_JSON), (4, C.CHAIN)]


def test_a_line_rewritten_with_spaces_is_not_canonical_though_its_signature_holds(
        written: bytes) -> None:
    data = replace_line(written, 3, lines_of(written)[2].replace(b",", b", "))
    assert found(data) == [(3, C.NOT_CANONICAL), (4, C.CHAIN)]


@pytest.mark.parametrize("value", [2**53, {"sig": "x"}, "\ud800"])
def test_a_signed_line_holding_a_value_without_canonical_form_is_refused(
        key: DeviceKey, bodies: Bodies, value: Any) -> None:
    bodies[4]["detail"] = {"v": value}
    if value == "\ud800":
        data = forge(key, bodies[:4]) + b""
        line = ('{"detail":{"v":"\\ud800"},"event":"stealth","prev":"%s","seq":5,"sig":"%s",'
                '"type":"event","utc":"2026-11-23T07:05:00.000000Z"}\n'
                % (hashlib.sha256(lines_of(data)[3]).hexdigest(), "A" * 86 + "=="))
        data += line.encode()
        assert found(data, require_sealed=False) == [(5, C.NOT_CANONICAL), (5, C.SIGNATURE)]
        return
    # a value with no canonical form: not canonical, and no signature can be checked over it
    assert found(forge(key, bodies)) == [(5, C.NOT_CANONICAL), (5, C.SIGNATURE)]


COMMON_FIELDS = [("seq", "1"), ("seq", True), ("prev", 0), ("sig", None), ("type", 1)]


@pytest.mark.parametrize("name, value", COMMON_FIELDS)
def test_a_common_field_missing_or_mistyped_is_a_missing_field(
        key: DeviceKey, bodies: Bodies, name: str, value: Any) -> None:
    bodies[2][name] = value
    check = manifest.check_manifest(forge(key, bodies))
    assert [(p.line, p.code) for p in check.problems] == [(3, C.MISSING_FIELD)]
    assert check.problems[0].message == \
        f"field {name!r} is missing or not a {'int' if name == 'seq' else 'str'}"


FIELDS = [(line_type, name, kind) for line_type, fields in manifest._FIELDS.items()
          for name, kind in fields.items()]
LINE_OF = {"header": 1, "segment": 2, "event": 3, "sealed": 6}
WRONG = {str: 1, int: "1", dict: [], bool: 0}


@pytest.mark.parametrize("line_type, name, kind", FIELDS)
def test_each_typed_field_missing_or_mistyped_is_named(
        key: DeviceKey, bodies: Bodies, line_type: str, name: str, kind: type) -> None:
    number = LINE_OF[line_type]
    for change in ("missing", "wrong", "bool"):
        edited = [dict(body) for body in bodies]
        if change == "missing":
            del edited[number - 1][name]
        elif change == "wrong":
            edited[number - 1][name] = WRONG[kind]
        elif kind is int:
            edited[number - 1][name] = True
        else:
            continue
        check = manifest.check_manifest(forge(key, edited), trusted_key=key.public_key)
        problems = [(p.line, p.code) for p in check.problems if p.line == number]
        unsealed = [(6, C.NOT_SEALED)] if line_type == "sealed" else []
        assert problems == [(number, C.MISSING_FIELD), *unsealed], (change, check.problems)
        assert check.problems[[p.line for p in check.problems].index(number)].message == \
            f"{line_type} field {name!r} is missing or not a {kind.__name__}"


def test_an_unknown_line_type_is_named(key: DeviceKey, bodies: Bodies) -> None:
    bodies[2]["type"] = "comment"
    check = manifest.check_manifest(forge(key, bodies))
    assert [(p.line, p.code) for p in check.problems] == [(3, C.MISSING_FIELD)]
    assert check.problems[0].message == \
        "type 'comment' is not one of header, segment, event, sealed"


def test_line_one_must_be_the_header(key: DeviceKey, bodies: Bodies) -> None:
    data = forge(key, bodies[1:])
    assert found(data, trusted_key=key.public_key) == [(1, C.STRUCTURE)]
    check = manifest.check_manifest(data)
    assert check.problems[0].message == "line 1 is a 'segment' line; it must be the header"
    # without a header there is no key: every line is unchecked, none passes
    assert [(p.line, p.code) for p in check.problems] == \
        [(1, C.STRUCTURE), (1, C.SIGNATURE), *[(n, C.SIGNATURE) for n in range(2, 6)]]
    assert check.header_key is None and check.key_source == "none"


def test_a_second_header_is_refused(key: DeviceKey, bodies: Bodies) -> None:
    data = forge(key, bodies[:2] + [bodies[0]] + bodies[2:])
    assert found(data) == [(3, C.STRUCTURE)]
    check = manifest.check_manifest(forge(key, bodies[:1] + bodies))
    assert [(p.line, p.code, p.message) for p in check.problems] == \
        [(2, C.STRUCTURE, "a second header line: only line 1 may be a header")]


def test_nothing_may_follow_the_sealed_line(key: DeviceKey, bodies: Bodies) -> None:
    assert found(forge(key, bodies + [bodies[2]])) == [(7, C.STRUCTURE)]
    check = manifest.check_manifest(forge(key, bodies + [bodies[-1], bodies[2]]))
    assert [(p.line, p.code) for p in check.problems] == [(7, C.STRUCTURE), (8, C.STRUCTURE)]
    assert check.problems[0].message.startswith("a line after the sealed line (line 6)")


@pytest.mark.parametrize("name", ["../000001.mp4", "sub/000001.mp4", "sub\\000001.mp4",
                                  "000001\0.mp4", ".000001.mp4", "manifest.jsonl", ""])
def test_a_segment_file_name_outside_the_directory_is_refused(
        key: DeviceKey, bodies: Bodies, name: str) -> None:
    bodies[1]["file"] = name
    assert found(forge(key, bodies)) == [(2, C.STRUCTURE)]
    assert not manifest.is_plain_file_name(name)


def test_plain_names_are_plain() -> None:
    assert manifest.is_plain_file_name("000001.mp4")
    assert manifest.is_plain_file_name("a..b")
    assert manifest.is_plain_file_name("manifest.jsonl.bak")


@pytest.mark.parametrize("line, changes", [
    (4, {"file": "000001.mp4"}),  # listed twice
    (4, {"index": 3}), (2, {"index": 0}),  # a gap, a wrong start
    (2, {"bytes": -1}), (2, {"fragments": -1}), (2, {"last_pts_us": 999_999}),
    (2, {"sha256": "A" * 64}), (2, {"sha256": "a" * 63}), (2, {"sha256": "a" * 65}),
    (2, {"sha256": "g" * 64}), (2, {"sha256": "X" * 64}),
])
def test_impossible_segment_entries_are_refused(key: DeviceKey, bodies: Bodies, line: int,
                                                changes: dict[str, Any]) -> None:
    bodies[line - 1].update(changes)
    bodies[5]["bytes"] = sum(bodies[n]["bytes"] for n in (1, 3))
    assert found(forge(key, bodies)) == [(line, C.STRUCTURE)]


def test_boundary_segment_entries_are_accepted(key: DeviceKey, bodies: Bodies) -> None:
    bodies[1].update(bytes=0, fragments=0, last_pts_us=bodies[1]["first_pts_us"],
                     sha256="0123456789abcdef" * 4)
    bodies[5]["bytes"] = 500
    assert found(forge(key, bodies)) == []


def test_the_first_of_several_segment_faults_is_the_one_named(key: DeviceKey,
                                                              bodies: Bodies) -> None:
    bodies[3].update(file="000001.mp4", index=9, bytes=-1, sha256="x")
    check = manifest.check_manifest(forge(key, bodies))
    assert [p.message for p in check.problems] == [
        "segment file '000001.mp4' is listed twice",
        "the sealed line totals 1500 bytes but the segments add up to 999"]
    bodies[3].update(file="000002.mp4")
    assert manifest.check_manifest(forge(key, bodies)).problems[0].message.startswith(
        "segment index 9 where 2 is expected")
    bodies[3].update(index=2)
    assert manifest.check_manifest(forge(key, bodies)).problems[0].message.startswith(
        "segment sizes or pts are impossible")
    bodies[3].update(bytes=500)
    assert manifest.check_manifest(forge(key, bodies)).problems[0].message == \
        "sha256 'x' is not 64 lower-case hex digits"


def test_seq_and_prev_must_match_the_line_number_and_the_previous_line(
        key: DeviceKey, bodies: Bodies) -> None:
    bodies[2]["seq"] = 4
    assert found(forge(key, bodies)) == [(3, C.SEQ)]
    del bodies[2]["seq"]
    bodies[0]["prev"] = "1" * 64
    assert found(forge(key, bodies)) == [(1, C.CHAIN)]
    bodies[0]["prev"] = "0" * 64
    bodies[3]["prev"] = hashlib.sha256(b"another line\n").hexdigest()
    check = manifest.check_manifest(forge(key, bodies))
    assert [(p.line, p.code) for p in check.problems] == [(4, C.CHAIN)]
    assert "is not the SHA-256 of line 3" in check.problems[0].message


@pytest.mark.parametrize("sig", ["not base64!", "A" * 86 + "==", "AAAA", ""])
def test_a_signature_that_is_not_a_valid_ed25519_signature_fails(
        key: DeviceKey, bodies: Bodies, sig: str) -> None:
    bodies[2]["sig"] = sig
    assert found(forge(key, bodies)) == [(3, C.SIGNATURE)]


def test_a_line_signed_by_another_key_fails_against_the_header_key(
        key: DeviceKey, other_key: DeviceKey, bodies: Bodies) -> None:
    data = forge(key, bodies, signers={3: other_key})
    check = manifest.check_manifest(data)
    assert [(p.line, p.code) for p in check.problems] == [(3, C.SIGNATURE)]
    assert "does not verify against the header's key" in check.problems[0].message
    trusted = manifest.check_manifest(data, trusted_key=key.public_key)
    assert "does not verify against the trusted key" in trusted.problems[0].message


def test_the_header_key_must_parse_match_its_fingerprint_and_the_trusted_key(
        key: DeviceKey, other_key: DeviceKey, bodies: Bodies) -> None:
    good = forge(key, bodies)
    bodies[0]["key_fingerprint"] = "0" * 64
    assert found(forge(key, bodies)) == [(1, C.KEY)]
    bodies[0]["key_fingerprint"] = key.fingerprint
    bodies[0]["public_key"] = "not a key"
    check = manifest.check_manifest(forge(key, bodies))
    assert [(p.line, p.code) for p in check.problems] == \
        [(1, C.KEY), *[(n, C.SIGNATURE) for n in range(1, 7)]]
    assert check.header_key is None
    assert manifest.check_manifest(forge(key, bodies), trusted_key=key.public_key).problems \
        == [manifest.LineProblem(1, C.KEY, check.problems[0].message)]
    # the other device's recording, checked against this device's key
    foreign = manifest.check_manifest(good, trusted_key=other_key.public_key)
    assert [(p.line, p.code) for p in foreign.problems] == \
        [(1, C.KEY), *[(n, C.SIGNATURE) for n in range(1, 7)]]
    assert foreign.header_key is not None and foreign.key_source == "trusted"
    assert keys.public_key_raw(foreign.header_key) == key.public_key_raw


def test_a_header_of_another_format_is_refused(key: DeviceKey, bodies: Bodies) -> None:
    bodies[0]["format"] = "bwv-manifest/2"
    check = manifest.check_manifest(forge(key, bodies))
    assert [(p.line, p.code, p.message) for p in check.problems] == \
        [(1, C.STRUCTURE, "format 'bwv-manifest/2' is not 'bwv-manifest/1'")]


@pytest.mark.parametrize("changes, expected", [
    ({"segments": 3}, ["the sealed line counts 3 segments but the manifest lists 2"]),
    ({"bytes": 1501}, ["the sealed line totals 1501 bytes but the segments add up to 1500"]),
    ({"segments": 1, "bytes": 0}, ["the sealed line counts 1 segments but the manifest lists 2",
                                   "the sealed line totals 0 bytes but the segments add up to "
                                   "1500"]),
])
def test_the_sealed_line_must_count_and_total_the_segments(
        key: DeviceKey, bodies: Bodies, changes: dict[str, int], expected: list[str]) -> None:
    bodies[5].update(changes)
    check = manifest.check_manifest(forge(key, bodies))
    assert [(p.line, p.code, p.message) for p in check.problems] == \
        [(6, C.STRUCTURE, message) for message in expected]


def test_the_sealed_totals_count_invalid_segment_lines_too(key: DeviceKey,
                                                           bodies: Bodies) -> None:
    bodies[3]["recovered"] = "no"  # line 4 is invalid but still a segment line of 500 bytes
    assert found(forge(key, bodies)) == [(4, C.MISSING_FIELD)]
    bodies[3]["bytes"] = "500"  # a total cannot count a byte count that is not a number
    assert found(forge(key, bodies)) == [(4, C.MISSING_FIELD), (6, C.STRUCTURE)]


def test_problems_are_listed_in_line_order_most_telling_first(key: DeviceKey,
                                                              bodies: Bodies) -> None:
    stored = lines_of(forge(key, bodies))
    data = b"".join([stored[0], stored[2], stored[1], *stored[3:]])
    assert found(data) == [(2, C.SEQ), (2, C.CHAIN), (3, C.SEQ), (3, C.CHAIN), (4, C.CHAIN)]


def test_the_reported_lines_and_objects_are_those_of_the_file(written: bytes) -> None:
    check = manifest.check_manifest(written)
    assert check.stored == lines_of(written)
    assert check.lines == [json.loads(line) for line in written.splitlines()]
    assert check.read.header is not None and check.read.header.number == 1


def test_signature_checking_uses_the_trusted_key_and_not_the_header(
        key: DeviceKey, other_key: DeviceKey, bodies: Bodies) -> None:
    # a recording whose header names this device but whose lines another key signed
    bodies[0]["public_key"] = keys.public_key_spki_b64(key.public_key)
    data = forge(other_key, bodies)
    assert found(data, trusted_key=key.public_key) == [(n, C.SIGNATURE) for n in range(1, 7)]
    assert found(data) == [(n, C.SIGNATURE) for n in range(1, 7)]


def test_the_signature_problem_message_names_the_key_used(key: DeviceKey,
                                                          bodies: Bodies) -> None:
    bodies[0]["public_key"] = ""
    check = manifest.check_manifest(forge(key, bodies))
    assert check.problems[1].message == (
        "the signature cannot be checked: no valid public key in the header and no trusted key "
        "given")


def test_a_header_whose_settings_cannot_be_encoded_leaves_no_file(
        tmp_path: Path, key: DeviceKey) -> None:
    with pytest.raises(ManifestFormatError, match="reserved"):
        ManifestWriter.create(tmp_path, key, replace(HEADER, settings={"x": {"sig": 1}}))
    assert list(tmp_path.iterdir()) == []


def test_utc_now_is_utc_whatever_the_local_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "XYZ-05:30")  # a POSIX zone 5 h 30 min east of UTC, no tzdata
    time.tzset()
    try:
        text = manifest.utc_now()
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    finally:
        monkeypatch.undo()
        time.tzset()
    stated = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs((now - stated).total_seconds()) < 60, (text, now)


def test_a_reopened_writer_knows_its_path(tmp_path: Path, key: DeviceKey) -> None:
    ManifestWriter.create(tmp_path, key, HEADER).close()
    with ManifestWriter.reopen(tmp_path, key) as writer:
        assert writer.path == tmp_path / "manifest.jsonl"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_reopen_failing_to_cut_the_tail_raises_that_error_and_closes_the_file(
        tmp_path: Path, key: DeviceKey, monkeypatch: pytest.MonkeyPatch) -> None:
    ManifestWriter.create(tmp_path, key, HEADER).close()
    with open(tmp_path / "manifest.jsonl", "ab") as file:
        file.write(b'{"cut')
    before = open_fds()

    def failing(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(manifest.os, "ftruncate", failing)
    with pytest.raises(OSError) as raised:
        ManifestWriter.reopen(tmp_path, key)
    assert raised.value.errno == errno.EIO and open_fds() == before


@pytest.mark.parametrize("error, reason", [
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    (OSError("the card went away"), "the card went away")])
def test_a_failed_append_keeps_the_errno_and_says_why(
        tmp_path: Path, key: DeviceKey, monkeypatch: pytest.MonkeyPatch, error: OSError,
        reason: str) -> None:
    writer = ManifestWriter.create(tmp_path, key, HEADER)

    def failing(fd: int, data: Any) -> int:
        raise error

    monkeypatch.setattr(manifest.os, "write", failing)
    with pytest.raises(manifest.ManifestWriteError) as raised:
        writer.append_segment(segment(1))
    writer.close()
    assert raised.value.errno == error.errno
    assert raised.value.strerror == (
        f"appending line 2 to {tmp_path / 'manifest.jsonl'} failed ({reason}); its complete "
        "lines are intact: reopen it with ManifestWriter.reopen to continue")


def test_the_key_problems_say_exactly_what_is_wrong(key: DeviceKey, other_key: DeviceKey,
                                                    bodies: Bodies) -> None:
    bodies[0]["key_fingerprint"] = "0123456789abcdef" * 4
    assert manifest.check_manifest(forge(key, bodies)).problems[0].message == (
        f"key_fingerprint 0123456789abcdef… is not the SHA-256 of the header's public key "
        f"({key.fingerprint[:16]}…)")
    bodies[0]["key_fingerprint"] = key.fingerprint
    bodies[0]["public_key"] = "bm90IGEga2V5"
    with pytest.raises(keys.PublicKeyFormatError) as raised:
        keys.public_key_from_spki_b64("bm90IGEga2V5")
    assert manifest.check_manifest(forge(key, bodies)).problems[0].message == str(raised.value)
    assert str(raised.value)
    bodies[0]["public_key"] = keys.public_key_spki_b64(key.public_key)
    foreign = manifest.check_manifest(forge(key, bodies), trusted_key=other_key.public_key)
    assert foreign.problems[0].message == (
        f"the header's public key (fingerprint {key.fingerprint[:16]}…) is not the trusted key "
        f"(fingerprint {other_key.fingerprint[:16]}…): the recording was signed by another "
        "device, or re-signed")


def test_the_chain_problems_name_the_values_they_compare(key: DeviceKey,
                                                         bodies: Bodies) -> None:
    bodies[0]["prev"] = "1" * 64
    bodies[3]["prev"] = "2" * 64
    data = forge(key, bodies)
    third = hashlib.sha256(lines_of(data)[2]).hexdigest()
    assert [p.message for p in manifest.check_manifest(data).problems] == [
        f"prev {'1' * 16}… is not the genesis value (64 zeros) ({'0' * 16}…): the line before it "
        "was changed, or lines were deleted, inserted or moved",
        f"prev {'2' * 16}… is not the SHA-256 of line 3 ({third[:16]}…): the line before it was "
        "changed, or lines were deleted, inserted or moved"]


def test_a_signature_with_characters_outside_base64_does_not_verify(key: DeviceKey,
                                                                     bodies: Bodies) -> None:
    stored = lines_of(forge(key, bodies))
    sig = json.loads(stored[2])["sig"]
    bodies[2]["sig"] = sig[:40] + "!" + sig[40:]  # the same signature, if "!" were skipped
    assert found(forge(key, bodies)) == [(3, C.SIGNATURE)]


def test_the_reading_problems_say_what_is_wrong(written: bytes) -> None:
    stored = lines_of(written)
    data = b"".join([stored[0], b"[1]\n", stored[2].replace(b",", b", ", 1),
                     b'{"x":9007199254740992}\n'])
    read = manifest.read_lines(data)
    assert [line.number for line in read.lines] == [1, 2, 3, 4]
    assert [(p.line, p.code, p.message) for p in read.problems] == [
        (2, C.NOT_JSON, "not a valid manifest JSON object (a line must be a JSON object, not "
         "list)"),
        (3, C.NOT_CANONICAL, "not in canonical form (sorted keys, no spaces, minimal escapes): "
         "the line was rewritten after the recorder wrote it"),
        (4, C.NOT_CANONICAL, "value not allowed: line.x: integer 9007199254740992 is outside "
         "±(2**53-1), which JSON readers in other languages cannot hold exactly"),
        (4, C.MISSING_FIELD, "field 'seq' is missing or not a int")]


def test_a_too_deep_value_is_named_by_its_first_60_characters() -> None:
    where = "line.x" + "[0]" * (manifest.MAX_NESTING + 1)
    with pytest.raises(ManifestFormatError) as raised:
        manifest.canonical_bytes({"x": nested(manifest.MAX_NESTING + 1)})
    assert str(raised.value) == f"{where[:60]}…: values nested more than 32 deep"
