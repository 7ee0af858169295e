"""SegmentWriter output entered in a signed manifest passes `bwv verify`: plain, B-frames, and a
segment recovered after a power cut. The join the recorder makes, checked by the verifier."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from recorder.capture.access_unit import AUDIO, AccessUnit
from recorder.capture.clock import ClockAnchor
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import EventKind, ManifestWriter, RecordingHeader
from recorder.integrity.verify import VerifyReport, render_human, verify_recording
from recorder.storage.segment_writer import SegmentWriter, recover_segments
from support.media import Unit, aac, h264, interleave

CLOCK = ClockAnchor(datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc), 0)


def _manifest(directory: Path, key_dir: Path) -> ManifestWriter:
    header = RecordingHeader(recording_id=directory.name, device_id="bwv-test",
                             officer_id="4711", utc_start=CLOCK.iso(0), monotonic_start_us=0,
                             clock_source="test")
    return ManifestWriter.create(directory, DeviceKey.load_or_create(key_dir), header)


def _record(tmp_path: Path, config: bytes, units: list[Unit],
            events: tuple[tuple[EventKind, int], ...] = ()) -> VerifyReport:
    """Write ``units`` in the order given through a SegmentWriter (0.9 s segments) into a
    signed manifest with ``events`` (kind, pts_us) first, seal it, and verify the recording."""
    directory = tmp_path / "rec"
    directory.mkdir()
    manifest = _manifest(directory, tmp_path / "keys")
    for kind, pts_us in events:
        manifest.append_event(kind, CLOCK.iso(pts_us), pts_us, {"count": 1})
    with SegmentWriter(directory, audio_config=config, segment_seconds=0.9, clock=CLOCK,
                       on_sealed=manifest.append_segment) as writer:
        for unit in units:
            writer.write(AccessUnit(*unit[:4]), unit.dts_us)
    manifest.seal(CLOCK.iso(max(unit.pts_us for unit in units)))
    manifest.close()
    return verify_recording(directory)


def _units(bframes: int) -> tuple[bytes, list[Unit]]:
    config, audio = aac(3.0)
    return config, interleave(h264(160, 120, frames=90, gop=15, bframes=bframes), audio)


@pytest.mark.parametrize("bframes", [0, 2])
def test_written_recording_verifies(tmp_path: Path, bframes: int) -> None:
    config, units = _units(bframes)
    report = _record(tmp_path, config, units)
    assert report.ok, report.problems
    assert len(report.segments) == 3


def test_recording_with_a_recovered_segment_verifies(tmp_path: Path) -> None:
    directory = tmp_path / "rec"
    directory.mkdir()
    manifest = _manifest(directory, tmp_path / "keys")
    config, units = _units(0)
    writer = SegmentWriter(directory, audio_config=config, segment_seconds=1.4, clock=CLOCK,
                           on_sealed=manifest.append_segment)
    for unit in units:  # segment 2 holds fragments from 1.5 s and 2.0 s when the power goes
        writer.write(AccessUnit(*unit[:4]))
    (partial,) = directory.glob("*.partial")
    data = partial.read_bytes()
    partial.write_bytes(data[:len(data) - 100])  # the tail that had not reached the card
    del writer
    manifest.close()

    manifest = ManifestWriter.reopen(directory, DeviceKey.load_or_create(tmp_path / "keys"))
    recovered = recover_segments(directory, clock=CLOCK, on_sealed=manifest.append_segment)
    manifest.seal(CLOCK.iso(recovered[-1].last_pts_us), reason="recovered")
    manifest.close()
    assert [(s.index, s.recovered, s.fragments) for s in recovered] == [(2, True, 1)]
    report = verify_recording(directory)
    assert report.ok, report.problems
    assert len(report.segments) == 2


@pytest.mark.parametrize("late_us", [300_000, 700_000])
def test_audio_arriving_late_at_a_cut_still_verifies(tmp_path: Path, late_us: int) -> None:
    """Audio that reaches the muxer after the video's cut (an AAC encoder starved of CPU, or
    `--fast` running video ahead) is written into the next segment. The media is whole and the
    manifest's pts are its video's, as docs/formats.md says; the verifier once measured the
    segment's first sample over every track and failed such a recording (CI, 2026-12-02)."""
    config, audio = aac(3.0)
    video = h264(160, 120, frames=90, gop=15)
    arrival = sorted([*video, *audio], key=lambda u: (
        (u.pts_us if u.dts_us is None else u.dts_us) + (late_us if u.stream == AUDIO else 0),
        u.stream))
    report = _record(tmp_path, config, arrival)
    assert report.ok, report.problems
    second = report.segments[1]
    first_audio = min(t.first_decode_us for t in second.tracks if t.handler == "soun")
    first_video = min(t.first_decode_us for t in second.tracks if t.handler == "vide")
    assert first_video - first_audio >= late_us - 50_000  # the audio really did straddle the cut


@pytest.mark.parametrize("declared", [None, EventKind.AUDIO_RESYNC, EventKind.AUDIO_OVERFLOW])
def test_an_audio_gap_is_accepted_only_where_the_recording_declares_audio_lost(
        tmp_path: Path, declared: EventKind | None) -> None:
    """The microphone lost 100 ms at a segment cut (an overrun, or its timeline re-anchored):
    the audio's decode time steps forward there. Declared in the manifest, that is a fact of
    the recording, listed among the gaps and not a problem; undeclared, it is media missing."""
    config, audio = aac(3.0)
    video = h264(160, 120, frames=90, gop=15)
    cut_us = video[0].pts_us + 1_000_000  # the keyframe that opens segment 2
    jumped = [u._replace(pts_us=u.pts_us + 100_000) if u.pts_us >= cut_us else u for u in audio]
    report = _record(tmp_path, config, interleave(video, tuple(jumped)),
                     () if declared is None else ((declared, cut_us),))
    [gap] = [step for step in report.steps if not step.within_tolerance]
    assert (gap.handler, gap.before, gap.after) == ("soun", "000001.mp4", "000002.mp4")
    assert 95_000 <= gap.gap_us <= 105_000
    if declared is None:
        assert [p.code.value for p in report.problems] == ["gap"], report.problems
    else:
        assert report.ok, report.problems
        assert "audio lost  1 of those gaps" in render_human(report)
