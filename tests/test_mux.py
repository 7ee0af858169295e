"""The fragmented-MP4 muxer, on both implementations, checked by ffprobe and ffmpeg as oracles."""

from __future__ import annotations

import struct
from pathlib import Path
from types import ModuleType

import pytest

from recorder.capture.access_unit import AUDIO, VIDEO
from recorder.errors import EmptyAccessUnitError
from support.media import (Unit, aac, boxes, ffmpeg_decode_errors, ffprobe, frame_pts, h264,
                           interleave, mux_all)


def _write(tmp_path: Path, segments: list[bytes]) -> list[Path]:
    paths = []
    for index, data in enumerate(segments, 1):
        path = tmp_path / f"{index:06d}.mp4"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _concat(tmp_path: Path, paths: list[Path]) -> Path:
    joined = tmp_path / "joined.mp4"
    joined.write_bytes(b"".join(p.read_bytes() for p in paths))
    return joined


def test_each_segment_plays_alone_with_video_and_audio(mux_impl: ModuleType,
                                                       tmp_path: Path) -> None:
    config, audio = aac(3.0)
    video = h264(160, 120, frames=90, gop=30)
    segments = mux_all(mux_impl, interleave(video, audio), config, segment_seconds=1.5)
    paths = _write(tmp_path, segments)
    assert len(paths) == 2  # keyframes at 0, 1, 2 s: the cut is at 2 s
    expected_frames = [60, 30]
    starts = [0.0, (video[60].pts_us - video[0].pts_us) / 1e6]
    for path, frames, start in zip(paths, expected_frames, starts):
        assert ffmpeg_decode_errors(path) == ""
        v, a = ffprobe(path)
        assert (v["codec_name"], v["width"], v["height"]) == ("h264", 160, 120)
        assert int(v["nb_read_frames"]) == frames
        assert float(v["start_time"]) == pytest.approx(start, abs=1e-5)
        # fragmented MP4 without sidx: ffprobe's duration is where the stream ends
        assert float(v["duration"]) == pytest.approx(start + frames / 30, abs=1e-3)
        assert a["codec_name"] == "aac" and a["sample_rate"] == "48000"
        assert abs(float(a["start_time"]) - start) < 0.03  # audio within one AAC frame of video


def test_concatenated_segments_decode_every_frame(mux_impl: ModuleType, tmp_path: Path) -> None:
    config, audio = aac(4.0)
    video = h264(160, 120, frames=120, gop=20)
    # keyframes every 0.67 s; frame times are whole microseconds, a hair under the ideal ones
    paths = _write(tmp_path, mux_all(mux_impl, interleave(video, audio), config,
                                     segment_seconds=1.0))
    assert len(paths) == 3
    joined = _concat(tmp_path, paths)
    assert ffmpeg_decode_errors(joined) == ""
    v, a = ffprobe(joined)
    assert int(v["nb_read_frames"]) == 120
    assert int(a["nb_read_frames"]) == _audio_kept(audio, video)
    shown = frame_pts(joined)
    expected = [(u.pts_us - video[0].pts_us) / 1e6 for u in video]
    assert shown == pytest.approx(expected, abs=1e-5)


def test_video_only_segments_have_one_track(mux_impl: ModuleType, tmp_path: Path) -> None:
    video = h264(64, 48, frames=45, gop=15)
    paths = _write(tmp_path, mux_all(mux_impl, list(video), None, segment_seconds=0.9))
    assert len(paths) == 2
    for path in paths:
        assert ffmpeg_decode_errors(path) == ""
        (stream,) = ffprobe(path)
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 64, 48)


def test_b_frames_keep_display_order_through_composition_offsets(mux_impl: ModuleType,
                                                                 tmp_path: Path) -> None:
    config, audio = aac(2.0)
    video = h264(160, 120, frames=60, gop=30, bframes=2)
    assert any(u.dts_us != u.pts_us for u in video)
    paths = _write(tmp_path, mux_all(mux_impl, interleave(video, audio), config,
                                     segment_seconds=1.0))
    joined = _concat(tmp_path, paths)
    assert ffmpeg_decode_errors(joined) == ""
    origin = video[0].dts_us
    assert origin is not None
    expected = sorted((u.pts_us - origin) / 1e6 for u in video)
    assert frame_pts(joined) == pytest.approx(expected, abs=1e-5)
    assert b"trun" in paths[0].read_bytes()


def test_variable_frame_rate_keeps_each_frames_time(mux_impl: ModuleType, tmp_path: Path) -> None:
    video = h264(64, 48, frames=60, gop=20, jitter_us=9000)
    paths = _write(tmp_path, mux_all(mux_impl, list(video), None))
    expected = [(u.pts_us - video[0].pts_us) / 1e6 for u in video]
    assert len(set(round(b - a, 4) for a, b in zip(expected, expected[1:]))) > 5
    assert frame_pts(paths[0]) == pytest.approx(expected, abs=1e-5)


