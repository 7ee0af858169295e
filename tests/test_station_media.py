"""recorder.station.media.mime_type names a segment's codecs from its own boxes; ffprobe (FFmpeg's
reading of the same file) is the oracle of the profile, level and audio object type. Segments
come from the recorder itself and from PyAV's libx264 (another profile and level), with and
without audio; damaged or foreign sample descriptions are refused with a clear error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recorder.integrity.bmff import BoxFormatError, read_sample_entries
from recorder.station.media import MediaTypeError, mime_type
from support.recording import ffprobe, settings
from support.segments import write_segments

# ffprobe's H.264 profile names and their profile_idc (ITU-T H.264 A.2)
PROFILE_IDC = {"Constrained Baseline": 66, "Baseline": 66, "Main": 77, "High": 100}
CODECS = re.compile(r'^video/mp4; codecs="avc1\.([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})'
                    r'(?:, mp4a\.40\.(\d+))?"$')


@pytest.fixture(scope="module")
def recorder_segment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A segment the recorder wrote (synthetic camera and tone, not in real time)."""
    from recorder.board import BoardSettings, ScriptedBoard
    from recorder.cli.record import record

    tmp = tmp_path_factory.mktemp("media")
    with ScriptedBoard(BoardSettings()) as board:
        recording = record(settings(tmp), board, duration_s=1.0, trigger_after_s=0.5,
                           realtime=False, recordings_dir=tmp / "recordings")
    return recording / "000001.mp4"


@pytest.fixture(scope="module")
def pyav_segments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pyav")
    return {"audio": write_segments(tmp / "audio", seconds=2)[0].path,
            "silent": write_segments(tmp / "silent", seconds=2, audio=False)[0].path}


def check_against_ffprobe(segment: Path) -> str:
    said = mime_type(segment.read_bytes())
    found = CODECS.match(said)
    assert found, said
    profile, _, level, audio_object_type = found.groups()
    streams = {stream["codec_type"]: stream for stream in ffprobe(segment)["streams"]}
    assert int(profile, 16) == PROFILE_IDC[streams["video"]["profile"]], said
    assert int(level, 16) == streams["video"]["level"], said
    if "audio" in streams:
        assert streams["audio"]["profile"] == "LC" and audio_object_type == "2", said
    else:
        assert audio_object_type is None, said
    return said


def test_the_recorders_segment(recorder_segment: Path) -> None:
    said = check_against_ffprobe(recorder_segment)
    # constrained baseline (the level follows the frame size: 1.3 at 320x240), AAC-LC
    assert said == 'video/mp4; codecs="avc1.42c00d, mp4a.40.2"'


def test_libx264_segments_with_and_without_audio(pyav_segments: dict[str, Path]) -> None:
    with_audio = check_against_ffprobe(pyav_segments["audio"])
    without = check_against_ffprobe(pyav_segments["silent"])
    assert "mp4a" in with_audio and "mp4a" not in without
    assert with_audio.split(",")[0] != 'video/mp4; codecs="avc1.42c01e'  # another profile


def test_the_moov_alone_is_enough(recorder_segment: Path) -> None:
    data = recorder_segment.read_bytes()
    moov_end = max(entry_end(data, "moov"), entry_end(data, "ftyp"))
    assert mime_type(data[:moov_end]) == mime_type(data)


def entry_end(data: bytes, box_type: str) -> int:
    """The end of the first top-level box of ``box_type``."""
    position = 0
    while position < len(data):
        size = int.from_bytes(data[position:position + 4], "big")
        if data[position + 4:position + 8] == box_type.encode():
            return position + size
        position += size
    raise AssertionError(f"no {box_type}")


def replaced(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, old
    return data.replace(old, new)


def test_a_codec_it_cannot_name_is_refused(recorder_segment: Path) -> None:
    data = replaced(recorder_segment.read_bytes(), b"avc1\x00\x00", b"hvc1\x00\x00")
    with pytest.raises(MediaTypeError, match=r"track 1 is 'hvc1'"):
        mime_type(data)


def test_a_damaged_avcc_is_refused(recorder_segment: Path) -> None:
    data = recorder_segment.read_bytes()
    at = data.index(b"avcC") + 4
    damaged = data[:at] + b"\x00" + data[at + 1:]  # configurationVersion 0
    with pytest.raises(MediaTypeError, match="no valid avcC"):
        mime_type(damaged)


def test_a_damaged_esds_is_refused(recorder_segment: Path) -> None:
    """Descriptor sizes larger than what the esds holds: refused, not read past the box."""
    data = bytearray(recorder_segment.read_bytes())
    at = data.index(b"esds") + 4 + 4  # version and flags, then the ES_Descriptor's tag
    assert data[at] == 0x03
    # every size byte of the ES_Descriptor claims the maximum: more bytes than the box has
    for offset in range(1, 5):
        data[at + offset] = 0xFF if offset < 4 else 0x7F
    with pytest.raises(MediaTypeError, match="esds box is damaged"):
        mime_type(bytes(data))


def test_a_wrong_descriptor_tag_is_refused(recorder_segment: Path) -> None:
    data = bytearray(recorder_segment.read_bytes())
    at = data.index(b"esds") + 8
    data[at] = 0x04  # a DecoderConfigDescriptor where the ES_Descriptor must be
    with pytest.raises(MediaTypeError, match="tag 0x04 where 0x03"):
        mime_type(bytes(data))


def test_no_moov_is_a_box_format_error(recorder_segment: Path) -> None:
    data = recorder_segment.read_bytes()
    with pytest.raises(BoxFormatError, match="no 'moov'"):
        mime_type(data[:entry_end(data, "ftyp")])


def test_sample_entries_name_each_tracks_codec_boxes(recorder_segment: Path) -> None:
    entries = read_sample_entries(recorder_segment)
    assert {(e.track_id, e.handler, e.type) for e in entries.values()} == {
        (1, "vide", "avc1"), (2, "soun", "mp4a")}
    assert "avcC" in entries[1].boxes and entries[1].boxes["avcC"][0] == 1
    assert "esds" in entries[2].boxes


def test_a_sample_entry_too_short_for_its_fields_is_refused(recorder_segment: Path) -> None:
    """A sample entry whose declared size leaves no room for its visual fields: refused at the
    entry's offset, never read into the next box."""
    data = bytearray(recorder_segment.read_bytes())
    at = data.index(b"avc1\x00\x00") - 4
    data[at:at + 4] = (8 + 40).to_bytes(4, "big")  # 40 bytes of payload: fewer than 78
    with pytest.raises(BoxFormatError, match="too short for its 78 bytes"):
        read_sample_entries(bytes(data))
