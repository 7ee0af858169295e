"""A redaction reviewed on the staff pages (recorder.station.web.redaction): the face tracks of a
recording found once and kept in the catalogue (``redaction_reviews`` and ``redaction_tracks``,
with each track's still), so that a page view does not run the detector again, a restarted
station shows and renders the same tracks, and the track ids the officer chose are the ones
rendered (tracks found by another detector or other settings are not used: found again); and
the long work (finding the faces,
rendering) run in a background thread per recording, one at a time, its progress readable by
the page. The redacted copies of a request's recordings, with their signed reports, are kept
in the station's data directory under ``redacted/`` (one directory per request), where the
request's export takes them.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from sqlalchemy import delete, insert, select

from ..catalogue import redaction_reviews, redaction_tracks
from ..errors import ConflictError, StationError
from ..evidence_store import EvidenceStore
from .detect import FaceDetector
from .approval import APPROVAL_SIGNATURE_SUFFIX, APPROVAL_SUFFIX, record_copy
from .job import redact_recording
from .plan import Plan
from .render import DETECT_EVERY, Found, detect_faces
from .report import REPORT_SUFFIX, SIGNATURE_SUFFIX
from .source import clear_footage
from .detect import Box
from .track import Track, Tracking

REDACTED_DIR = "redacted"
STILL_HEIGHT = 96  # pixels: a track's still on the review page
MAX_STILL_BYTES = 64 * 1024  # a still larger than this is not kept (a 96-pixel JPEG is ~4 KB)
FINDING, RENDERING = "finding faces", "rendering"


class BusyError(ConflictError):
    """The recording's faces are being found or a copy rendered already."""


@dataclass(frozen=True)
class Detected:
    """What the detector found in a recording, kept for its review."""

    found: Found
    width: int
    height: int
    stills: dict[int, bytes]  # a small JPEG of each track's face, by track id

    @property
    def tracks(self) -> list[Track]:
        return self.found[0]

    @property
    def frames(self) -> int:
        return self.found[1]

    @property
    def duration_s(self) -> float:
        return self.found[2]

    @property
    def fps(self) -> float:
        return self.frames / self.duration_s if self.duration_s > 0 else 30.0