def test_parameter_set_change_starts_a_new_segment(mux_impl: ModuleType, tmp_path: Path) -> None:
    small = h264(64, 48, frames=30, gop=15)
    large = h264(160, 120, frames=30, gop=15, start_us=2_000_000)
    paths = _write(tmp_path, mux_all(mux_impl, list(small + large), None))
    assert len(paths) == 2
    sizes = [(s["width"], s["height"], int(s["nb_read_frames"]))
             for p in paths for s in ffprobe(p)]
    assert sizes == [(64, 48, 30), (160, 120, 30)]
    for path in paths:
        assert ffmpeg_decode_errors(path) == ""


def _ticks(video: tuple[Unit, ...], index: int) -> int:
    """90 kHz decode time of video[index] in the recording (origin: the first keyframe)."""
    return ((video[index].pts_us - video[0].pts_us) * 90_000 + 500_000) // 1_000_000


def _audio_kept(audio: tuple[Unit, ...], video: tuple[Unit, ...]) -> int:
    """AAC frames not older than the first keyframe (the encoder's priming frame is)."""
    return sum(1 for unit in audio if unit.pts_us >= video[0].pts_us)


def _fragment_layout(data: bytes) -> tuple[list[str], list[int]]:
    """Top-level box types and the video tfdt of each moof."""
    types = []
    tfdts = []
    for kind, offset, size in boxes(data):
        types.append(kind)
        if kind == "moof":
            at = data.index(b"tfdt", offset)
            tfdts.append(struct.unpack(">Q", data[at + 8:at + 16])[0])
    return types, tfdts


def test_long_gop_is_split_into_fragments_of_at_most_fragment_seconds(mux_impl: ModuleType) -> None:
    video = h264(64, 48, frames=150, gop=75)  # 2.5 s GOPs
    (segment,) = mux_all(mux_impl, list(video), None, segment_seconds=60, fragment_seconds=0.99)
    types, tfdts = _fragment_layout(segment)
    assert types[:2] == ["ftyp", "moov"]
    assert types[2:] == ["moof", "mdat"] * 6  # each GOP: 1 s, 1 s, 0.5 s
    assert tfdts == [_ticks(video, k) for k in (0, 30, 60, 75, 105, 135)]


def test_tfdt_continues_across_segments(mux_impl: ModuleType) -> None:
    video = h264(64, 48, frames=90, gop=30)
    segments = mux_all(mux_impl, list(video), None, segment_seconds=0.9)
    assert [_fragment_layout(s)[1] for s in segments] == [[_ticks(video, k)] for k in (0, 30, 60)]


def test_units_before_the_first_keyframe_are_dropped_and_counted(mux_impl: ModuleType) -> None:
    config, audio = aac(1.0, start_us=0)
    video = h264(64, 48, frames=30, gop=15, start_us=500_000)
    muxer = mux_impl.FragmentedMp4Muxer(config)
    muxer.push(AUDIO, audio[0].pts_us, True, audio[0].payload)
    muxer.push(VIDEO, video[1].pts_us, False, video[1].payload)
    assert muxer.dropped_units == 2
    assert muxer.segment == 0
    for unit in video[15:]:
        muxer.push(unit.stream, unit.pts_us, unit.is_keyframe, unit.payload)
    for unit in audio:  # audio older than the first keyframe is dropped too
        if unit.pts_us > 1_000_000:
            muxer.push(unit.stream, unit.pts_us, True, unit.payload)
    assert muxer.dropped_units == 2
    last = muxer.close()
    assert last is not None and last.segment == 1 and last.ends_segment
    assert last.first_pts_us == video[15].pts_us


def test_fragments_report_segment_boundaries_and_pts(mux_impl: ModuleType) -> None:
    video = h264(64, 48, frames=60, gop=15)
    muxer = mux_impl.FragmentedMp4Muxer(None, segment_seconds=0.9)
    fragments = [f for u in video
                 if (f := muxer.push(u.stream, u.pts_us, u.is_keyframe, u.payload)) is not None]
    last = muxer.close()
    assert last is not None
    fragments.append(last)
    assert [(f.segment, f.sequence, f.starts_segment, f.ends_segment) for f in fragments] == [
        (1, 1, True, False), (1, 2, False, True), (2, 3, True, False), (2, 4, False, True)]
    assert [(f.first_pts_us, f.last_pts_us) for f in fragments] == [
        (video[i].pts_us, video[i + 14].pts_us) for i in (0, 15, 30, 45)]
    assert muxer.close() is None


