"""Coverage-guided fuzzing (atheris, libFuzzer) of the BMFF reader and the manifest checker.

    .venv/bin/python tests/fuzz/run.py bmff --seconds 36000      # ten hours
    .venv/bin/python tests/fuzz/run.py manifest --seconds 600

Seeds are a real recording made on the spot (PyAV segments and a signed manifest). The growing
corpus is kept in --work (default /tmp/bwv-fuzz/TARGET) so a later run resumes from it. Every
crasher, slow input (over --timeout seconds) or memory hog (over --rss-mb) libFuzzer finds is
written to tests/corpus/TARGET/ (or --artifacts), where tests/test_fuzz_parsers.py replays it
for ever after. Exit 0: no crasher in the time given. Extra arguments go to libFuzzer.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import atheris  # noqa: E402  (after the path: the harness runs as a script)

with atheris.instrument_imports(include=["recorder.integrity"]):
    from fuzz.targets import TARGETS  # noqa: E402


def write_seeds(seeds: Path) -> None:
    """A real two-segment recording: its segments (bmff seeds) and its manifest."""
    from support.segments import write_segments

    from recorder.integrity.keys import DeviceKey
    from recorder.integrity.manifest import (EventKind, ManifestWriter, RecordingHeader)
    from recorder.integrity.sealed_segment import SealedSegment

    recording = seeds / "recording"
    if (recording / "manifest.jsonl").exists():
        return
    written = write_segments(recording, seconds=4, segment_seconds=2)
    key = DeviceKey.load_or_create(seeds / "key")
    header = RecordingHeader("20261123T070000Z-fuzz", "cam7", "PC 1234",
                             "2026-11-23T07:00:00.000000Z", 7_000_000, "ntp",
                             {"segment_seconds": 2})
    with ManifestWriter.create(recording, key, header) as writer:
        for index, segment in enumerate(written, 1):
            data = segment.path.read_bytes()
            writer.append_segment(SealedSegment(
                index=index, file=segment.path.name, bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(), first_pts_us=segment.first_pts_us,
                last_pts_us=segment.last_pts_us, utc_start="2026-11-23T07:00:00.000000Z",
                utc_end="2026-11-23T07:00:02.000000Z", fragments=segment.video_keyframes,
                recovered=False))
            writer.append_event(EventKind.MARKER, "2026-11-23T07:00:01.000000Z", pts_us=index)
        writer.seal("2026-11-23T07:00:06.000000Z")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=int, default=3600, help="how long (default 3600)")
    parser.add_argument("--work", type=Path, help="corpus and seeds (default /tmp/bwv-fuzz)")
    parser.add_argument("--artifacts", type=Path,
                        help="where crashers go (default tests/corpus/TARGET)")
    parser.add_argument("--timeout", type=int, default=2, help="seconds an input may take")
    parser.add_argument("--rss-mb", type=int, default=1024, help="memory an input may take")
    args, libfuzzer = parser.parse_known_args(argv[1:])
    work = args.work or Path("/tmp/bwv-fuzz")
    corpus = work / args.target
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = work / "seeds"
    write_seeds(seeds)
    pattern = "*.mp4" if args.target == "bmff" else "manifest.jsonl"
    seed_dir = work / f"seeds-{args.target}"
    seed_dir.mkdir(exist_ok=True)
    for path in (seeds / "recording").glob(pattern):
        (seed_dir / path.name).write_bytes(path.read_bytes())
    artifacts = args.artifacts or TESTS / "corpus" / args.target
    artifacts.mkdir(parents=True, exist_ok=True)
    target = TARGETS[args.target]
    atheris.Setup([argv[0], str(corpus), str(seed_dir), f"-artifact_prefix={artifacts}/",
                   f"-max_total_time={args.seconds}", f"-timeout={args.timeout}",
                   f"-rss_limit_mb={args.rss_mb}", "-max_len=200000", *libfuzzer],
                  lambda data: target(bytes(data)))
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
