"""Face redaction at the station (issue 17): `bwv station redact` on a recording of the astronaut's
face composited at three sizes onto the moving synthetic scene (support.faces), checked with an
independent detector (libfacedetection's CNN, through yuface: not the Haar cascade that
redacts), by decoding the output back (pixels inside the faces, audio ranges), with ffprobe, and
in the audit log; its provenance: the station-signed report (checked with the real openssl) and
the C2PA Content Credentials (checked with c2pa-python's Reader, on c2pa-rs, given the station's
CA as trust anchor); and the command's refusals, each one line with its exit status.

The footage is small (320x240, 2 s) and redacted twice for the module (pixelate with audio
ranges; solid with one track left visible, where c2pa-python cannot be imported), to keep the
suite's CPU down.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest
from cryptography.hazmat.primitives import serialization
from support import faces, warm
from support.media import ffmpeg_decode_errors, ffprobe
from support.segments import cut_segments
from support.station import bwv, ingest, make_recording, make_store

from recorder.integrity.keys import DeviceKey
from recorder.station.redact.detect import Box, FaceDetector
from recorder.station.redact.plan import AudioRange, BadPlanError, Plan, parse_box, parse_range
from recorder.station.redact.render import DETECT_EVERY, detect_faces, render
from recorder.station.redact.mask import Masker
from recorder.station.redact.track import Tracking

WIDTH, HEIGHT, SECONDS = 320, 240, 2
MUTE, BLEEP = (0.4, 0.9), (1.2, 1.6)  # seconds
BOX = "0.5:20,150,60,30;1.5:200,100,100,60"  # a box drawn by hand, two keyframes
EDGE_S = 0.03  # AAC's overlapping windows smear a range's edges by a few milliseconds


def independent_detector() -> Any:
    """yuface's ``detect``, its OpenMP held to one thread (it spins on every core otherwise):
    libgomp reads the variable when yuface loads it."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        yuface = pytest.importorskip("yuface", reason="yuface has wheels for CPython 3.11 on "
                                     "x86-64 Linux only")
    finally:
        if before is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = before
    return yuface.detect


def faces_in(frame: npt.NDArray[np.uint8]) -> list[tuple[int, int, int, int]]:
    """The faces the independent detector finds in an RGB frame (x, y, w, h)."""
    _, boxes, _ = independent_detector()(np.ascontiguousarray(frame[:, :, ::-1]), conf=0.5)
    return [tuple(int(v) for v in box) for box in boxes]  # type: ignore[misc]