@pytest.mark.parametrize("payload, words", [
    (b"\x65\x88\x84", "no start code"),
    (b"\x01\x00\x00\x01\x65\x88", "not all zero"),
    (b"\x00\x00\x01\x00\x00\x00\x01", "no NAL unit"),
])
def test_payload_that_is_not_annex_b_is_refused(mux_impl: ModuleType, payload: bytes,
                                                words: str) -> None:
    muxer = mux_impl.FragmentedMp4Muxer(None)
    with pytest.raises(mux_impl.AnnexBError, match=words):
        muxer.push(VIDEO, 0, True, payload)


@pytest.mark.parametrize("started", [False, True], ids=["before-first-keyframe", "recording"])
@pytest.mark.parametrize("stream", [VIDEO, AUDIO])
@pytest.mark.parametrize("empty", [b"", bytearray(), memoryview(b"")], ids=["bytes", "bytearray",
                                                                            "memoryview"])
def test_empty_access_unit_is_refused_like_the_ring_does(mux_impl: ModuleType, started: bool,
                                                         stream: int, empty: bytes) -> None:
    """An empty payload on either stream: the ring's EmptyAccessUnitError, and nothing muxed."""
    config, audio = aac(0.2)
    video = h264(64, 48, frames=4, gop=2)
    muxer = mux_impl.FragmentedMp4Muxer(config)
    if started:
        muxer.push(VIDEO, video[0].pts_us, True, video[0].payload)
    with pytest.raises(EmptyAccessUnitError,
                       match=f"empty access unit on stream {stream} at pts_us=5000000"):
        muxer.push(stream, 5_000_000, True, empty)
    assert muxer.dropped_units == 0
    for unit in interleave(video[1:] if started else video, audio):
        muxer.push(*unit)
    last = muxer.close()
    assert last is not None and last.data.count(b"mdat") == 1


def test_first_keyframe_without_parameter_sets_is_refused(mux_impl: ModuleType) -> None:
    video = h264(64, 48, frames=30, gop=15)
    muxer = mux_impl.FragmentedMp4Muxer(None)
    with pytest.raises(mux_impl.ParameterSetError, match="repeat parameter sets"):
        muxer.push(VIDEO, 0, True, video[15].payload[:0] + b"\x00\x00\x00\x01\x65\x88\x80")


def test_timestamps_that_do_not_advance_are_refused(mux_impl: ModuleType) -> None:
    video = h264(64, 48, frames=30, gop=15)
    muxer = mux_impl.FragmentedMp4Muxer(None)
    muxer.push(VIDEO, 1000, True, video[0].payload)
    with pytest.raises(mux_impl.MuxTimestampError, match="must increase"):
        muxer.push(VIDEO, 1005, False, video[1].payload)  # less than one 90 kHz tick later
    with pytest.raises(mux_impl.MuxTimestampError, match="before its dts"):
        muxer.push(VIDEO, 50_000, False, video[1].payload, 60_000)


def test_audio_into_a_video_only_muxer_is_refused(mux_impl: ModuleType) -> None:
    muxer = mux_impl.FragmentedMp4Muxer(None)
    with pytest.raises(mux_impl.AudioConfigError, match="audio_config"):
        muxer.push(AUDIO, 0, True, b"\x21\x00")


@pytest.mark.parametrize("config, words", [(b"\x12", "too short"), (b"\x2b\x88", "object type 5"),
                                           (b"\x16\x80", "no sample rate")])
def test_bad_audio_specific_config_is_refused(mux_impl: ModuleType, config: bytes,
                                              words: str) -> None:
    with pytest.raises(mux_impl.AudioConfigError, match=words):
        mux_impl.FragmentedMp4Muxer(config)


def test_push_after_close_is_refused(mux_impl: ModuleType) -> None:
    muxer = mux_impl.FragmentedMp4Muxer(None)
    assert muxer.close() is None
    with pytest.raises(mux_impl.MuxClosedError):
        muxer.push(VIDEO, 0, True, b"\x00\x00\x01\x65")


def test_stereo_44100_audio_is_described_right(mux_impl: ModuleType, tmp_path: Path) -> None:
    config, audio = aac(1.0, sample_rate=44_100, channels=2)
    video = h264(64, 48, frames=30, gop=30)
    (path,) = _write(tmp_path, mux_all(mux_impl, interleave(video, audio), config))
    assert ffmpeg_decode_errors(path) == ""
    _, a = ffprobe(path, "channels")
    assert (a["sample_rate"], a["channels"], int(a["nb_read_frames"])) == ("44100", 2, _audio_kept(audio, video))
