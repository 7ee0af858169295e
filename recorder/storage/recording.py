"""One recording on disk: segment files from the `SegmentWriter`, entered one by one in the signed
manifest as they are sealed, plus events; and the recovery of recordings a power cut interrupted.

A recording directory is ``recordings/<recording id>/`` holding ``000001.mp4``, ... and
``manifest.jsonl``. `FileRecording` is safe to use from the writer thread (``write``) and the
controller's thread (``event``, ``seal``) at once: one lock orders every write to the directory.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..capture.access_unit import AUDIO, VIDEO, AccessUnit
from ..capture.clock import ClockAnchor, monotonic_us
from ..durability import fsync_directory
from ..integrity.content_key import ContentKey, EncryptionPublicKey, wrap
from ..integrity.keys import DeviceKey
from ..private_files import make_new_private_dir
from .faults import describe
from .interleave import PtsInterleaver
from ..integrity.manifest import (
    MANIFEST_NAME,
    EventKind,
    ManifestIntegrityError,
    ManifestWriter,
    RecordingHeader,
    check_manifest,
    utc_now,
)
from ..integrity.sealed_segment import SealedSegment
from ..settings import Settings
from .segment_writer import PARTIAL_SUFFIX, SegmentWriter, recover_segments

log = logging.getLogger("recorder.recording")  # the name log lines have always shown

FRAGMENT_SECONDS = 2.0  # docs/formats.md: one moof+mdat per GOP, at most about 2 s


def clock_source() -> str:
    """Where the wall clock comes from, for the manifest: "ntp" when systemd says it is
    synchronised, "unsynchronised" when it says it is not, "unknown" without systemd."""
    try:
        result = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                                capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    answer = result.stdout.strip()
    return {"yes": "ntp", "no": "unsynchronised"}.get(answer, "unknown")


def manifest_settings(settings: Settings) -> dict[str, Any]:
    """The settings as the header records them: JSON without floats (seconds become strings)."""
    return {name: f"{value:g}" if isinstance(value, float) else value
            for name, value in sorted(settings.values.items())}


def new_recording_id(anchor: ClockAnchor) -> str:
    """Sortable and unique: the UTC start and a random suffix, e.g. 20261123T073441Z-3f9a1c."""
    return anchor.utc.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


class FileRecording:
    """A recording being written: ``write`` access units, add ``event``s, then ``seal`` once."""

    def __init__(self, path: Path, key: DeviceKey, header: RecordingHeader, anchor: ClockAnchor,
                 audio_config: bytes | None, segment_seconds: float,
                 clock_us: Callable[[], int] = monotonic_us,
                 content_key: ContentKey | None = None) -> None:
        self.path = path
        self._anchor = anchor
        self._clock_us = clock_us
        self._lock = threading.Lock()
        make_new_private_dir(path)
        try:
            self._manifest = ManifestWriter.create(path, key, header)
        except BaseException:
            _remove_unstarted(path)
            raise
        self._segments = SegmentWriter(path, audio_config=audio_config,
                                       segment_seconds=segment_seconds,
                                       fragment_seconds=FRAGMENT_SECONDS,
                                       on_sealed=self._enter_segment, clock=anchor,
                                       content_key=content_key)
        self._write_failure: BaseException | None = None
        streams = frozenset({VIDEO, AUDIO} if audio_config is not None else {VIDEO})
        self._interleaver = PtsInterleaver(streams)
        self._sealed = False
        self._dropped: dict[int, list[int]] = {}  # stream -> [units, first pts, last pts]

    @property
    def is_sealed(self) -> bool:
        """Whether the manifest's sealed line is written (a read-only card can prevent it)."""
        return self._manifest.sealed

    def _enter_segment(self, segment: SealedSegment) -> None:
        self._manifest.append_segment(segment)  # on the writer thread, inside write(): locked

    def write(self, unit: AccessUnit) -> None:
        with self._lock:
            try:
                for ready in self._interleaver.push(unit):
                    self._write_one(ready)
            except Exception as exc:
                self._write_failure = self._write_failure or exc  # for seal() to enter
                raise

    def _write_one(self, unit: AccessUnit) -> None:
        """Write ``unit``; one the muxer drops (before the first keyframe) is noted, and the
        drops are entered in the manifest as soon as a unit is written after them."""
        before = self._segments.dropped_units
        self._segments.write(unit)
        if self._segments.dropped_units != before:
            span = self._dropped.setdefault(unit.stream, [0, unit.pts_us, unit.pts_us])
            span[0] += 1
            span[1], span[2] = min(span[1], unit.pts_us), max(span[2], unit.pts_us)
        elif self._dropped:
            self._enter_dropped()

    def _enter_dropped(self) -> None:
        """A ``dropped`` event per stream: what the recording lacks, and over which span
        (docs/formats.md). Logged too, as before."""
        dropped, self._dropped = self._dropped, {}
        for stream, (units, first, last) in sorted(dropped.items()):
            name = "video" if stream == VIDEO else "audio"
            log.info("%s: %d %s access units before the first keyframe were not written",
                     self.path.name, units, name)
            self._manifest.append_event(EventKind.DROPPED, self._anchor.iso(first),
                                        pts_us=first, detail={
                                            "stream": name, "units": units,
                                            "first_pts_us": first, "last_pts_us": last,
                                            "reason": "before the first keyframe"})

    def event(self, kind: str, **fields: Any) -> None:
        """Append an event line now (``kind``: a `recorder.integrity.manifest.EventKind` value)."""
        now = self._clock_us()
        with self._lock:
            if self._sealed:  # e.g. a marker just after the card filled up and the writer sealed
                log.warning("%s is sealed: event %s %s not recorded", self.path.name, kind, fields)
                return
            self._manifest.append_event(EventKind(kind), self._anchor.iso(now), pts_us=now,
                                        detail=fields or None)

    def seal(self, reason: str = "stopped") -> None:
        """Seal the last segment, then the manifest. Idempotent.

        Whatever failed before (a write on the writer thread) or fails now, the segment writer is
        closed, which seals the whole fragments of an unsealed segment as a recovered one and
        enters it; the failure is entered as an error event; then the manifest is sealed, and
        the failure raised. Only if the manifest itself cannot be written does it stay unsealed,
        for `recover_interrupted` at the next start.
        """
        with self._lock:
            if self._sealed:
                return
            self._sealed = True
            failure = self._write_failure
            try:
                for ready in self._interleaver.flush():
                    self._write_one(ready)
            except Exception as exc:
                failure = failure or exc
            closing: Exception | None = None  # the unsealed segment could not be sealed
            try:
                self._segments.close()
            except Exception as exc:
                closing = exc if failure is not None and exc is not failure else None
                failure = failure or exc
            try:
                if failure is not None:
                    also = f"; sealing the unsealed segment failed: {closing}" if closing else ""
                    self._manifest.append_event(EventKind.ERROR, utc_now(), detail={
                        "message": f"writing segments failed: {failure}{also}"})
                    reason = f"{reason}; writing segments failed"
                if self._dropped:  # no keyframe ever came: all that arrived was dropped
                    self._enter_dropped()
                self._manifest.seal(utc_now(), reason)
            finally:
                self._manifest.close()
        if failure is not None:
            raise failure


