"""The documentation says what the code does: links resolve inside the repository, the manual
manifest check in docs/formats.md works on a real recording and catches tampering, joining
segments with `cat` gives the recording's length, and the station's routes and errors are the
documented ones."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
FORMATS = DOCS / "formats.md"


def markdown_files() -> list[Path]:
    """The project's own Markdown: README.md, docs/, and the READMEs next to code."""
    return sorted([REPO / "README.md", *DOCS.rglob("*.md"), *(REPO / "board").rglob("*.md"),
                   *(REPO / "benches").rglob("*.md")])


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces become hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


def named_markdown_resolves(name: str, source: Path) -> bool:
    """A Markdown file named in ``source`` exists in this repository: relative to the source, to
    the repository root, or (for a bare name) anywhere in it; ``file:///opt/bwv-recorder/X`` is
    the install location of the clone, so X in the repository."""
    installed = "file:///opt/bwv-recorder/"
    if name.startswith(installed):
        return (REPO / name[len(installed):]).is_file()
    for base in (source.parent, REPO):
        candidate = (base / name).resolve()
        if candidate.is_relative_to(REPO) and candidate.is_file():
            return True
    return "/" not in name and any(path.name == name for path in markdown_files())


def test_every_markdown_file_named_anywhere_is_in_the_repository() -> None:
    sources = [*markdown_files(), *(REPO / "recorder").rglob("*.py"),
               *(REPO / "board").rglob("*.py"), *(REPO / "benches").rglob("*.py"),
               *(REPO / "board" / "rpi").glob("*.service"), *(DOCS / "deploy").iterdir()]
    missing = [f"{path.relative_to(REPO)}:{number}: {name}"
               for path in sources
               for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               for name in re.findall(r"(?:file://)?[\w./-]+\.md\b", line)
               if not name.startswith(("http", "//")) and not named_markdown_resolves(name, path)]
    assert missing == []


def test_every_relative_link_and_anchor_resolves() -> None:
    broken = []
    for path in markdown_files():
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.relative_to(REPO)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{path.relative_to(REPO)}: {target} (no such heading)")
    assert broken == []


def test_the_readme_keeps_the_quick_start_commands_and_stays_short() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "bash scripts/run     #" in readme and "bash scripts/test    #" in readme
    assert len(readme.splitlines()) <= 170


