"""Video the muxer cannot use (before the first keyframe) is entered in the manifest as a
``dropped`` event, so that the recording says what it lacks (issue 13, finding 10); it was only
logged. Real encoder output, a real recording on disk, checked by the verifier."""

from __future__ import annotations

from pathlib import Path

from recorder import AccessUnit
from recorder.integrity.keys import DeviceKey
from recorder.integrity.verify import verify_recording
from recorder.storage.recording import RecordingFactory
from support.media import h264
from support.recording import manifest_lines, settings


def record(tmp_path: Path, units: list[AccessUnit]) -> tuple[Path, DeviceKey]:
    key = DeviceKey.load_or_create(tmp_path / "data")
    factory = RecordingFactory(tmp_path / "recordings", key, settings(tmp_path), None)
    recording = factory.open()
    for unit in units:
        recording.write(unit)
    recording.seal("test")
    return recording.path, key


def test_video_before_the_first_keyframe_is_entered_as_a_dropped_event(tmp_path: Path) -> None:
    encoded = [AccessUnit(u.stream, u.pts_us, u.is_keyframe, u.payload)
               for u in h264(frames=45, gop=15)]
    assert [u.is_keyframe for u in encoded[5:16]] == [False] * 10 + [True]
    path, key = record(tmp_path, encoded[5:])
    lines = manifest_lines(path)
    dropped = [line for line in lines if line.get("event") == "dropped"]
    assert [line["detail"] for line in dropped] == [{
        "stream": "video", "units": 10, "first_pts_us": encoded[5].pts_us,
        "last_pts_us": encoded[14].pts_us, "reason": "before the first keyframe"}]
    assert dropped[0]["pts_us"] == encoded[5].pts_us
    # entered as soon as the recording started, before its first segment
    assert lines.index(dropped[0]) < next(i for i, line in enumerate(lines)
                                          if line["type"] == "segment")
    report = verify_recording(path, key.public_key)
    assert report.ok, report


def test_a_recording_without_a_keyframe_says_that_all_its_video_was_dropped(
        tmp_path: Path) -> None:
    encoded = [AccessUnit(u.stream, u.pts_us, u.is_keyframe, u.payload)
               for u in h264(frames=45, gop=15)]
    path, key = record(tmp_path, encoded[1:10])
    (dropped,) = [line for line in manifest_lines(path) if line.get("event") == "dropped"]
    assert dropped["detail"]["units"] == 9
    assert manifest_lines(path)[-1]["type"] == "sealed"


def test_a_recording_with_nothing_dropped_has_no_dropped_event(tmp_path: Path) -> None:
    encoded = [AccessUnit(u.stream, u.pts_us, u.is_keyframe, u.payload)
               for u in h264(frames=45, gop=15)]
    path, _ = record(tmp_path, encoded)
    assert not [line for line in manifest_lines(path) if line.get("event") == "dropped"]