def _remove_unstarted(path: Path) -> None:
    """Remove a recording directory whose manifest header could not be written (a full or
    failing card): it holds no footage, and a 0-byte manifest would fail verification forever
    and be skipped by recovery. What cannot be removed (a read-only card) is logged."""
    try:
        (path / MANIFEST_NAME).unlink(missing_ok=True)
        path.rmdir()
    except OSError as exc:
        log.error("could not remove %s, which holds no footage: %s", path,
                  exc.strerror or exc)


def _remove_headerless(directory: Path, size: int) -> None:
    """A power cut while the manifest's header was written leaves a manifest with no complete
    line, which no restart can continue and verification fails forever. The header is fsynced
    before any segment is opened, so such a directory holds no footage: remove it. Anything else
    in it (which the recorder never makes) is left for an investigator."""
    others = sorted(path.name for path in directory.iterdir() if path.name != MANIFEST_NAME)
    if others:
        log.error("%s: its manifest has no complete header line, yet it holds %s: left as it is",
                  directory, ", ".join(others[:5]))
        return
    log.warning("removing %s: a power cut came while its manifest header was written (%d bytes "
                "of it were); it holds no footage", directory, size)
    (directory / MANIFEST_NAME).unlink()
    directory.rmdir()
    fsync_directory(directory.parent)


