"""Stateful fuzzing of recovery after a power cut (issue 13).

A hypothesis state machine writes a real recording on disk (`FileRecording`: real H.264 and AAC
access units, segments cut at the configured length, events) and, at an arbitrary point, cuts
the power: the writer is abandoned where it stands, and the write in flight is torn the ways a
card tears it (a partial fragment appended to the unsealed segment, or zeros where the file grew
but its data never came; a partial manifest line; the last line itself half written; a segment
renamed to its final name whose manifest line never made it; a new unsealed segment created but
not yet written). Everything fsynced before the cut stays, as on a real card: each fragment and
each manifest line is fsynced before the next write starts.

Then the recovery every start of `bwv run` and `bwv record` performs (`recover_interrupted`)
runs, and these hold: it logs no error and raises nothing; the recording is sealed and verifies;
a second run changes nothing; every complete manifest line from before the cut is still there,
byte for byte (so every segment sealed before keeps its hash); no whole fragment fsynced before
the cut is lost; recordings sealed earlier in the same directory are untouched.

In the suite it makes 30 examples (a few seconds); ``BWV_FUZZ_EXAMPLES=500 pytest -n 0 -m slow
tests/test_recovery_stateful.py`` runs a longer search (300 examples: about 40 s here).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import logging
import os
import shutil
import tempfile
from datetime import datetime, timezone
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from support import media

from recorder.capture.access_unit import AccessUnit
from recorder.capture.clock import ClockAnchor
from recorder.integrity import bmff
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import MANIFEST_NAME, RecordingHeader
from recorder.integrity.verify import verify_recording
from recorder.storage.recording import FileRecording, recover_interrupted
from recorder.storage.segment_writer import PARTIAL_SUFFIX, scan_whole_fragments

START_US = 1_000_000  # the media's first pts, and the monotonic start of every recording
EXAMPLES = int(os.environ.get("BWV_FUZZ_EXAMPLES", "0") or 0)
# A tmpfs when there is one: the cuts are made by hand, so fsync's waits would only cost time.
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
KEEP_FINISHED = 2  # sealed recordings kept in the directory while the next ones are written
SEGMENT_S = st.sampled_from([0.5, 1.0, 2.0])
CUTS = ("clean", "torn_fragment", "zero_tail", "torn_line", "tear_last_line", "unentered_segment",
        "torn_header")


@functools.cache
def units() -> tuple[AccessUnit, ...]:
    """About 8 s of 160x120 H.264 (GOPs of 8 frames at 15 fps) and AAC, in capture order."""
    video = media.h264(160, 120, fps=15.0, frames=120, gop=8, start_us=START_US)
    _, audio = media.aac(seconds=8.0, start_us=START_US)
    return tuple(AccessUnit(u.stream, u.pts_us, u.is_keyframe, u.payload)
                 for u in media.interleave(video, audio))


@functools.cache
def audio_config() -> bytes:
    return media.aac(seconds=8.0, start_us=START_US)[0]


@functools.cache
def device_key() -> DeviceKey:
    """One key for the module's recordings, in a directory removed when the process ends."""
    directory = tempfile.mkdtemp(prefix="bwv-stateful-key-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return DeviceKey.load_or_create(Path(directory))


def tree(directory: Path, pattern: str = "*") -> dict[str, str]:
    """The files of ``directory`` (matching ``pattern``) by name, with their bytes' SHA-256."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(directory.glob(pattern))}


def complete_lines(manifest: bytes) -> bytes:
    """The manifest up to its last newline: the lines that were wholly written."""
    return manifest[:manifest.rfind(b"\n") + 1]


class ErrorLog(logging.Handler):
    """Collects the error records recovery logs (it logs rather than raises)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))


@contextlib.contextmanager
def capture_errors() -> Iterator[ErrorLog]:
    """The error records the recorder's loggers emit inside the block."""
    errors = ErrorLog()
    logger = logging.getLogger("recorder")
    logger.addHandler(errors)
    try:
        yield errors
    finally:
        logger.removeHandler(errors)