@dataclass
class Job:
    """One piece of background work on a recording, as the page shows it."""

    kind: str  # FINDING or RENDERING
    by: str
    reference: str
    done: int = 0
    total: int | None = None
    finished: bool = False
    error: str | None = None  # one line, when it failed
    output: Path | None = None  # the redacted copy, when a render finished

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        if not self.total:
            return 0
        return min(99, 100 * self.done // self.total)


class Reviews:
    """The reviews of one station's staff pages: the tracks found and the work under way."""

    def __init__(self, store: EvidenceStore, root: Path | None = None) -> None:
        self.store = store
        self._root = root
        self._detected: dict[str, Detected] = {}
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def detected(self, recording_id: str) -> Detected | None:
        """The tracks found in the recording: from memory, else from the catalogue (found
        before a restart) when the same detector and settings found them."""
        with self._lock:
            known = self._detected.get(recording_id)
        if known is not None:
            return known
        loaded = load_detected(self.store, recording_id, _settings())
        if loaded is not None:
            with self._lock:
                known = self._detected.setdefault(recording_id, loaded)
        return known

    def job(self, recording_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(recording_id)

    @property
    def root(self) -> Path:
        """The station's ``redacted/`` directory (beside its key: the data directory)."""
        if self._root is None:
            self._root = self.store.identity.key.path.parent / REDACTED_DIR
        return self._root

    def directory(self, reference: str) -> Path:
        """Where the request's redacted copies are kept (its reference hashed: a reference is
        free text)."""
        return self.root / hashlib.sha256(reference.encode()).hexdigest()[:32]

    def outputs(self, reference: str, recording_id: str | None = None) -> list[Path]:
        """The request's redacted copies (of one recording, or all), oldest first."""
        directory = self.directory(reference)
        if not directory.is_dir():
            return []
        found = [path for path in directory.glob("*.mp4")
                 if _OUTPUT.fullmatch(path.name) and (recording_id is None or
                                                      path.name.startswith(recording_id + "-"))]
        return sorted(found, key=lambda path: (path.name.rsplit("-", 1)[0],
                                               int(path.stem.rsplit("-", 1)[1])))

    def latest(self, reference: str) -> dict[str, Path]:
        """The newest redacted copy of each recording of the request."""
        newest: dict[str, Path] = {}
        for path in self.outputs(reference):
            newest[path.stem.rsplit("-redacted-", 1)[0]] = path
        return newest

    def find_faces(self, recording_id: str, by: str, reference: str) -> Job:
        """Start finding the recording's face tracks in the background."""
        job = Job(FINDING, by, reference)

        def work() -> None:
            with tempfile.TemporaryDirectory(prefix="bwv-review-") as scratch:
                footage, _ = clear_footage(self.store, recording_id, Path(scratch))
                with av.open(str(footage)) as probe:
                    stream = probe.streams.video[0]
                    width, height = stream.codec_context.width, stream.codec_context.height
                    job.total = stream.frames or None
                found = detect_faces(footage, FaceDetector(), Tracking(), DETECT_EVERY,
                                     _progress(job))
                stills = track_stills(footage, found[0], Tracking())
            detected = Detected(found, width, height, stills)
            save_detected(self.store, recording_id, detected, _settings(), by)
            with self._lock:
                self._detected[recording_id] = detected

        return self._start(recording_id, job, work)

    def render(self, plan: Plan, by: str, reference: str, client: str) -> Job:
        """Start rendering ``plan`` (its recording's tracks found first) in the background."""
        detected = self.detected(plan.recording_id)
        if detected is None:
            raise BusyError(f"find the faces in {plan.recording_id} before rendering it")
        plan.check(detected.duration_s, {track.id for track in detected.tracks},
                   (detected.width, detected.height))
        job = Job(RENDERING, by, reference, total=detected.frames)
        directory = self.directory(reference)

        def work() -> None:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            number = 1 + max((int(path.stem.rsplit("-", 1)[1])
                              for path in self.outputs(reference, plan.recording_id)), default=0)
            out = directory / f"{plan.recording_id}-redacted-{number}.mp4"
            result = redact_recording(self.store, plan, out, by, found=detected.found,
                                      progress=_progress(job),
                                      detail={"request": reference, "client": client},
                                      approved=False)
            record_copy(self.store, reference, plan.recording_id, result.path, result.sha256,
                        result.report.sha256, by)
            job.output = result.path

        return self._start(plan.recording_id, job, work)

    def _start(self, recording_id: str, job: Job, work: Callable[[], None]) -> Job:
        with self._lock:
            running = self._jobs.get(recording_id)
            if running is not None and not running.finished:
                raise BusyError(f"{recording_id}: {running.kind} is under way already "
                                f"({running.by}, {running.percent}%)")
            self._jobs[recording_id] = job

        def run() -> None:
            try:
                work()
            except StationError as exc:
                job.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            except Exception as exc:  # noqa: BLE001  # the page says what failed; no traceback
                job.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            finally:
                job.finished = True

        threading.Thread(target=run, name=f"bwv-review-{recording_id}", daemon=True).start()
        return job


_OUTPUT = re.compile(r"[A-Za-z0-9._-]+-redacted-\d+\.mp4")


def _settings() -> dict[str, Any]:
    """What finds the tracks of a review: the detector, its stride and the tracking."""
    tracking = Tracking()
    return {"detector": FaceDetector().describe(), "stride": DETECT_EVERY,
            "tracking": {"max_gap": tracking.max_gap, "pad": tracking.pad,
                         "linger": tracking.linger}}


def save_detected(store: EvidenceStore, recording_id: str, detected: Detected,
                  settings: dict[str, Any], by: str) -> None:
    """Keep what was found in the catalogue, in place of what was found before."""
    tracks, frames, duration, first = detected.found
    with store.write_lock, store.engine.begin() as conn:
        conn.execute(delete(redaction_tracks)
                     .where(redaction_tracks.c.recording_id == recording_id))
        conn.execute(delete(redaction_reviews)
                     .where(redaction_reviews.c.recording_id == recording_id))
        conn.execute(insert(redaction_reviews).values(
            recording_id=recording_id, frames=frames, duration_s=duration,
            first_num=first.numerator, first_den=first.denominator, width=detected.width,
            height=detected.height, detector=json.dumps(settings, sort_keys=True),
            found_by=by, found_us=store.clock()))
        for track in tracks:
            still = detected.stills.get(track.id)
            conn.execute(insert(redaction_tracks).values(
                recording_id=recording_id, track_id=track.id,
                detections=json.dumps([[frame, float(box.x), float(box.y), float(box.w),
                                        float(box.h)] for frame, box
                                       in sorted(track.detections.items())]),
                still=still if still is not None and len(still) <= MAX_STILL_BYTES else None))


def load_detected(store: EvidenceStore, recording_id: str,
                  settings: dict[str, Any]) -> Detected | None:
    """What the catalogue keeps of the recording's review, or None (never found, or found
    with another detector or settings: its track ids would not be the ones rendered now)."""
    with store.engine.connect() as conn:
        review = conn.execute(select(redaction_reviews)
                              .where(redaction_reviews.c.recording_id == recording_id)).first()
        if review is None or json.loads(review.detector) != settings:
            return None
        rows = conn.execute(select(redaction_tracks)
                            .where(redaction_tracks.c.recording_id == recording_id)
                            .order_by(redaction_tracks.c.track_id)).all()
    tracks = [Track(int(row.track_id), {int(frame): Box(x, y, w, h) for frame, x, y, w, h
                                        in json.loads(row.detections)}) for row in rows]
    stills = {int(row.track_id): bytes(row.still) for row in rows if row.still is not None}
    found = (tracks, int(review.frames), float(review.duration_s),
             Fraction(int(review.first_num), int(review.first_den)))
    return Detected(found, int(review.width), int(review.height), stills)


def _progress(job: Job) -> Callable[[str, int, int | None], None]:
    def progress(phase: str, done: int, total: int | None) -> None:
        job.done = done
        if total:
            job.total = total

    return progress


def track_stills(footage: Path, tracks: list[Track], tracking: Tracking,
                 height: int = STILL_HEIGHT) -> dict[int, bytes]:
    """A JPEG of each track's padded box on the frame of its middle detection, ``height``
    pixels high: what the officer needs to tell the requester's face from the others."""
    import cv2

    wanted: dict[int, list[Track]] = {}
    for track in tracks:
        frames = sorted(track.detections)
        wanted.setdefault(frames[len(frames) // 2], []).append(track)
    stills: dict[int, bytes] = {}
    if not wanted:
        return stills
    last = max(wanted)
    with av.open(str(footage)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number in wanted:
                picture = frame.to_ndarray(format="bgr24")
                for track in wanted[number]:
                    box = tracking.box_at(track, number)
                    if box is None:
                        continue
                    left, top = max(0, int(box.x)), max(0, int(box.y))
                    right = min(picture.shape[1], int(box.x + box.w))
                    bottom = min(picture.shape[0], int(box.y + box.h))
                    if right <= left or bottom <= top:
                        continue
                    crop = picture[top:bottom, left:right]
                    width = max(1, round(crop.shape[1] * height / crop.shape[0]))
                    small = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
                    done, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
                    if done:
                        stills[track.id] = jpeg.tobytes()
            if number >= last:
                break
    return stills


def companions(output: Path) -> list[Path]:
    """A redacted copy, its report and signature (written with it) and its approval record and
    signature (written when a second person approves it: they may not exist)."""
    return [output, *(output.with_name(output.name + suffix) for suffix in
                      (REPORT_SUFFIX, SIGNATURE_SUFFIX, APPROVAL_SUFFIX,
                       APPROVAL_SIGNATURE_SUFFIX))]