@dataclass
class RecordingFactory:
    """Opens new recordings under ``recordings_dir`` for the controller."""

    recordings_dir: Path
    key: DeviceKey
    settings: Settings
    audio_config: bytes | None
    officer_id: str = ""
    encrypt_for: EncryptionPublicKey | None = None  # the station's encryption key, if paired

    def open(self) -> FileRecording:
        """A new recording; with ``encrypt_for``, encrypted under a new content key that only
        that station can unwrap (the key itself is never written anywhere)."""
        anchor = ClockAnchor.now()
        recording_id = new_recording_id(anchor)
        content_key = None if self.encrypt_for is None else ContentKey.new()
        header = RecordingHeader(
            recording_id=recording_id, device_id=self.settings.device_id,
            officer_id=self.officer_id or str(self.settings["device.officer_id"]),
            utc_start=anchor.iso(anchor.monotonic_us), monotonic_start_us=anchor.monotonic_us,
            clock_source=clock_source(), settings=manifest_settings(self.settings),
            encryption=None if content_key is None or self.encrypt_for is None
            else wrap(content_key, recording_id, self.encrypt_for))
        return FileRecording(self.recordings_dir / recording_id, self.key, header, anchor,
                             self.audio_config, self.settings["recording.segment_s"],
                             content_key=content_key)


def recover_interrupted(recordings_dir: Path, key: DeviceKey) -> list[Path]:
    """Seal every recording a power cut or crash left open: cut a half-written manifest line,
    enter every segment the manifest does not list yet (the one cut mid-write, truncated to its
    last whole fragment, and any sealed and renamed just before the cut) with
    ``recovered: true``, then seal. Returns the recordings recovered.

    A recording that cannot be recovered (its manifest does not verify, say) is logged and left
    as it is for an investigator; it never stops the others, or the camera, from starting.
    """
    recovered = []
    for manifest_path in sorted(recordings_dir.glob(f"*/{MANIFEST_NAME}")):
        try:
            if _recover_one(manifest_path.parent, key):
                recovered.append(manifest_path.parent)
        except OSError as exc:  # a read-only or failing card: tried again at the next start
            log.error("could not recover %s now: %s", manifest_path.parent, describe(exc))
        except Exception:
            log.exception("could not recover %s: left as it is", manifest_path.parent)
    return recovered


def _recover_one(directory: Path, key: DeviceKey) -> bool:
    data = (directory / MANIFEST_NAME).read_bytes()
    check = check_manifest(data, trusted_key=key.public_key, require_sealed=False)
    if check.sealed:
        return False
    if not check.lines:
        _remove_headerless(directory, len(data))
        return False
    header = check.read.header
    if header is None:
        raise ManifestIntegrityError(f"{directory / MANIFEST_NAME}: line 1 is not a valid header "
                                     "line; it cannot be continued")
    anchor = ClockAnchor(ClockAnchor.parse_utc(header.utc_start), header.monotonic_start_us)
    listed = {segment.file for segment in check.read.segments()}
    for orphan in sorted(directory.glob("[0-9]*.mp4")):
        if orphan.name not in listed:  # sealed and renamed, but its manifest line never made it
            orphan.rename(orphan.with_name(orphan.name + PARTIAL_SUFFIX))
    writer = ManifestWriter.reopen(directory, key)
    try:
        for segment in recover_segments(directory, clock=anchor):
            writer.append_segment(segment)
        writer.seal(utc_now(), "recovered after an interruption")
    finally:
        writer.close()
    log.warning("recovered interrupted recording %s", directory.name)
    return True