def rgb_frames(path: Path) -> list[npt.NDArray[np.uint8]]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def audio_samples(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [frame.to_ndarray()[0] for frame in container.decode(stream)]
        return np.concatenate(chunks).astype(np.float32), stream.rate


@dataclass(frozen=True)
class Redacted:
    data: Path  # the station's data directory
    recording_id: str
    recording: Path  # the recording as the camera wrote it (segments, manifest)
    original: Path  # the footage as the camera wrote it, joined
    pixelated: Path  # --mask pixelate --mute --bleep
    solid: Path  # --mask solid --exclude-track 1, run where c2pa-python cannot be imported
    pixelated_stdout: str
    solid_stdout: str
    solid_stderr: str


def without_c2pa(tmp: Path) -> dict[str, str]:
    """The environment of `bwv` (support.station.bwv) with a ``c2pa`` package first on the path
    that fails to import, as where c2pa-python has no wheel."""
    (tmp / "no-c2pa" / "c2pa").mkdir(parents=True)
    (tmp / "no-c2pa" / "c2pa" / "__init__.py").write_text(
        'raise ImportError("No module named \'c2pa\' (hidden by the test)")\n')
    environ = {**os.environ, "RECORDER_NATIVE": "off", "PYTHONPATH": str(tmp / "no-c2pa")}
    environ.pop("BWV_STATION_DATA", None)
    environ.pop("BWV_STATION_DB", None)
    return environ


@pytest.fixture(scope="module")
def redacted(tmp_path_factory: pytest.TempPathFactory) -> Redacted:
    tmp = tmp_path_factory.mktemp("redact")
    segments = cut_segments(tmp / "segments", faces.encode(WIDTH, HEIGHT, SECONDS), 1)
    key = DeviceKey.load_or_create(tmp / "camera")
    store = make_store(tmp / "station")
    store.enroll("cam7", key.public_key, by="admin")
    recording = make_recording(tmp / "recordings", key, segments=segments)
    assert ingest(store, recording).verified
    store.engine.dispose()
    original = tmp / "original.mp4"
    original.write_bytes(b"".join(path.read_bytes() for path in sorted(recording.glob("*.mp4"))))
    pixelated, solid = tmp / "out" / "pixelated.mp4", tmp / "out" / "solid.mp4"
    first = bwv("station", "redact", recording.name, "--data", str(tmp / "station"), "--out",
                str(pixelated), "--by", "DO 42", "--mute", f"{MUTE[0]}-{MUTE[1]}", "--bleep",
                f"{BLEEP[0]}-{BLEEP[1]}", "--box", BOX, "--progress")
    assert first.returncode == 0, first.stderr
    assert "rendering 60/60 frames" in first.stderr  # progress, for long work
    second = warm.run(["station", "redact", recording.name, "--data", str(tmp / "station"),
                       "--out", str(solid), "--by", "DO 42", "--mask", "solid",
                       "--exclude-track", "1"], env=without_c2pa(tmp), timeout=60)
    assert second.returncode == 0, second.stderr
    return Redacted(tmp / "station", recording.name, recording, original, pixelated, solid,
                    first.stdout, second.stdout, second.stderr)


def test_the_independent_detector_finds_no_face_in_the_redacted_frames(
        redacted: Redacted) -> None:
    before = [bool(faces_in(frame)) for frame in rgb_frames(redacted.original)]
    after = [bool(faces_in(frame)) for frame in rgb_frames(redacted.pixelated)]
    assert len(before) == len(after) == SECONDS * faces.FPS
    with_faces = [number for number, found in enumerate(before) if found]
    assert len(with_faces) >= 0.9 * len(before)  # the footage does show faces
    still = [number for number in with_faces if after[number]]
    assert len(still) <= 0.01 * len(with_faces), f"faces found after redaction in {still}"


def test_nothing_of_the_original_face_is_left_inside_its_box(redacted: Redacted) -> None:
    import cv2

    original, pixelated = rgb_frames(redacted.original), rgb_frames(redacted.pixelated)
    checked = 0
    for number in range(0, len(original), 6):
        for x, y, w, h in faces_in(original[number]):
            # the face's core (eyes, nose, mouth): the detectors' boxes differ at the edges
            x, y, w, h = max(0, x + w * 15 // 100), max(0, y + h * 15 // 100), w * 7 // 10, \
                h * 7 // 10
            def detail(frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
                gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float64)
                region = gray[y:y + h, x:x + w]
                return region - cv2.GaussianBlur(region, (0, 0), 2.0)

            was, now = detail(original[number]), detail(pixelated[number])
            # the face's fine detail (eyes, mouth, edges) is gone: no correlation with it
            # (an unmasked face, re-encoded, keeps a correlation of about 0.9)
            assert abs(np.corrcoef(was.ravel(), now.ravel())[0, 1]) < 0.3, (number, x, y)
            box = (slice(y, y + h), slice(x, x + w))
            changed = np.abs(original[number][box].astype(int) - pixelated[number][box]).mean()
            assert changed > 10, (number, x, y)
            checked += 1
    assert checked >= 20


def test_a_track_left_visible_stays_and_the_others_are_a_solid_fill(
        redacted: Redacted) -> None:
    assert "track 1: frames" in redacted.solid_stdout and "visible" in redacted.solid_stdout
    original, solid = rgb_frames(redacted.original), rgb_frames(redacted.solid)
    kept = masked = 0
    for number in range(0, len(original), 5):
        before, after = faces_in(original[number]), faces_in(solid[number])
        masked += len(before) - len(after)
        kept += len(after)
        assert len(after) <= 1, number  # only the excluded track's face is left
    assert kept >= 0.9 * len(range(0, len(original), 5))
    assert masked >= 1.5 * len(range(0, len(original), 5))
    # a solid box is one flat grey (up to the encoder's rounding)
    with av.open(str(redacted.solid)) as container:
        luma = next(container.decode(video=0)).to_ndarray(format="yuv420p")[:HEIGHT]
    assert np.count_nonzero(np.abs(luma.astype(int) - 60) <= 2) > 0.05 * luma.size


def test_muted_ranges_are_silent_and_bleeped_ones_a_1khz_tone(redacted: Redacted) -> None:
    samples, rate = audio_samples(redacted.pixelated)

    def span(start: float, end: float) -> npt.NDArray[np.float32]:
        return samples[round((start + EDGE_S) * rate):round((end - EDGE_S) * rate)]

    def rms(part: npt.NDArray[np.float32]) -> float:
        return float(np.sqrt(np.mean(part.astype(np.float64) ** 2)))

    assert rms(span(*MUTE)) < 1e-4
    assert rms(span(0.0, MUTE[0])) > 0.1 and rms(span(MUTE[1], BLEEP[0])) > 0.1  # the tone
    bleep = span(*BLEEP)
    spectrum = np.abs(np.fft.rfft(bleep))
    peak = np.fft.rfftfreq(len(bleep), 1 / rate)[int(np.argmax(spectrum))]
    assert abs(peak - 1000) < 10, peak
    before = span(MUTE[1], BLEEP[0])
    peak_before = np.fft.rfftfreq(len(before), 1 / rate)[int(np.argmax(np.abs(
        np.fft.rfft(before))))]
    assert abs(peak_before - faces.TONE_HZ) < 10


def test_ffprobe_reads_one_h264_and_aac_file_of_the_whole_recording(redacted: Redacted) -> None:
    for path in (redacted.pixelated, redacted.solid):
        video, sound = ffprobe(path)  # counted: every frame decoded
        assert video["codec_name"] == "h264" and sound["codec_name"] == "aac"
        assert (video["width"], video["height"]) == (WIDTH, HEIGHT)
        assert int(video["nb_read_frames"]) == SECONDS * faces.FPS
        assert float(video["start_time"]) == 0.0
        assert abs(float(sound["duration"]) - SECONDS) < 0.1
        assert ffmpeg_decode_errors(path) == ""
        assert path.stat().st_mode & 0o077 == 0


def test_each_redaction_is_in_the_audit_log_with_its_operations(redacted: Redacted) -> None:
    result = bwv("station", "audit", "--data", str(redacted.data), "--recording",
                 redacted.recording_id)
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    made = [entry for entry in entries if entry["action"] == "redact"]
    assert [entry["actor"] for entry in made] == ["DO 42", "DO 42"]
    first, second = (entry["detail"] for entry in made)
    assert first["output_sha256"] == hashlib.sha256(redacted.pixelated.read_bytes()).hexdigest()
    assert second["output_sha256"] == hashlib.sha256(redacted.solid.read_bytes()).hexdigest()
    ops = first["operations"]
    assert ops[0]["op"] == "mask_faces" and ops[0]["mask"] == "pixelate"
    assert "haarcascade_frontalface_default.xml" in ops[0]["detector"]["model"]
    assert {"op": "mute", "start_ms": 400, "end_ms": 900} in ops
    assert {"op": "bleep", "start_ms": 1200, "end_ms": 1600} in ops
    assert {"op": "exclude_track", "track": 1} in second["operations"]
    assert second["tracks_found"] >= 3 and 1 not in second["tracks_masked"]
    assert bwv("station", "audit", "--data", str(redacted.data), "--verify").returncode == 0


@pytest.mark.parametrize(("args", "status", "message"), [
    (["NOPE"], 1, "no recording NOPE in the catalogue"),
    (["RID", "--mute", "5-2"], 2, "argument --mute: '5-2': the range ends before it starts"),
    (["RID", "--bleep", "soon"], 2, "argument --bleep: 'soon' is not a range START-END"),
    (["RID", "--mute", "30-31"], 1, "--mute 30-31: the footage is 2.0"),
    (["RID", "--exclude-track", "zero"], 2, "'zero' is not a track id"),
    (["RID", "--detect-every", "9"], 2, "'9' is not a whole number of frames from 1 to 4"),
    (["RID", "--out", "EXISTING"], 1, "exists: give another --out (nothing is overwritten)"),
    (["RID", "--box", "1:10,10"], 2, "argument --box: '1:10,10' is not a keyframe T:X,Y,W,H"),
    (["RID", "--box", "1:1,1,0,4"], 2, "a box is at least one pixel wide and high"),
    (["RID", "--box", "1:1,1,4,4;0.5:1,1,4,4"], 2, "the keyframes' times must increase"),
    (["RID", "--box", "0.5:300,10,40,40"], 2,
     "--box 0.5:300,10,40,40: 0.5:300,10,40,40 is outside the 320x240 frame"),
    (["RID", "--box", "1:1,1,4,4;2.5:1,1,4,4"], 2, "2.5 s is past the end (the footage is 2.0"),
])
def test_bad_input_is_one_line_and_an_exit_status(redacted: Redacted, tmp_path: Path,
                                                  args: list[str], status: int,
                                                  message: str) -> None:
    existing = tmp_path / "taken.mp4"
    existing.write_bytes(b"keep me")
    args = [redacted.recording_id if arg == "RID" else str(existing) if arg == "EXISTING"
            else arg for arg in args]
    out = [] if "--out" in args else ["--out", str(tmp_path / "new.mp4")]
    result = bwv("station", "redact", *args, "--data", str(redacted.data), *out)
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.splitlines()[-1]
    assert message in last, result.stderr
    if status == 1 or message.startswith("--box"):  # a box outside the frame: one line
        assert result.stderr.count("\n") == 1, result.stderr
    assert existing.read_bytes() == b"keep me"
    assert [path.name for path in tmp_path.iterdir()] == ["taken.mp4"]  # nothing left behind


def test_a_plan_refuses_ranges_past_the_end_and_tracks_not_found() -> None:
    plan = Plan("R", exclude_tracks=(2, 9), mute=(parse_range("1:00-1:02.5"),))
    assert plan.mute == (AudioRange(60.0, 62.5),)
    with pytest.raises(BadPlanError, match=r"^--mute 60-62.5: the footage is 59.00 s long$"):
        plan.check(59.0, None)
    plan.check(61.0, None)  # a range may run past the end; it may not start there
    with pytest.raises(BadPlanError, match=r"^--exclude-track 9: no such face track "
                       r"\(found: 1, 2, 3\)$"):
        plan.check(61.0, {1, 2, 3})
    with pytest.raises(BadPlanError, match="mask 'blur'"):
        Plan("R", mask="blur")


def test_a_box_is_parsed_interpolated_and_checked_against_the_frame() -> None:
    box = parse_box("0.5:20,150,60,30; 1:30:200,100,100,60")
    assert [k.t_ms for k in box.keyframes] == [500, 90_000]
    assert box.at(0.0, 0.4) is None and box.at(90.01, 90.05) is None
    assert box.at(0.48, 0.52) == Box(20, 150, 60, 30)  # a frame that overlaps the start
    assert box.at(45.25, 45.28) == Box(110, 125, 80, 45)  # halfway
    assert box.at(90.0, 90.03) == Box(200, 100, 100, 60)
    plan = Plan("R", boxes=(box,))
    assert plan.operations()[-1]["keyframes"][1] == {"t_ms": 90_000, "x": 200, "y": 100,
                                                      "w": 100, "h": 60}
    plan.check(90.0, None, (300, 240))
    with pytest.raises(BadPlanError, match=r"is outside the 299x240 frame$"):
        plan.check(90.0, None, (299, 240))
    with pytest.raises(BadPlanError, match=r"90 s is past the end"):
        plan.check(89.9, None, (300, 240))


class NoFaces(FaceDetector):
    """A detector that finds nothing: what changes is the manual box alone."""

    def detect(self, luma: npt.NDArray[np.uint8]) -> list[Box]:
        return []


def test_a_manual_box_masks_its_interpolated_place_and_nothing_else(redacted: Redacted,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "box.mp4"
    box = parse_box(BOX)
    render(redacted.original, out, Plan(redacted.recording_id, mask="solid", boxes=(box,)),
           NoFaces())
    original, boxed = rgb_frames(redacted.original), rgb_frames(out)
    assert len(original) == len(boxed) == SECONDS * faces.FPS
    for number, (x, y, w, h) in ((15, (20, 150, 60, 30)), (30, (110, 125, 80, 45)),
                                 (45, (200, 100, 100, 60))):  # 0.5 s, 1 s (halfway), 1.5 s
        was, now = original[number].astype(int), boxed[number].astype(int)
        inside = (slice(y + 2, y + h - 2), slice(x + 2, x + w - 2))
        assert np.abs(was[inside] - now[inside]).mean() > 10, number
        # one flat grey where the original had detail: nothing of it is left
        assert now[inside].std() < 3 and was[inside].std() > 10, number
        outside = np.ones(was.shape[:2], bool)
        outside[max(0, y - 4):y + h + 4, max(0, x - 4):x + w + 4] = False
        assert np.abs(was[outside] - now[outside]).mean() < 3, number  # the re-encoding only
    for number in (0, 10, 50, 59):  # before the first keyframe and after the last
        assert np.abs(original[number].astype(int) - boxed[number]).mean() < 3, number


def test_one_pass_masks_the_very_boxes_of_two_passes(redacted: Redacted,
                                                      tmp_path: Path) -> None:
    """The command renders in one decode, each frame masked once the detections after it are
    in; the review page finds the faces first, then renders: same tracks, same masked pixels
    (a solid fill, so the frames compare exactly), and faces were masked at all."""
    plan = Plan(redacted.recording_id, mask="solid")
    one, two = tmp_path / "one.mp4", tmp_path / "two.mp4"
    detector = FaceDetector()
    found = detect_faces(redacted.original, detector, Tracking(), DETECT_EVERY)
    alone = render(redacted.original, one, plan, detector)
    after = render(redacted.original, two, plan, detector, found=found)
    assert [t.detections for t in alone.tracks] == [t.detections for t in found[0]]
    assert alone.frames == after.frames == SECONDS * faces.FPS
    assert alone.masked_boxes == after.masked_boxes > SECONDS * faces.FPS
    for first, second in zip(rgb_frames(one), rgb_frames(two), strict=True):
        assert np.array_equal(first, second)


def test_a_mask_keeps_nothing_of_the_pixels_inside_the_box() -> None:
    random = np.random.default_rng(7)
    frame = random.integers(0, 256, size=(48 * 3 // 2, 64), dtype=np.uint8)
    original = frame.copy()
    box = Box(10, 6, 30, 24)
    Masker("pixelate").apply(frame, 64, 48, [box])
    inside = (slice(6, 30), slice(10, 40))
    assert np.abs(np.corrcoef(original[inside].ravel().astype(float),
                              frame[inside].ravel().astype(float))[0, 1]) < 0.2
    outside = frame.copy()
    outside[inside] = original[inside]
    assert np.array_equal(outside[:48], original[:48])  # the rest of the luma is untouched
    again = original.copy()
    Masker("solid").apply(again, 64, 48, [box])
    assert np.all(again[inside] == 60)



# -- provenance: the signed report and the C2PA Content Credentials

def report_of(output: Path) -> dict[str, Any]:
    body = output.with_name(output.name + ".report.json").read_bytes()
    assert body.endswith(b"\n") and body.count(b"\n") == 1  # one line of canonical JSON
    report: dict[str, Any] = json.loads(body)
    assert json.dumps(report, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode() + b"\n" == body
    return report


def openssl_verifies(report: Path, signature: Path, workdir: Path) -> bool:
    """docs/redaction.md's recipe: the station's key out of the report (jq), then openssl."""
    key = workdir / "station_key.pem"
    extracted = subprocess.run(["jq", "-r", ".station_public_key", str(report)],
                               capture_output=True, text=True, check=True)
    key.write_text(extracted.stdout)
    result = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key),
                             "-rawin", "-in", str(report), "-sigfile", str(signature)],
                            capture_output=True, text=True)
    assert ("Signature Verified Successfully" in result.stdout) == (result.returncode == 0)
    return result.returncode == 0


def test_the_signed_report_names_the_original_every_operation_and_the_output(
        redacted: Redacted, tmp_path: Path) -> None:
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed (the recipe's first step)")
    output = redacted.pixelated
    report_path = output.with_name("pixelated.mp4.report.json")
    signature = output.with_name("pixelated.mp4.report.json.sig")
    assert f"report {report_path} (sha256 " in redacted.pixelated_stdout
    assert str(signature) in redacted.pixelated_stdout
    for path in (report_path, signature):
        assert path.stat().st_mode & 0o777 == 0o600
    report = report_of(output)
    original = report["original"]
    assert original["recording_id"] == redacted.recording_id and original["device_id"] == "cam7"
    assert original["manifest_sha256"] == hashlib.sha256(
        (redacted.recording / "manifest.jsonl").read_bytes()).hexdigest()
    assert original["segments"] == [
        {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        for path in sorted(redacted.recording.glob("*.mp4"))]
    ops = report["operations"]
    assert ops[0]["op"] == "mask_faces" and ops[0]["detector"]["stride"] == DETECT_EVERY
    assert {"op": "mute", "start_ms": 400, "end_ms": 900} in ops
    assert {"op": "bleep", "start_ms": 1200, "end_ms": 1600} in ops
    assert {"op": "box", "keyframes": [{"t_ms": 500, "x": 20, "y": 150, "w": 60, "h": 30},
                                       {"t_ms": 1500, "x": 200, "y": 100, "w": 100, "h": 60}]} \
        in ops
    assert report["result"]["frames"] == SECONDS * faces.FPS
    assert report["result"]["tracks_found"] >= 3 and report["result"]["boxes_masked"] > 0
    assert report["output"]["file"] == "pixelated.mp4"
    assert report["output"]["bytes"] == output.stat().st_size
    assert report["output"]["sha256"] == hashlib.sha256(output.read_bytes()).hexdigest()
    assert report["approved_by"] == "DO 42" and report["approved_at"].endswith("Z")
    station = bwv("station", "key", "--data", str(redacted.data))
    assert f"key sha256 {report['station_key_sha256']}" in station.stderr
    assert report["station_id"] in station.stdout
    # the recipe of docs/redaction.md with the real openssl; then one byte changed
    assert openssl_verifies(report_path, signature, tmp_path)
    changed = tmp_path / "changed.report.json"
    body = bytearray(report_path.read_bytes())
    body[body.index(b'"approved_by":"DO 42"') + len('"approved_by":"DO ')] ^= 1  # 42 -> 52
    changed.write_bytes(bytes(body))
    assert not openssl_verifies(changed, signature, tmp_path)


def test_the_audit_entry_names_the_report(redacted: Redacted) -> None:
    result = bwv("station", "audit", "--data", str(redacted.data), "--recording",
                 redacted.recording_id)
    made = [json.loads(line)["detail"] for line in result.stdout.splitlines()
            if json.loads(line)["action"] == "redact"]
    for detail, output in zip(made, (redacted.pixelated, redacted.solid), strict=True):
        report = output.with_name(output.name + ".report.json")
        assert detail["report_sha256"] == hashlib.sha256(report.read_bytes()).hexdigest()
    assert made[1]["content_credentials"] is False


def test_without_c2pa_the_copy_is_made_and_both_stderr_and_the_report_say_why(
        redacted: Redacted) -> None:
    line, = redacted.solid_stderr.splitlines()
    assert line == (f"bwv station redact: no content credentials added to {redacted.solid}: "
                    "c2pa-python is not installed (No module named 'c2pa' (hidden by the "
                    "test)); it has wheels for Linux (x86-64, aarch64), macOS and Windows only")
    assert "content credentials: none" in redacted.solid_stdout
    made = report_of(redacted.solid)["output"]["content_credentials"]
    assert made["added"] is False and "c2pa-python is not installed" in made["reason"]
    try:
        import c2pa
    except ImportError:
        return
    with open(redacted.solid, "rb") as file:
        assert c2pa.Reader.try_create("video/mp4", file) is None  # no manifest in it


def c2pa_reader(path: Path, anchors: bytes) -> Any:
    c2pa = pytest.importorskip("c2pa", reason="c2pa-python has no wheel for this platform "
                               "(pyproject.toml's station extra)")
    context = c2pa.Context.from_dict({"trust": {"trust_anchors": anchors.decode()},
                                      "verify": {"verify_trust": True}})
    with open(path, "rb") as file:
        return c2pa.Reader("video/mp4", file, context=context)


def failures(reader: Any) -> list[str]:
    results = reader.get_validation_results() or {}
    return [item["code"] for item in results.get("activeManifest", {}).get("failure", [])]


def test_content_credentials_verify_against_the_station_ca(redacted: Redacted,
                                                            tmp_path: Path) -> None:
    from cryptography import x509

    from recorder.station.content_ca import ContentCa

    ca_pem = (redacted.data / "c2pa_ca.pem").read_bytes()
    for name in ("c2pa_ca_key.pem", "c2pa_ca.pem", "c2pa_signer_key.pem", "c2pa_signer.pem"):
        assert (redacted.data / name).stat().st_mode & 0o777 == 0o600
    ca = x509.load_pem_x509_certificate(ca_pem)
    fingerprint = hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert f"(sha256 {fingerprint})" in redacted.pixelated_stdout
    signer = x509.load_pem_x509_certificate((redacted.data / "c2pa_signer.pem").read_bytes())
    assert signer.issuer == ca.subject != signer.subject
    assert signer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert signer.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    reader = c2pa_reader(redacted.pixelated, ca_pem)
    assert reader.get_validation_state() == "Trusted", failures(reader)
    active = reader.get_active_manifest()
    station_id = report_of(redacted.pixelated)["station_id"]
    assert station_id in active["claim_generator_info"][0]["name"]
    assert active["signature_info"]["common_name"] == f"{station_id} content credentials"
    actions = next(assertion["data"]["actions"] for assertion in active["assertions"]
                   if assertion["label"].startswith("c2pa.actions"))
    assert [action["action"] for action in actions] == [
        "c2pa.opened", "c2pa.edited", "c2pa.redacted", "c2pa.transcoded"]
    assert actions[2]["reason"] == "c2pa.PII.present"
    assert "a box drawn by hand masked from 500 to 1500 ms (2 keyframes)" in \
        actions[1]["description"]
    ingredient, = active["ingredients"]
    original = report_of(redacted.pixelated)["original"]
    assert ingredient["title"] == redacted.recording_id
    assert ingredient["relationship"] == "parentOf"
    assert original["manifest_sha256"] in ingredient["instance_id"]
    assert ingredient["metadata"]["org.bwv-recorder.recording"]["segments"] == \
        original["segments"]
    # a byte of the picture changed after signing: the hash binding fails
    tampered = tmp_path / "tampered.mp4"
    data = bytearray(redacted.pixelated.read_bytes())
    data[data.index(b"mdat") + 200] ^= 0x01
    tampered.write_bytes(bytes(data))
    reader = c2pa_reader(tampered, ca_pem)
    assert reader.get_validation_state() == "Invalid"
    assert "assertion.bmffHash.mismatch" in failures(reader)
    # another station's CA is no anchor for this one's credentials
    other = ContentCa.load_or_create(tmp_path / "other", "station-other")
    reader = c2pa_reader(redacted.pixelated, other.ca_cert_pem)
    assert reader.get_validation_state() != "Trusted"
    assert "signingCredential.untrusted" in failures(reader)


def test_a_taken_report_path_is_refused_before_any_work(redacted: Redacted,
                                                         tmp_path: Path) -> None:
    (tmp_path / "new.mp4.report.json.sig").write_bytes(b"keep me")
    result = bwv("station", "redact", redacted.recording_id, "--data", str(redacted.data),
                 "--out", str(tmp_path / "new.mp4"))
    assert result.returncode == 1
    assert result.stderr == (f"bwv station redact: {tmp_path / 'new.mp4.report.json.sig'} "
                             "exists: give another --out (nothing is overwritten)\n")
    assert [path.name for path in tmp_path.iterdir()] == ["new.mp4.report.json.sig"]


def test_the_station_ca_is_made_once_and_refused_when_others_may_read_it(
        tmp_path: Path) -> None:
    from cryptography import x509

    from recorder.station.content_ca import ContentCa, ContentCaError

    first = ContentCa.load_or_create(tmp_path, "station-x")
    again = ContentCa.load_or_create(tmp_path, "station-x")
    assert again == first  # read back, not made again
    ca = x509.load_pem_x509_certificate(first.ca_cert_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    signer = x509.load_pem_x509_certificate(first.signer_cert_pem)
    usages = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {usage.dotted_string for usage in usages} == {"1.3.6.1.5.5.7.3.4",
                                                         "1.3.6.1.5.5.7.3.36"}
    os.chmod(tmp_path / "c2pa_ca_key.pem", 0o644)
    with pytest.raises(ContentCaError, match=r"c2pa_ca_key.pem has mode 0644: .* chmod 600"):
        ContentCa.load_or_create(tmp_path, "station-x")
