"""What the fuzzers feed: each target runs one parser of the evidence path on arbitrary bytes and
lets through only the errors that parser documents. Anything else it raises is a crasher.

Shared by the coverage-guided harness (tests/fuzz/run.py, atheris), the hypothesis mutation
tests (tests/test_fuzz_parsers.py) and the replay of tests/corpus/.
"""

from __future__ import annotations

from collections.abc import Callable

from recorder.integrity import bmff, manifest


def bmff_target(data: bytes) -> None:
    """The BMFF reader: `read_segment` raises only BoxFormatError; `read_whole_fragments` never
    raises; what either returns yields its timing."""
    try:
        segment = bmff.read_segment(data)
    except bmff.BoxFormatError:
        pass
    else:
        segment.timing()
    whole = bmff.read_whole_fragments(data)
    if whole.segment is not None:
        whole.segment.timing()
        assert whole.end <= len(data)


def manifest_target(data: bytes) -> None:
    """The manifest reader and checker: `read_lines` and `check_manifest` never raise;
    `read_records` raises only ManifestReadError; every record's canonical form encodes."""
    read = manifest.read_lines(data)
    manifest.check_manifest(data, require_sealed=False)
    manifest.check_manifest(data)
    try:
        manifest.read_records(data)
    except manifest.ManifestReadError:
        pass
    for record in read.records:
        try:
            manifest.signed_bytes(record.obj)
        except manifest.ManifestFormatError:
            pass


TARGETS: dict[str, Callable[[bytes], None]] = {"bmff": bmff_target,
                                                "manifest": manifest_target}
