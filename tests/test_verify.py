"""`bwv verify` on real fragmented MP4 recordings: a clean one passes, every kind of tampering fails
with the right message at the right place, and the exit codes are 0/1/2."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.segments import WrittenSegment, write_segments

from recorder import cli
from recorder.integrity import bmff, keys, manifest, verify
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import MANIFEST_NAME, EventKind, ManifestWriter, RecordingHeader
from recorder.integrity.sealed_segment import SealedSegment
from recorder.integrity.verify import ProblemCode

MONOTONIC_START_US = 7_000_000


def sealed_segments(segments: list[WrittenSegment]) -> list[SealedSegment]:
    result = []
    for index, segment in enumerate(segments, 1):
        data = segment.path.read_bytes()
        result.append(SealedSegment(
            index=index, file=segment.path.name, bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            first_pts_us=MONOTONIC_START_US + segment.first_pts_us,
            last_pts_us=MONOTONIC_START_US + segment.last_pts_us,
            utc_start="2026-11-23T07:00:00.000000Z", utc_end="2026-11-23T07:00:02.000000Z",
            fragments=segment.video_keyframes, recovered=False))
    return result


def write_manifest(directory: Path, key: DeviceKey, segments: list[SealedSegment]) -> None:
    header = RecordingHeader("20261123T070000Z-cam7", "cam7", "PC 1234",
                             "2026-11-23T07:00:00.000000Z", MONOTONIC_START_US, "ntp",
                             {"segment_seconds": 2})
    with ManifestWriter.create(directory, key, header) as writer:
        for segment in segments:
            writer.append_segment(segment)
            if segment.index == 1:
                writer.append_event(EventKind.MARKER, "2026-11-23T07:00:01.000000Z",
                                    pts_us=MONOTONIC_START_US + 1_000_000)
        writer.seal("2026-11-23T07:00:06.000000Z")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A sealed recording of three 2-second segments (two fragments each), and its key's dir."""
    root = tmp_path_factory.mktemp("template")
    directory = root / "recording"
    segments = write_segments(directory, seconds=6, segment_seconds=2)
    key = DeviceKey.load_or_create(root / "data")
    write_manifest(directory, key, sealed_segments(segments))
    return directory, root / "data"


@pytest.fixture()
def recording(template: tuple[Path, Path], tmp_path: Path) -> Path:
    directory = tmp_path / "recording"
    shutil.copytree(template[0], directory)
    return directory