class Recovery(RuleBasedStateMachine):
    """Recordings written, cut and recovered one after another in one recordings directory."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="bwv-stateful-", dir=SCRATCH))
        self.recordings = self.root / "recordings"
        self.recordings.mkdir()
        self.recording: FileRecording | None = None
        self.cursor = 0
        self.opened = 0
        self.line_last = False  # whether the last write to the card was a manifest line
        self.finished: dict[str, dict[str, str]] = {}  # sealed recordings: never touched again

    # -- writing ---------------------------------------------------------------------------------

    @initialize(segment_s=SEGMENT_S, with_audio=st.booleans())
    def open_recording(self, segment_s: float, with_audio: bool) -> None:
        self.opened += 1
        anchor = ClockAnchor(datetime(2026, 12, 2, 5, 0, self.opened, tzinfo=timezone.utc),
                             START_US)
        header = RecordingHeader(f"r{self.opened:03d}", "cam7", "PC 1", anchor.iso(START_US),
                                 START_US, "unknown")
        self.with_audio = with_audio
        self.recording = FileRecording(
            self.recordings / header.recording_id, device_key(), header, anchor,
            audio_config() if with_audio else None, segment_s, clock_us=self.now_us)
        self.cursor = 0
        self.line_last = True  # the header

    def now_us(self) -> int:
        """The events' clock: the pts of the last unit written (the camera's shared clock)."""
        return units()[max(self.cursor - 1, 0)].pts_us

    @precondition(lambda self: self.cursor < len(units()))
    @rule(count=st.integers(1, 40))
    def write(self, count: int) -> None:
        """A few access units: often none reaches the card (the muxer holds a GOP)."""
        end = self.cursor + count
        self.write_until(lambda: self.cursor >= end)

    @precondition(lambda self: self.cursor < len(units()))
    @rule(fragments=st.integers(1, 4))
    def write_fragments(self, fragments: int) -> None:
        """Until ``fragments`` more fragments are on the card."""
        written = [0]

        def done() -> bool:
            return written[0] >= fragments
        self.write_until(done, written)

    @precondition(lambda self: self.cursor < len(units()))
    @rule()
    def cut_segment(self) -> None:
        """Until the segment being written is sealed and entered."""
        sealed = self.written()[2]
        self.write_until(lambda: self.written()[2] > sealed)

    def write_until(self, done: Callable[[], bool], fragments: list[int] | None = None) -> None:
        """Write units in order until ``done()`` or the media runs out; keep track of whether
        the last write to the card was a fragment or a manifest line, and count fragments."""
        assert self.recording is not None
        while self.cursor < len(units()) and not done():
            before = self.written()
            unit = units()[self.cursor]
            self.cursor += 1
            if unit.stream == 1 and not self.with_audio:
                continue
            self.recording.write(unit)
            after = self.written()
            if after[0] and after != before:
                self.line_last = False  # a fragment of the unsealed segment came last
            elif not after[0] and after[2] > before[2]:
                self.line_last = True  # a segment's line came last
            if fragments is not None and after != before:
                fragments[0] += 1

    def written(self) -> tuple[bool, int, int]:
        """(a segment is open, its bytes, segments sealed): the segment writer's own count, as
        asking the file system after every unit would cost most of the test's time."""
        assert self.recording is not None
        writer = self.recording._segments  # noqa: SLF001
        is_open = writer._fd >= 0  # noqa: SLF001
        return is_open, writer._bytes if is_open else 0, len(writer.sealed)  # noqa: SLF001

    @rule(kind=st.sampled_from(["marker", "stealth", "audio_overflow"]))
    def add_event(self, kind: str) -> None:
        assert self.recording is not None
        details: dict[str, dict[str, object]] = {"stealth": {"on": True},
                                                 "audio_overflow": {"blocks": 2}}
        detail = details.get(kind, {})
        self.recording.event(kind, **detail)
        self.line_last = True

    @rule(segment_s=SEGMENT_S, with_audio=st.booleans())
    def seal_and_start_another(self, segment_s: float, with_audio: bool) -> None:
        assert self.recording is not None
        self.recording.seal("stopped")
        self.check_verifies(self.recording.path)
        self.finish(self.recording.path)
        self.open_recording(segment_s, with_audio)

    # -- the power cut ---------------------------------------------------------------------------

    @rule(how=st.sampled_from(CUTS), where=st.floats(0.0, 1.0, exclude_max=True),
          fragments_first=st.integers(0, 3), segment_s=SEGMENT_S, with_audio=st.booleans())
    def power_cut_and_start_another(self, how: str, where: float, fragments_first: int,
                                    segment_s: float, with_audio: bool) -> None:
        """Write ``fragments_first`` more fragments (most cuts then find some to keep); cut the
        power ``how``, at ``where`` (0-1) of the write in flight; recover; check; then the next
        recording starts in the same directory."""
        assert self.recording is not None
        if fragments_first and self.cursor < len(units()):
            self.write_fragments(fragments_first)
        path = self.recording.path
        abandon(self.recording)
        self.recording = None
        manifest = path / MANIFEST_NAME
        partial = self.partial_path(path)
        kept_lines = manifest.read_bytes()  # every line so far was fsynced
        kept_partial = partial.read_bytes() if partial is not None else b""
        kept_fragments = scan_whole_fragments(kept_partial).fragments
        torn = getattr(self, "_cut_" + how)(path, partial, where)
        event(f"cut: {how}, torn: {torn}, whole fragments kept: {min(kept_fragments, 3)}")
        if torn == "header":
            self.check_removed(path)
            self.open_recording(segment_s, with_audio)
            return
        if torn == "line":  # the last line was the write in flight: it never counted
            kept_lines = complete_lines(manifest.read_bytes())
        sealed = tree(path, "[0-9]*.mp4")  # with or without their manifest line
        self.recover_and_check(path, kept_lines, partial, kept_partial, kept_fragments)
        listed = {line["file"]: line["sha256"] for line in self.segment_lines(path)}
        for name, sha256 in sealed.items():
            assert listed.get(name) == sha256, f"sealed segment {name} not entered as it was"
        self.open_recording(segment_s, with_audio)

    def _cut_clean(self, path: Path, partial: Path | None, where: float) -> str:
        return "nothing torn"

    def _cut_torn_fragment(self, path: Path, partial: Path | None, where: float) -> str:
        """The next fragment's write, cut short: appended to the unsealed segment, or the first
        write of a new one (which starts with the segment's ftyp and moov)."""
        if partial is not None and scan_whole_fragments(partial.read_bytes()).fragments:
            data = partial.read_bytes()
            last = bmff.read_whole_fragments(data).segment
            assert last is not None
            fragment = data[last.fragments[-1].offset:last.fragments[-1].mdat.end]
            append(partial, fragment[:int(where * len(fragment))])
        elif partial is None:
            model = self.first_fragment()
            if model is not None:
                append(self.next_partial(path), model[:int(where * len(model))])
        return "fragment"

    def _cut_zero_tail(self, path: Path, partial: Path | None, where: float) -> str:
        """The file grew but its new data never reached the card: zeros."""
        target = partial if partial is not None else self.next_partial(path)
        append(target, bytes(int(where * 16384)))
        return "fragment"

    def _cut_torn_line(self, path: Path, partial: Path | None, where: float) -> str:
        """A manifest line cut short (a copy of the last line stands for the next one)."""
        data = (path / MANIFEST_NAME).read_bytes()
        last = data[data.rfind(b"\n", 0, len(data) - 1) + 1:]
        append(path / MANIFEST_NAME, last[:int(where * (len(last) - 1))])
        return "line"

    def _cut_tear_last_line(self, path: Path, partial: Path | None, where: float) -> str:
        """The last line was itself the write in flight (not the header: a recording whose
        header never reached the card holds no footage either)."""
        data = (path / MANIFEST_NAME).read_bytes()
        start = data.rfind(b"\n", 0, len(data) - 1) + 1
        if not self.line_last or start == 0:
            return "nothing torn"
        os.truncate(path / MANIFEST_NAME, start + int(where * (len(data) - start)))
        return "line"

    def _cut_torn_header(self, path: Path, partial: Path | None, where: float) -> str:
        """The header line itself was the write in flight: nothing else was written yet."""
        data = (path / MANIFEST_NAME).read_bytes()
        if data.count(b"\n") != 1 or partial is not None or list(path.glob("[0-9]*.mp4")):
            return "nothing torn"
        os.truncate(path / MANIFEST_NAME, int(where * len(data)))
        return "header"

    def _cut_unentered_segment(self, path: Path, partial: Path | None, where: float) -> str:
        """A segment sealed and renamed, its manifest line never written (or torn)."""
        if (partial is None or self.line_last
                or not scan_whole_fragments(partial.read_bytes()).fragments):
            return "nothing torn"
        partial.rename(partial.with_name(partial.name[:-len(PARTIAL_SUFFIX)]))
        if where >= 0.5:
            self._cut_torn_line(path, None, (where - 0.5) * 2)
        return "line"

    # -- recovery and its invariants -------------------------------------------------------------

    def check_removed(self, path: Path) -> None:
        """A recording cut while its header was written holds no footage: recovery removes it
        (before, it skipped it, and it failed verification forever)."""
        with capture_errors() as errors:
            assert recover_interrupted(self.recordings, device_key()) == []
        assert errors.records == [] and not path.exists()

    def recover_and_check(self, path: Path, kept_lines: bytes, partial: Path | None,
                          kept_partial: bytes, kept_fragments: int) -> None:
        with capture_errors() as errors:
            recovered = recover_interrupted(self.recordings, device_key())
            after = tree(path)
            assert recover_interrupted(self.recordings, device_key()) == []
        assert errors.records == [], errors.records
        assert recovered == [path]
        assert tree(path) == after, "a second recovery changed the recording"
        assert not list(path.glob("*" + PARTIAL_SUFFIX))
        self.check_verifies(path)
        manifest = (path / MANIFEST_NAME).read_bytes()
        assert manifest.startswith(kept_lines), "a line written before the cut is gone"
        if partial is not None and kept_fragments:
            final = path / partial.name[:-len(PARTIAL_SUFFIX)]
            data = final.read_bytes()
            assert data.startswith(kept_partial), f"{final.name} lost fsynced bytes"
            assert scan_whole_fragments(data).fragments >= kept_fragments
            listed = [line for line in self.segment_lines(path) if line["file"] == final.name]
            assert listed and int(str(listed[0]["fragments"])) >= kept_fragments
        self.finish(path)

    def finish(self, path: Path) -> None:
        """Keep ``path`` beside the next recordings, to be checked as never touched; the two
        latest are enough, and older ones move out (each recovery reads every manifest)."""
        self.finished[path.name] = tree(path)
        while len(self.finished) > KEEP_FINISHED:
            oldest = min(self.finished)
            del self.finished[oldest]
            shutil.rmtree(self.recordings / oldest)

    @invariant()
    def sealed_recordings_are_never_touched(self) -> None:
        for name, files in self.finished.items():
            assert tree(self.recordings / name) == files, name

    def teardown(self) -> None:
        try:
            if self.recording is not None:
                self.recording.seal("end of the example")
                self.check_verifies(self.recording.path)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------------

    def check_verifies(self, path: Path) -> None:
        report = verify_recording(path, trusted_key=device_key().public_key)
        assert report.ok, report
        lines = (path / MANIFEST_NAME).read_bytes().splitlines()
        assert b'"type":"sealed"' in lines[-1]

    def segment_lines(self, path: Path) -> list[dict[str, object]]:
        import json
        lines = [json.loads(line) for line in (path / MANIFEST_NAME).read_bytes().splitlines()]
        return [line for line in lines if line["type"] == "segment"]

    @staticmethod
    def partial_path(path: Path) -> Path | None:
        partials = sorted(path.glob("*" + PARTIAL_SUFFIX))
        assert len(partials) <= 1, partials
        return partials[0] if partials else None

    def next_partial(self, path: Path) -> Path:
        """The name the next segment would be opened under."""
        index = len(list(path.glob("[0-9]*.mp4"))) + 1
        return path / f"{index:06d}.mp4{PARTIAL_SUFFIX}"

    def first_fragment(self) -> bytes | None:
        """A first write of a segment (ftyp, moov and one fragment) from this run's recordings,
        or None before any segment was sealed."""
        for segment in sorted(self.recordings.glob("*/[0-9]*.mp4")):
            data = segment.read_bytes()
            read = bmff.read_whole_fragments(data).segment
            if read is not None and read.fragments:
                return data[:read.fragments[0].mdat.end]
        return None


