"""SegmentWriter: sealed segments on disk, hashed in the same pass, durable in the right order,
and recovery of an unsealed segment; checked with sha256sum, ffprobe and ffmpeg."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from recorder.capture.access_unit import AccessUnit
from recorder.capture.clock import ClockAnchor
from recorder.integrity.sealed_segment import SealedSegment
from recorder.storage import mux
from recorder.storage.segment_writer import (PartialSegmentExistsError, SegmentRecoveryError,
                                     SegmentWriteError, SegmentWriter, SegmentWriterStateError,
                                     recover_segment, recover_segments, scan_whole_fragments)
from support.media import (Unit, aac, boxes, ffmpeg_decode_errors, ffprobe, frame_pts, h264,
                       interleave)

CLOCK = ClockAnchor(datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc), 0)


def _media(seconds: float = 3.0, gop: int = 15) -> tuple[bytes, list[Unit]]:
    config, audio = aac(seconds)
    video = h264(160, 120, frames=int(30 * seconds), gop=gop)
    return config, interleave(video, audio)


def _write(directory: Path, units: list[Unit], config: bytes | None,
           **options: Any) -> tuple[SegmentWriter, list[SealedSegment]]:
    sealed: list[SealedSegment] = []
    writer = SegmentWriter(directory, audio_config=config, on_sealed=sealed.append, clock=CLOCK,
                           **options)
    with writer:
        for unit in units:
            writer.write(AccessUnit(unit.stream, unit.pts_us, unit.is_keyframe, unit.payload),
                         unit.dts_us)
    return writer, sealed


def _sha256sum(path: Path) -> str:
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True)
    return out.stdout.split()[0]


def test_sealed_segments_match_files_sha256sum_and_muxer(tmp_path: Path) -> None:
    config, units = _media()
    writer, sealed = _write(tmp_path, units, config, segment_seconds=0.9)
    assert writer.sealed == sealed
    assert [s.file for s in sealed] == ["000001.mp4", "000002.mp4", "000003.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [s.file for s in sealed]
    expected = []
    muxer = mux.FragmentedMp4Muxer(config, segment_seconds=0.9)
    for unit in units:
        fragment = muxer.push(unit.stream, unit.pts_us, unit.is_keyframe, unit.payload)
        if fragment is not None:
            expected.append(fragment)
    last = muxer.close()
    assert last is not None
    expected.append(last)
    for segment in sealed:
        path = tmp_path / segment.file
        data = path.read_bytes()
        parts = [f for f in expected if f.segment == segment.index]
        assert data == b"".join(f.data for f in parts)
        assert segment.bytes == len(data)
        assert segment.sha256 == _sha256sum(path) == hashlib.sha256(data).hexdigest()
        assert segment.fragments == len(parts) == sum(1 for b in boxes(data) if b[0] == "moof")
        assert segment.first_pts_us == min(f.first_pts_us for f in parts)
        assert segment.last_pts_us == max(f.last_pts_us for f in parts)
        assert segment.utc_start == CLOCK.iso(segment.first_pts_us)
        assert segment.utc_end.startswith("2026-11-23T07:00:0")
        assert not segment.recovered
        assert ffmpeg_decode_errors(path) == ""
        assert [s["codec_name"] for s in ffprobe(path)] == ["h264", "aac"]


def test_segments_of_one_recording_concatenate_into_every_frame(tmp_path: Path) -> None:
    config, units = _media()
    _, sealed = _write(tmp_path / "rec" if (tmp_path / "rec").mkdir() is None else tmp_path,
                       units, config, segment_seconds=0.9)
    joined = tmp_path / "joined.mp4"
    joined.write_bytes(b"".join((tmp_path / "rec" / s.file).read_bytes() for s in sealed))
    assert ffmpeg_decode_errors(joined) == ""
    video = [u for u in units if u.stream == 0]
    assert len(frame_pts(joined)) == len(video)


def test_segment_is_partial_until_sealed(tmp_path: Path) -> None:
    config, units = _media(2.0, gop=15)
    writer = SegmentWriter(tmp_path, audio_config=config, segment_seconds=30, clock=CLOCK)
    for unit in units[:len(units) // 2]:
        writer.write(AccessUnit(unit.stream, unit.pts_us, unit.is_keyframe, unit.payload))
    names = [p.name for p in tmp_path.iterdir()]
    assert names == ["000001.mp4.partial"]
    on_disk = (tmp_path / names[0]).read_bytes()
    assert scan_whole_fragments(on_disk).end == len(on_disk)  # only whole fragments, synced
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["000001.mp4"]
    writer.close()  # idempotent
    with pytest.raises(SegmentWriterStateError, match="closed"):
        writer.write(AccessUnit(0, 10**9, True, units[0].payload))


def test_writes_are_synced_before_the_rename_and_the_directory_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []
    directory_fds: set[int] = set()
    real_open, real_write, real_fdatasync, real_fsync, real_rename = (
        os.open, os.write, os.fdatasync, os.fsync, os.rename)

    def spy_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        if flags & os.O_DIRECTORY:
            directory_fds.add(fd)
        else:  # numbers are reused once closed
            directory_fds.discard(fd)
            calls.append(("open", Path(path).name))
        return fd

    def spy_write(fd: int, data: Any) -> int:
        calls.append(("write", len(data)))
        return real_write(fd, data)

    def spy_fdatasync(fd: int) -> None:
        calls.append(("fdatasync", None))
        real_fdatasync(fd)

    def spy_fsync(fd: int) -> None:
        calls.append(("fsync-dir" if fd in directory_fds else "fsync", None))
        real_fsync(fd)

    def spy_rename(src: Any, dst: Any) -> None:
        calls.append(("rename", Path(dst).name))
        real_rename(src, dst)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "write", spy_write)
    monkeypatch.setattr(os, "fdatasync", spy_fdatasync)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "rename", spy_rename)
    sealed_seen: list[list[tuple[str, Any]]] = []
    config, units = _media(2.0, gop=15)
    writer = SegmentWriter(tmp_path, audio_config=config, segment_seconds=0.9, clock=CLOCK,
                           on_sealed=lambda s: sealed_seen.append(list(calls)))
    for unit in units:
        writer.write(AccessUnit(unit.stream, unit.pts_us, unit.is_keyframe, unit.payload))
    writer.close()
    monkeypatch.undo()
    kinds = [kind for kind, _ in calls]
    # open, directory synced; each fragment written then synced; fsync, rename, directory synced
    assert kinds[:2] == ["open", "fsync-dir"]
    for index, kind in enumerate(kinds):
        if kind == "write":
            assert kinds[index + 1] in ("write", "fdatasync")
        if kind == "rename":
            assert kinds[index - 1] == "fsync" and kinds[index + 1] == "fsync-dir"
    assert kinds.count("rename") == 2
    # each on_sealed call comes after its rename and the directory sync
    assert [c[-2:] for c in sealed_seen] == [[("rename", "000001.mp4"), ("fsync-dir", None)],
                                             [("rename", "000002.mp4"), ("fsync-dir", None)]]


def test_refuses_a_directory_with_an_unsealed_segment(tmp_path: Path) -> None:
    (tmp_path / "000004.mp4.partial").write_bytes(b"")
    with pytest.raises(PartialSegmentExistsError, match="recover_segments"):
        SegmentWriter(tmp_path, clock=CLOCK)


def test_first_index_numbers_the_files(tmp_path: Path) -> None:
    config, units = _media(1.0)
    _, sealed = _write(tmp_path, units, config, first_index=7)
    assert [(s.index, s.file) for s in sealed] == [(7, "000007.mp4")]


def test_bad_units_raise_and_leave_the_writer_usable(tmp_path: Path) -> None:
    config, units = _media(1.0)
    writer = SegmentWriter(tmp_path, audio_config=config, clock=CLOCK)
    writer.write(AccessUnit(*units[0][:4]))
    with pytest.raises(mux.AnnexBError):
        writer.write(AccessUnit(0, units[0].pts_us + 50_000, False, b"not annex b"))
    for unit in units[1:]:
        writer.write(AccessUnit(*unit[:4]))
    writer.close()
    assert ffmpeg_decode_errors(tmp_path / "000001.mp4") == ""


# -- fault injection ------------------------------------------------------------------------------

class _FailingWrites:
    """os.write that writes only part of the bytes at call ``fail_at`` and then raises ENOSPC."""

    def __init__(self, fail_at: int) -> None:
        self.calls = 0
        self.fail_at = fail_at
        self.real = os.write

    def __call__(self, fd: int, data: Any) -> int:
        self.calls += 1
        if self.calls == self.fail_at:
            self.real(fd, bytes(data)[:len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(fd, data)


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 6])
def test_failed_write_keeps_sealed_segments_and_close_recovers_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int) -> None:
    config, units = _media(3.0, gop=15)
    sealed: list[SealedSegment] = []
    writer = SegmentWriter(tmp_path, audio_config=config, segment_seconds=0.9, clock=CLOCK,
                           on_sealed=sealed.append)
    monkeypatch.setattr(os, "write", _FailingWrites(fail_at))
    with pytest.raises(SegmentWriteError, match="No space left") as caught:
        for unit in units:
            writer.write(AccessUnit(*unit[:4]))
        writer.close()  # writes the last fragment
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC
    before = list(sealed)
    if not writer.closed:
        with pytest.raises(SegmentWriterStateError, match="close"):
            writer.write(AccessUnit(*units[-1][:4]))
    writer.close()
    assert sealed[:len(before)] == before  # nothing sealed is touched by close()
    assert not list(tmp_path.glob("*.partial"))
    for segment in sealed:
        path = tmp_path / segment.file
        assert segment.sha256 == _sha256sum(path)
        assert segment.bytes == path.stat().st_size
        assert ffmpeg_decode_errors(path) == ""
    recovered = [s for s in sealed if s.recovered]
    assert len(recovered) <= 1 and all(s is sealed[-1] for s in recovered)
    # 3 segments of 2 fragments, one write each: the failed one is lost, the others are sealed
    fragments_written = fail_at - 1
    assert sum(s.fragments for s in sealed) == fragments_written


def _recording_bytes(tmp_path: Path) -> tuple[list[SealedSegment], list[bytes]]:
    config, units = _media(2.0, gop=10)
    source = tmp_path / "source"
    source.mkdir()
    _, sealed = _write(source, units, config, segment_seconds=0.9, fragment_seconds=2.0)
    return sealed, [(source / s.file).read_bytes() for s in sealed]


def _fragment_ends(data: bytes) -> list[int]:
    return [offset + size for kind, offset, size in boxes(data) if kind == "mdat"]


def test_power_cut_anywhere_loses_at_most_the_fragment_in_flight(tmp_path: Path, no_fsync: None) -> None:
    """Cuts every few bytes (about 4000 of them) and one byte either side of every fragment end.

    The cut is a truncated file this test writes, so fsync plays no part in what is checked
    (no_fsync); what recovery syncs, and in which order, is test_recovery_faults' subject."""
    sealed, files = _recording_bytes(tmp_path)
    first, second = sealed[0], files[1]
    ends = _fragment_ends(second)
    assert len(ends) >= 3
    directory = tmp_path / "rec"
    directory.mkdir()
    (directory / first.file).write_bytes(files[0])
    partial = directory / "000002.mp4.partial"
    step = max(1, len(second) // 4000)
    offsets = sorted(set(range(0, len(second) + 1, step)) | {e + d for e in ends for d in (-1, 0, 1)}
                     | {len(second)})
    for cut in offsets:
        if cut > len(second):
            continue
        partial.write_bytes(second[:cut])
        got = recover_segments(directory, clock=CLOCK)
        whole = [e for e in ends if e <= cut]
        assert (directory / first.file).read_bytes() == files[0]  # untouched (no subprocess)
        if not whole:
            assert got == [] and not partial.exists()
            continue
        (segment,) = got
        kept = (directory / "000002.mp4").read_bytes()
        assert kept == second[:whole[-1]]
        assert (segment.recovered, segment.fragments, segment.bytes) == (True, len(whole), len(kept))
        assert segment.sha256 == hashlib.sha256(kept).hexdigest()
        assert segment.first_pts_us == pytest.approx(sealed[1].first_pts_us, abs=11)
        if len(whole) == len(ends):
            assert segment.last_pts_us == pytest.approx(sealed[1].last_pts_us, abs=21)
        (directory / "000002.mp4").unlink()


def test_recovered_segments_play_and_agree_with_sha256sum(tmp_path: Path) -> None:
    sealed, files = _recording_bytes(tmp_path)
    second = files[1]
    ends = _fragment_ends(second)
    for cut in (ends[0] + 100, ends[1] + 7, len(second) - 1):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        (directory / "000002.mp4.partial").write_bytes(second[:cut])
        (segment,) = recover_segments(directory, clock=CLOCK)
        path = directory / segment.file
        assert segment.sha256 == _sha256sum(path)
        assert segment.utc_start == CLOCK.iso(segment.first_pts_us)
        assert ffmpeg_decode_errors(path) == ""
        assert [s["codec_name"] for s in ffprobe(path)] == ["h264", "aac"]


def test_zero_filled_tail_after_a_crash_is_cut_off(tmp_path: Path) -> None:
    sealed, files = _recording_bytes(tmp_path)
    second = files[1]
    ends = _fragment_ends(second)
    torn = bytearray(second)
    torn[ends[1] + 40:] = bytes(len(second) - ends[1] - 40)  # header intact, data never landed
    (tmp_path / "000002.mp4.partial").write_bytes(bytes(torn))
    (segment,) = recover_segments(tmp_path, clock=CLOCK)
    assert segment.bytes == ends[1] and segment.fragments == 2


def test_recovery_refuses_to_overwrite_a_sealed_segment(tmp_path: Path) -> None:
    (tmp_path / "000001.mp4").write_bytes(b"sealed")
    (tmp_path / "000001.mp4.partial").write_bytes(b"partial")
    with pytest.raises(SegmentRecoveryError, match="will not overwrite"):
        recover_segments(tmp_path, clock=CLOCK)
    with pytest.raises(SegmentRecoveryError, match="NNNNNN"):
        recover_segment(tmp_path / "clip.mp4.partial", clock=CLOCK)
    assert (tmp_path / "000001.mp4").read_bytes() == b"sealed"


def test_directory_sync_failure_after_rename_still_reports_the_sealed_segment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recorder.storage import segment_writer

    config, units = _media(2.0, gop=15)
    sealed: list[SealedSegment] = []
    writer = SegmentWriter(tmp_path, audio_config=config, segment_seconds=0.9, clock=CLOCK,
                           on_sealed=sealed.append)
    real_sync = segment_writer.durability.fsync_directory
    syncs = [0]

    def sync_fails_after_the_first_rename(directory: Path) -> None:
        syncs[0] += 1
        if syncs[0] == 2:  # 1: after creating 000001.mp4.partial, 2: after renaming it
            raise OSError(errno.EIO, "Input/output error")
        real_sync(directory)

    monkeypatch.setattr(segment_writer.durability, "fsync_directory",
                        sync_fails_after_the_first_rename)
    with pytest.raises(SegmentWriteError, match="after sealing"):
        for unit in units:
            writer.write(AccessUnit(*unit[:4]))
    writer.close()
    assert [(s.file, s.recovered) for s in sealed] == [("000001.mp4", False)]
    assert sealed[0].sha256 == _sha256sum(tmp_path / "000001.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000001.mp4"]
