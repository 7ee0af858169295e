"""What `bwv upload` says of a recording it will not send: never that a damaged manifest is
merely "still recording", and it keeps every byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recorder import cli
from recorder.integrity.keys import DeviceKey
from support.station import make_recording


def test_a_sealed_manifest_whose_segment_line_does_not_read_is_kept_and_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "camera"
    key = DeviceKey.load_or_create(data)
    directory = make_recording(data / "recordings", key)
    manifest = directory / "manifest.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    segment_at = next(i for i, line in enumerate(lines) if b'"type":"segment"' in line)
    damaged = json.loads(lines[segment_at])
    del damaged["sha256"]  # what only tampering or a broken card could do: the line is signed
    lines[segment_at] = json.dumps(damaged, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    manifest.write_bytes(b"".join(lines))
    before = sorted(p.name for p in directory.iterdir())

    # the station is never contacted: nothing here is fit to send
    code = cli.main(["upload", "--station", "http://127.0.0.1:9", "--data", str(data),
                     "--device-id", "cam7"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"skipped {directory.name}: not sealed, or its manifest does not read" in out
    assert f"bwv verify {directory}" in out
    assert sorted(p.name for p in directory.iterdir()) == before
