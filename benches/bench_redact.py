"""Redaction speed (`bwv station redact`'s render: decode, detect, track, mask, encode) on 720p30
footage with faces, as a real-time factor (seconds of footage per second of wall time; above 1
is faster than real time) and as CPU seconds per second of footage (the process's CPU time: on
a 2-core machine real time needs well under 2, and it does not depend on what else the machine
is running, as the wall time does). The footage is support.faces' (the astronaut's head at three
sizes on the moving synthetic scene), 10 s by default (BWV_BENCH_REDACT_SECONDS), encoded once;
each round renders it whole. The cases: the defaults (one pass, the detector on every
DETECT_EVERY-th frame, libx264 at Encoding's preset), the two passes the review page takes
(faces found first, then the render), the detector on every frame, and other libx264 presets.
Each prints its rounds (median, min-max) and puts them in extra_info.

Run: .venv/bin/pytest benches/bench_redact.py -p no:cacheprovider -s
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from recorder.station.redact.detect import FaceDetector
from recorder.station.redact.plan import Plan
from recorder.station.redact.render import DETECT_EVERY, Encoding, detect_faces, render
from recorder.station.redact.track import Tracking
from support import faces

# yuface's OpenMP spins on every core unless held to one thread (libgomp reads this when
# yuface loads it): the check would otherwise take the cores from the rest of the bench
os.environ.setdefault("OMP_NUM_THREADS", "1")
SECONDS = float(os.environ.get("BWV_BENCH_REDACT_SECONDS", "10"))
ROUNDS = int(os.environ.get("BWV_BENCH_REDACT_ROUNDS", "3"))
WIDTH, HEIGHT = 1280, 720
DEFAULT = Encoding().preset
# name: (detector stride, libx264 preset, two passes)
CASES = {"defaults": (DETECT_EVERY, DEFAULT, False),
         "two passes (review page)": (DETECT_EVERY, DEFAULT, True),
         "detector on every frame": (1, DEFAULT, False),
         "detector on every 2nd frame": (2, DEFAULT, False),
         **{f"preset {preset}": (DETECT_EVERY, preset, False)
            for preset in ("ultrafast", "superfast", "veryfast") if preset != DEFAULT}}


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("redact-bench") / "footage.mp4"
    path.write_bytes(faces.encode(WIDTH, HEIGHT, SECONDS, crf=23))
    return path


def _spread(values: list[float]) -> str:
    return (f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}; rounds "
            f"{', '.join(f'{v:.2f}' for v in values)})")


@pytest.mark.parametrize("case", list(CASES))
def test_redact_720p30(benchmark: Any, footage: Path, case: str) -> None:
    stride, preset, two_passes = CASES[case]
    detector = FaceDetector()
    factors: list[float] = []
    cpu: list[float] = []
    sizes: list[int] = []

    def once() -> None:
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / "out.mp4"
            wall, used = time.perf_counter(), time.process_time()
            found = detect_faces(footage, detector, Tracking(), stride) if two_passes else None
            rendered = render(footage, out, Plan("bench"), detector,
                              encoding=Encoding(preset=preset), stride=stride, found=found)
            wall, used = time.perf_counter() - wall, time.process_time() - used
            sizes.append(out.stat().st_size)
        assert rendered.frames == round(SECONDS * faces.FPS)
        assert len(rendered.tracks) >= len(faces.FACES)
        factors.append(SECONDS / wall)
        cpu.append(used / SECONDS)

    benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    megabits = 8 * statistics.median(sizes) / SECONDS / 1e6
    benchmark.extra_info.update(
        piece="redact", op="render", size=f"{HEIGHT}p{faces.FPS} {SECONDS:g}s",
        kind=f"{case}: detect every {stride}, {preset}, {'two passes' if two_passes else 'one'}",
        realtime_factors=[round(f, 3) for f in factors],
        realtime_factor_median=round(statistics.median(factors), 3),
        cpu_s_per_footage_s=[round(c, 3) for c in cpu],
        cpu_s_per_footage_s_median=round(statistics.median(cpu), 3),
        output_mbit_s=round(megabits, 2), cores=os.cpu_count(),
        load_average=round(os.getloadavg()[0], 1))
    print(f"\nredact 720p30, {case} (detector every {stride}, libx264 {preset}, "
          f"{'two passes' if two_passes else 'one pass'}): real-time factor {_spread(factors)}; "
          f"CPU s per s of footage {_spread(cpu)}; output {megabits:.2f} Mbit/s; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")


def test_redact_720p30_faces_left(benchmark: Any, footage: Path) -> None:
    """The redaction's figure of merit on the same footage: the frames in which an independent
    detector (yuface: libfacedetection's CNN, not the Haar cascade that redacts; on 640x360
    copies of the frames) still finds a face, of those where it found one in the original; and
    how often the Haar cascade itself found all three faces in a frame it looked at."""
    import cv2
    import numpy as np

    yuface = pytest.importorskip("yuface")
    import av

    def found(path: Path) -> list[bool]:
        with av.open(str(path)) as container:
            return [bool(len(yuface.detect(np.ascontiguousarray(cv2.resize(
                frame.to_ndarray(format="bgr24"), (640, 360), interpolation=cv2.INTER_AREA)),
                conf=0.5)[0])) for frame in container.decode(video=0)]

    result: dict[str, Any] = {}

    def once() -> None:
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / "out.mp4"
            rendered = render(footage, out, Plan("bench"), FaceDetector())
            after = found(out)
        before = found(footage)
        with_faces = [n for n, face in enumerate(before) if face]
        looked = {n: 0 for n in range(0, rendered.frames, DETECT_EVERY)}
        for track in rendered.tracks:
            for n in track.detections:
                looked[n] += 1
        result.update(frames=rendered.frames, frames_with_faces=len(with_faces),
                      frames_with_faces_left=sum(after[n] for n in with_faces),
                      haar_all_three_share=round(
                          sum(1 for count in looked.values() if count >= 3) / len(looked), 3),
                      tracks=len(rendered.tracks))

    benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update(piece="redact", op="faces left", size=f"{HEIGHT}p{faces.FPS}",
                                kind="yuface check", **result)
    print(f"\nredact 720p30: faces left in {result['frames_with_faces_left']} of "
          f"{result['frames_with_faces']} frames with faces (independent detector); Haar found "
          f"all three faces in {100 * result['haar_all_three_share']:.0f}% of the frames it "
          f"looked at; {result['tracks']} tracks")


@pytest.mark.parametrize("detector", ["haar-240", "haar-360", "yuface-640"])
def test_face_detector_720p(benchmark: Any, detector: str) -> None:
    """The candidates for the redacting detector, on 60 frames of the 720p footage: the time of
    one frame (the frame scaled to 240 or 360 lines for the cascade, to 640x360 for yuface) and
    the share of frames in which it finds all three faces (one enters from the left edge after
    a few frames, one is a quarter covered). yuface is the independent check of the tests; it
    cannot redact here: its wheels are for CPython 3.11 on x86-64 only."""
    import cv2
    import numpy as np

    rgb = list(faces.frames(WIDTH, HEIGHT, 60))
    if detector.startswith("haar"):
        haar = FaceDetector(detect_height=int(detector.split("-")[1]))
        inputs = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in rgb]

        def detect(frame: Any) -> int:
            return len(haar.detect(frame))
    else:
        yuface = pytest.importorskip("yuface")
        inputs = [np.ascontiguousarray(cv2.resize(frame, (640, 360))[:, :, ::-1])
                  for frame in rgb]

        def detect(frame: Any) -> int:
            return len(yuface.detect(frame, conf=0.5)[0])
    counts: list[int] = []

    def once() -> None:
        counts[:] = [detect(frame) for frame in inputs]

    benchmark.pedantic(once, rounds=3, iterations=1)
    share = sum(1 for count in counts if count >= 3) / len(counts)
    benchmark.extra_info.update(piece="redact", op="detect 60 frames", size=f"{HEIGHT}p",
                                kind=detector, all_three_share=round(share, 3))
    print(f"\n{detector}: all three faces in {100 * share:.0f}% of 60 frames")