def abandon(recording: FileRecording) -> None:
    """Drop a recording where it stands, as a power cut does: close its files, write nothing."""
    segments = recording._segments  # noqa: SLF001 - the test stands in for the power supply
    if segments._fd >= 0:  # noqa: SLF001
        os.close(segments._fd)  # noqa: SLF001
        segments._fd = -1  # noqa: SLF001
    segments._closed = True  # noqa: SLF001
    recording._manifest.close()  # noqa: SLF001


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as file:
        file.write(data)


COMMON = settings(stateful_step_count=20, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
Recovery.TestCase.settings = settings(COMMON, max_examples=30)
test_recovery_after_a_power_cut = Recovery.TestCase


class LongRecovery(Recovery):
    """The same machine for a longer search: ``BWV_FUZZ_EXAMPLES`` examples."""


LongRecovery.TestCase.settings = settings(COMMON, max_examples=max(EXAMPLES, 1))
test_recovery_after_a_power_cut_long = pytest.mark.slow(pytest.mark.skipif(
    not EXAMPLES, reason="the long search runs when BWV_FUZZ_EXAMPLES is set")(
        LongRecovery.TestCase))


@pytest.mark.parametrize("kept", [0.0, 0.01, 0.5, 0.999])
def test_a_recording_cut_while_its_header_was_written_is_removed(tmp_path: Path,
                                                                 kept: float) -> None:
    """Its manifest has no complete line and it holds nothing else: no restart could continue
    it, and it failed `bwv verify` forever. A sealed recording beside it is not touched."""
    machine = Recovery()
    try:
        machine.open_recording(1.0, False)
        machine.write_fragments(2)
        machine.seal_and_start_another(1.0, False)
        assert machine.recording is not None
        path = machine.recording.path
        abandon(machine.recording)
        machine.recording = None
        assert machine._cut_torn_header(path, None, kept) == "header"
        machine.check_removed(path)
        machine.sealed_recordings_are_never_touched()
    finally:
        machine.teardown()


def test_a_headerless_directory_holding_other_files_is_left_for_an_investigator(
        tmp_path: Path) -> None:
    recording = tmp_path / "recordings" / "r1"
    recording.mkdir(parents=True)
    (recording / MANIFEST_NAME).write_bytes(b'{"type":"hea')
    (recording / "000001.mp4").write_bytes(b"not made by the recorder")
    with capture_errors() as errors:
        assert recover_interrupted(tmp_path / "recordings", device_key()) == []
    assert sorted(p.name for p in recording.iterdir()) == ["000001.mp4", MANIFEST_NAME]
    assert len(errors.records) == 1 and "left as it is" in errors.records[0]