# -- a real recording, checked as the documentation says ------------------------------------


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short synthetic recording made by `bwv record`, with its own data directory."""
    base = tmp_path_factory.mktemp("docs-recording")
    env = {**os.environ, "BWV_DATA_DIR": str(base / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "recorder", "record", "--source", "synthetic", "--audio", "none",
         "--size", "320x240", "--pre-event", "1", "--duration", "6", "--segment", "2",
         "--fast", "--out", str(base / "recordings")],
        cwd=base, env=env, capture_output=True, text=True, timeout=120, check=True)
    return Path(result.stdout.strip().splitlines()[-1])


def manual_check_script() -> str:
    text = FORMATS.read_text(encoding="utf-8")
    block = text.split("<!-- manual-check:begin -->")[1].split("<!-- manual-check:end -->")[0]
    return block.split("```sh\n", 1)[1].rsplit("```", 1)[0]


def run_manual_check(directory: Path) -> subprocess.CompletedProcess[str]:
    for tool in ("openssl", "jq", "sha256sum", "base64"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/debian-packages-test.txt)")
    return subprocess.run(["bash", "-c", manual_check_script()], cwd=directory,
                          capture_output=True, text=True, timeout=120)


def tampered_copy(recording: Path, tmp_path: Path) -> Path:
    copy = tmp_path / recording.name
    shutil.copytree(recording, copy)
    return copy


def test_the_manual_check_accepts_a_real_recording(recording: Path) -> None:
    result = run_manual_check(recording)
    assert result.returncode == 0, result.stdout + result.stderr
    header = json.loads((recording / "manifest.jsonl").read_text().splitlines()[0])
    assert f"signed by key {header['key_fingerprint']}" in result.stdout


def test_the_manual_check_refuses_an_edited_line(recording: Path, tmp_path: Path) -> None:
    copy = tampered_copy(recording, tmp_path)
    manifest = copy / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"recovered":false', '"recovered":true')
    manifest.write_text("".join(lines))
    result = run_manual_check(copy)
    assert result.returncode != 0 and "line 3: bad signature" in result.stdout


def test_the_manual_check_refuses_a_deleted_line(recording: Path, tmp_path: Path) -> None:
    copy = tampered_copy(recording, tmp_path)
    manifest = copy / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:2] + lines[3:]))
    result = run_manual_check(copy)
    assert result.returncode != 0 and "line 3: broken chain" in result.stdout


def test_the_manual_check_refuses_a_missing_seal(recording: Path, tmp_path: Path) -> None:
    copy = tampered_copy(recording, tmp_path)
    manifest = copy / "manifest.jsonl"
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:-1]))
    result = run_manual_check(copy)
    assert result.returncode != 0 and "not sealed" in result.stdout


def test_the_manual_check_refuses_a_changed_segment(recording: Path, tmp_path: Path) -> None:
    copy = tampered_copy(recording, tmp_path)
    segment = copy / "000002.mp4"
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    result = run_manual_check(copy)
    assert result.returncode != 0 and "000002.mp4: FAILED" in result.stdout


def probe_duration_s(path: Path) -> float:
    result = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                             "packet=pts_time,duration_time", "-of", "json", str(path)],
                            capture_output=True, text=True, check=True)
    packets = json.loads(result.stdout)["packets"]
    return max(float(p["pts_time"]) + float(p["duration_time"]) for p in packets)


def test_cat_joins_segments_into_the_recording_and_the_concat_demuxer_does_not(
        recording: Path, tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("ffmpeg is not installed (scripts/debian-packages-test.txt)")
    segments = sorted(recording.glob("0*.mp4"))
    assert len(segments) >= 3
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(b"".join(s.read_bytes() for s in segments))  # cat 0*.mp4 > whole.mp4
    lines = [json.loads(line) for line in (recording / "manifest.jsonl").read_text().splitlines()]
    listed = [line for line in lines if line["type"] == "segment"]
    video_span_s = (listed[-1]["last_pts_us"] - listed[0]["first_pts_us"]) / 1e6
    assert abs(probe_duration_s(whole) - video_span_s) < 0.2

    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"file '{s}'\n" for s in segments))
    concat = tmp_path / "concat.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                    "-c", "copy", str(concat)], check=True, capture_output=True)
    assert probe_duration_s(concat) > 1.5 * video_span_s  # the timeline counted twice


# -- the station's HTTP API --------------------------------------------------------------------


def test_every_station_route_is_documented() -> None:
    from recorder.station.app import create_app
    from recorder.station.web import create_web_app

    device = create_app(None)  # type: ignore[arg-type]  # routes only: no store used
    staff = create_web_app(None).app  # type: ignore[arg-type]  # inside the security layer
    text = FORMATS.read_text(encoding="utf-8")
    missing = []
    for route in [*device.routes, *staff.routes]:  # type: ignore[attr-defined]
        path = getattr(route, "path", "").replace("{recording_id}", "{id}")
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD" and f"`{method} {path}`" not in text:
                missing.append(f"{method} {path}")
    assert missing == []


def test_every_error_status_and_authentication_code_is_documented() -> None:
    import recorder.station as station
    from recorder.station import errors

    text = FORMATS.read_text(encoding="utf-8")
    table = text[text.index("### Errors"):]
    statuses = {cls.status for cls in vars(errors).values()
                if isinstance(cls, type) and issubclass(cls, errors.StationError)
                and cls is not errors.StationError}
    assert {s for s in statuses if f"| {s} |" not in table} == set()
    package = Path(station.__file__).parent
    codes = {m.group(1) for source in package.glob("*.py")
             for m in re.finditer(r'RequestAuthError\(\s*"(\w+)"', source.read_text())}
    assert codes and {c for c in codes if f"`{c}`" not in table} == set()