@pytest.fixture()
def key(template: tuple[Path, Path]) -> DeviceKey:
    return DeviceKey.load_or_create(template[1])


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["verify", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def first(directory: Path, **kwargs: Any) -> verify.Problem:
    report = verify.verify_recording(directory, **kwargs)
    assert not report.ok
    problem = report.first_problem
    assert problem is not None
    return problem


def lines_of(directory: Path) -> list[bytes]:
    return (directory / MANIFEST_NAME).read_bytes().splitlines(keepends=True)


def set_lines(directory: Path, lines: list[bytes]) -> None:
    (directory / MANIFEST_NAME).write_bytes(b"".join(lines))


# --- the clean recording


def test_a_clean_recording_verifies_with_exit_0(recording: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(str(recording), capsys=capsys)
    assert code == cli.EXIT_OK
    assert out.startswith(f"bwv verify: OK  {recording}")
    assert "SHA-256 matches 3/3, boxes parse 3/3, 0 unlisted files" in out
    report = verify.verify_recording(recording / MANIFEST_NAME)
    assert report.ok and report.sealed and report.lines == 6
    # two segment boundaries, two tracks each; no step inside a segment
    assert [step.gap_us for step in report.steps] == [0, 0, 0, 0]


def test_sha256sum_agrees_with_the_manifest(recording: Path) -> None:
    output = subprocess.run("sha256sum *.mp4", shell=True, cwd=recording, check=True,
                            capture_output=True, text=True).stdout
    theirs = {name: digest for digest, name in (line.split() for line in output.splitlines())}
    ours = {json.loads(line)["file"]: json.loads(line)["sha256"] for line in lines_of(recording)
            if json.loads(line)["type"] == "segment"}
    assert theirs == ours and len(ours) == 3


def test_the_trusted_key_verifies_and_json_says_so(recording: Path, key: DeviceKey,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cam7.pem").write_text(key.public_key_pem)
    code, out, _ = run_cli("--json", "--key", str(tmp_path / "cam7.pem"), str(recording),
                           capsys=capsys)
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["first_problem"] is None
    assert data["key_source"] == "trusted" and data["key_fingerprint"] == key.fingerprint
    assert [s["sha256_ok"] for s in data["segments"]] == [True, True, True]
    assert data["gaps"] == [] and data["problems"] == []


def test_the_module_entry_point_runs_verify(recording: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "recorder", "verify", str(recording)],
                            capture_output=True, text=True, cwd=recording.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("bwv verify: OK")


# --- tampering with segments


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_one_flipped_byte_anywhere_in_a_segment_is_caught(template: tuple[Path, Path],
                                                          tmp_path_factory: pytest.TempPathFactory,
                                                          data: st.DataObject) -> None:
    directory = tmp_path_factory.mktemp("flip") / "recording"
    shutil.copytree(template[0], directory)
    name = data.draw(st.sampled_from(["000001.mp4", "000002.mp4", "000003.mp4"]))
    content = bytearray((directory / name).read_bytes())
    position = data.draw(st.integers(0, len(content) - 1))
    content[position] ^= data.draw(st.integers(1, 255))
    (directory / name).write_bytes(bytes(content))
    problem = first(directory)
    assert (problem.code, problem.where) == (ProblemCode.SHA256, name)
    assert "changed after it was sealed" in problem.message


def test_a_truncated_segment_is_caught_by_size_and_hash_not_parsed(recording: Path) -> None:
    path = recording / "000002.mp4"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:size - 100])
    report = verify.verify_recording(recording)
    codes = [(p.code, p.where) for p in report.problems]
    assert codes[0] == (ProblemCode.SIZE, "000002.mp4")
    assert f"{size - 100} bytes, but line 4 says {size}" in report.problems[0].message
    assert "truncated" in report.problems[0].message
    assert (ProblemCode.SHA256, "000002.mp4") in codes
    # bytes that are not the signed ones are not parsed: a hash mismatch is the first fatal fault
    assert (ProblemCode.BOXES, "000002.mp4") not in codes
    assert report.segments[1].boxes_ok is None


def test_a_deleted_segment_is_caught(recording: Path) -> None:
    (recording / "000003.mp4").unlink()
    problem = first(recording)
    assert (problem.code, problem.where) == (ProblemCode.MISSING_FILE, "000003.mp4")
    assert "listed on line 5" in problem.message


def test_two_swapped_segments_are_named_as_swapped(recording: Path) -> None:
    one, two = recording / "000001.mp4", recording / "000002.mp4"
    one.rename(recording / "swap")
    two.rename(one)
    (recording / "swap").rename(two)
    report = verify.verify_recording(recording)
    shas = [p for p in report.problems if p.code is ProblemCode.SHA256]
    assert [p.where for p in shas] == ["000001.mp4", "000002.mp4"]
    assert "those listed for 000002.mp4 (line 4): segment files were swapped" in shas[0].message
    assert report.first_problem is not None and report.first_problem.where == "000001.mp4"
    # bytes that are not the signed ones are not parsed: no timing is read from them
    assert [s.boxes_ok for s in report.segments] == [None, None, True]


def test_a_foreign_segment_is_caught(recording: Path, tmp_path: Path) -> None:
    foreign = write_segments(tmp_path / "other", seconds=2, segment_seconds=2)[0].path
    shutil.copy(foreign, recording / "000004.mp4")
    problem = first(recording)
    assert (problem.code, problem.where) == (ProblemCode.EXTRA_FILE, "000004.mp4")
    assert "foreign or inserted segment" in problem.message


def test_a_copied_segment_is_named_as_a_copy(recording: Path) -> None:
    shutil.copy(recording / "000002.mp4", recording / "000002 (1).mp4")
    problem = first(recording)
    assert problem.code is ProblemCode.EXTRA_FILE and "copy of 000002.mp4" in problem.message



def test_an_unlisted_file_is_hashed_once_whatever_the_number_of_segments(
        recording: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(recording / "000003.mp4", recording / "spare.mp4")
    hashed: list[str] = []
    real = verify._open_regular  # every file is opened once to be hashed (and parsed)

    def counting(path: Path) -> BinaryIO:
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(verify, "_open_regular", counting)
    report = verify.verify_recording(recording)
    assert len(report.segments) >= 3
    assert "copy of 000003.mp4" in report.problems[0].message
    assert hashed.count("spare.mp4") == 1
    assert sorted(hashed) == sorted([s.file for s in report.segments]
                                    + ["spare.mp4", MANIFEST_NAME])


def test_the_manifests_problem_codes_are_the_manifests_own_members() -> None:
    from recorder.integrity.manifest import LineProblemCode

    for code in LineProblemCode:
        assert getattr(ProblemCode, code.name) is code
    assert ProblemCode.SHA256 is verify.FileProblemCode.SHA256

# --- tampering with the manifest


def test_a_deleted_manifest_line_is_caught(recording: Path) -> None:
    lines = lines_of(recording)
    set_lines(recording, lines[:2] + lines[3:])  # drop the marker event
    problem = first(recording)
    assert (problem.code, problem.line) == (ProblemCode.SEQ, 3)
    assert problem.where == "manifest.jsonl line 3" and "deleted" in problem.message


def test_a_deleted_segment_line_and_file_together_are_caught(recording: Path) -> None:
    lines = lines_of(recording)
    set_lines(recording, lines[:3] + lines[4:])
    (recording / "000002.mp4").unlink()
    problem = first(recording)
    assert (problem.code, problem.line) == (ProblemCode.SEQ, 4)


def test_a_duplicated_manifest_line_is_caught(recording: Path) -> None:
    lines = lines_of(recording)
    set_lines(recording, lines[:2] + [lines[1]] + lines[2:])
    problem = first(recording)
    assert (problem.code, problem.line) == (ProblemCode.SEQ, 3)
    assert "seq is 2 on line 3" in problem.message


def test_reordered_manifest_lines_are_caught(recording: Path) -> None:
    lines = lines_of(recording)
    set_lines(recording, lines[:3] + [lines[4], lines[3]] + lines[5:])
    problem = first(recording)
    assert (problem.code, problem.line) == (ProblemCode.SEQ, 4)


def test_an_edited_manifest_line_is_caught_by_its_signature(recording: Path) -> None:
    lines = lines_of(recording)
    obj = json.loads(lines[3])
    edited = lines[3].replace(f'"last_pts_us":{obj["last_pts_us"]}'.encode(),
                              f'"last_pts_us":{obj["last_pts_us"] + 1}'.encode())
    assert edited != lines[3]
    set_lines(recording, lines[:3] + [edited] + lines[4:])
    report = verify.verify_recording(recording)
    problem = report.first_problem
    assert problem is not None
    assert (problem.code, problem.line) == (ProblemCode.SIGNATURE, 4)
    assert "changed after it was signed" in problem.message
    assert any(p.code is ProblemCode.CHAIN and p.line == 5 for p in report.problems)


def test_an_edited_and_resigned_line_is_caught_by_the_chain(recording: Path,
                                                            key: DeviceKey) -> None:
    # An attacker with the device key re-signs the edited line but cannot hide it from line 5.
    lines = lines_of(recording)
    obj = json.loads(lines[3])
    obj["recovered"] = True
    del obj["sig"]
    obj["sig"] = base64.b64encode(key.sign(manifest.canonical_bytes(obj))).decode()
    set_lines(recording, lines[:3] + [manifest.canonical_bytes(obj) + b"\n"] + lines[4:])
    problem = first(recording)
    assert (problem.code, problem.line) == (ProblemCode.CHAIN, 5)


def test_a_truncated_manifest_is_caught_as_not_sealed(recording: Path) -> None:
    set_lines(recording, lines_of(recording)[:-1])
    problem = first(recording)
    assert problem.code is ProblemCode.NOT_SEALED and "no sealed line" in problem.message


def test_a_half_written_last_line_is_reported(recording: Path) -> None:
    lines = lines_of(recording)
    set_lines(recording, lines[:-1] + [lines[-1][:30]])
    problem = first(recording)
    assert (problem.code, problem.line) == (ProblemCode.PARTIAL_LINE, 6)
    assert "incomplete (30 bytes without a newline)" in problem.message


def test_a_missing_manifest_is_a_failure(recording: Path) -> None:
    (recording / MANIFEST_NAME).unlink()
    problem = first(recording)
    assert problem.code is ProblemCode.NO_MANIFEST


# --- replacing the key


def resign(directory: Path, new_key: DeviceKey) -> None:
    """What a forger with their own key does: rewrite the whole manifest, signed by them."""
    segments = []
    for line in lines_of(directory):
        obj = json.loads(line)
        if obj["type"] == "segment":
            fields = {name: obj[name] for name in SealedSegment.__dataclass_fields__}
            segments.append(SealedSegment(**fields))
    (directory / MANIFEST_NAME).unlink()
    write_manifest(directory, new_key, segments)


def test_a_manifest_resigned_with_another_key_fails_against_the_trusted_key(
        recording: Path, key: DeviceKey, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    forger = DeviceKey.load_or_create(tmp_path / "forger")
    resign(recording, forger)
    assert verify.verify_recording(recording).ok  # self-consistent: why --key matters
    (tmp_path / "cam7.pem").write_text(key.public_key_pem)
    code, out, _ = run_cli("--key", str(tmp_path / "cam7.pem"), str(recording), capsys=capsys)
    assert code == cli.EXIT_FAILED
    assert ("first problem: manifest.jsonl line 1: the header's public key (fingerprint "
            f"{forger.fingerprint[:16]}…) is not the trusted key") in out


def test_a_replaced_header_key_breaks_the_header(recording: Path, tmp_path: Path) -> None:
    forger = DeviceKey.load_or_create(tmp_path / "forger")
    lines = lines_of(recording)
    header = json.loads(lines[0])
    lines[0] = lines[0].replace(header["public_key"].encode(),
                                keys.public_key_spki_b64(forger.public_key).encode())
    set_lines(recording, lines)
    report = verify.verify_recording(recording)
    assert report.first_problem is not None
    assert (report.first_problem.code, report.first_problem.line) == (ProblemCode.KEY, 1)
    assert "key_fingerprint" in report.first_problem.message
    assert any(p.code is ProblemCode.SIGNATURE and p.line == 1 for p in report.problems)


# --- timing


def template_segments(template: tuple[Path, Path]) -> list[SealedSegment]:
    return [SealedSegment(**{name: json.loads(line)[name]
                             for name in SealedSegment.__dataclass_fields__})
            for line in lines_of(template[0]) if json.loads(line)["type"] == "segment"]


def test_a_missing_stretch_of_media_is_reported_as_a_gap_with_its_size(
        template: tuple[Path, Path], tmp_path: Path, key: DeviceKey) -> None:
    # a recording whose middle 2 s never reached the disk, honestly signed: only timing shows it
    directory = tmp_path / "recording"
    directory.mkdir()
    first_segment, _, third_segment = template_segments(template)
    kept = []
    for new_index, old in enumerate((first_segment, third_segment), 1):
        name = f"{new_index:06d}.mp4"
        shutil.copy(template[0] / old.file, directory / name)
        kept.append(replace(old, index=new_index, file=name))
    write_manifest(directory, key, kept)
    report = verify.verify_recording(directory)
    gaps = [p for p in report.problems if p.code is ProblemCode.GAP]
    assert report.first_problem is not None and report.first_problem.code is ProblemCode.GAP
    assert [p.where for p in gaps] == ["000001.mp4 -> 000002.mp4"] * 2
    assert "vide track 1: a gap of 2000000 µs (2.000 s)" in gaps[0].message
    json_gaps = report.to_json()["gaps"]
    assert {gap["handler"] for gap in json_gaps} == {"vide", "soun"}


def test_segment_pts_that_disagree_with_the_media_are_reported(
        template: tuple[Path, Path], tmp_path: Path, key: DeviceKey) -> None:
    directory = tmp_path / "recording"
    shutil.copytree(template[0], directory)
    (directory / MANIFEST_NAME).unlink()
    segments = template_segments(template)
    segments[2] = replace(segments[2], first_pts_us=segments[2].first_pts_us + 500_000,
                          last_pts_us=segments[2].last_pts_us + 500_000)
    write_manifest(directory, key, segments)
    problem = first(directory)
    assert (problem.code, problem.where) == (ProblemCode.PTS, "000003.mp4")
    assert "-500000 µs" in problem.message and "line 5's first_pts_us" in problem.message


def test_overlapping_segment_pts_are_reported(template: tuple[Path, Path], tmp_path: Path,
                                              key: DeviceKey) -> None:
    directory = tmp_path / "recording"
    shutil.copytree(template[0], directory)
    (directory / MANIFEST_NAME).unlink()
    segments = template_segments(template)
    segments[1] = replace(segments[1], first_pts_us=segments[0].last_pts_us)
    write_manifest(directory, key, segments)
    problem = first(directory)
    assert problem.code is ProblemCode.PTS and problem.line == 4
    assert "not after 000001.mp4 ends" in problem.message


# --- the command line


def test_usage_errors_exit_2(recording: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(str(tmp_path / "nothing"), capsys=capsys)
    assert code == cli.EXIT_USAGE and "does not exist" in err
    (tmp_path / "bad.pem").write_text("hello")
    code, _, err = run_cli("--key", str(tmp_path / "bad.pem"), str(recording), capsys=capsys)
    assert code == cli.EXIT_USAGE and "holds no public key" in err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["verify"])
    assert exit_info.value.code == cli.EXIT_USAGE


def test_failures_exit_1_and_json_names_the_first_problem(recording: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    (recording / "000002.mp4").unlink()
    code, out, _ = run_cli("--json", str(recording), capsys=capsys)
    data = json.loads(out)
    assert code == cli.EXIT_FAILED and data["ok"] is False
    assert data["first_problem"]["code"] == "missing_file"
    assert data["first_problem"]["where"] == "000002.mp4"
    assert data["problems"][0] == data["first_problem"]


def test_help_reads_like_a_manual(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["verify", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for words in ("What is checked:", "exit status:", "0  everything holds",
                  "2  usage error", "--key PUBKEY", "examples:"):
        assert words in text


# --- other shapes of recording that must verify


@pytest.mark.parametrize("b_frames, audio", [(2, True), (0, False)])
def test_recordings_with_b_frames_or_without_audio_verify(tmp_path: Path, key: DeviceKey,
                                                          b_frames: int, audio: bool) -> None:
    directory = tmp_path / "recording"
    segments = write_segments(directory, seconds=4, segment_seconds=2, b_frames=b_frames,
                              audio=audio)
    write_manifest(directory, key, sealed_segments(segments))
    report = verify.verify_recording(directory)
    assert report.ok, report.problems
    assert {span.handler for s in report.segments for span in s.tracks} == (
        {"vide", "soun"} if audio else {"vide"})


def test_a_recovered_recording_verifies_and_says_what_was_recovered(
        recording: Path, key: DeviceKey, capsys: pytest.CaptureFixture[str]) -> None:
    # a power cut: the last segment was cut to one fragment and the sealed line never written
    segments = template_segments((recording, Path()))
    last = recording / "000003.mp4"
    cut = bmff.read_segment(last).fragments[1].offset
    last.write_bytes(last.read_bytes()[:cut])
    lines = lines_of(recording)
    set_lines(recording, lines[:-2] + [lines[-2][:40]])  # segment 3's line half written
    with manifest.ManifestWriter.reopen(recording, key, utc="2026-11-23T08:00:00.000000Z") as w:
        data = last.read_bytes()
        w.append_segment(replace(segments[2], bytes=len(data), fragments=1, recovered=True,
                                 sha256=hashlib.sha256(data).hexdigest(),
                                 last_pts_us=segments[2].first_pts_us + 966_666))
        w.seal("2026-11-23T08:00:01.000000Z", reason="recovered")
    code, out, _ = run_cli(str(recording), capsys=capsys)
    assert code == cli.EXIT_OK, out
    assert "recovered   000003.mp4" in out
    assert "events      manifest_repaired 1, marker 1" in out


def test_known_digests_replace_hashing_and_are_still_checked(recording: Path) -> None:
    """The station passes the digests it computed on arrival; a wrong one is caught like a
    changed file, and a right one verifies without the file being read for hashing."""
    files = sorted(p.name for p in recording.glob("*.mp4"))
    right = {name: hashlib.sha256((recording / name).read_bytes()).hexdigest() for name in files}
    assert verify.verify_recording(recording, known_sha256=right).ok
    wrong = dict(right, **{files[0]: "0" * 64})
    report = verify.verify_recording(recording, known_sha256=wrong)
    assert not report.ok and report.first_problem is not None
    assert report.first_problem.code is verify.ProblemCode.SHA256
