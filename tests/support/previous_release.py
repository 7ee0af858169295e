"""Catalogues made by an earlier release's own code, for the migration tests.

The earlier release's `recorder` package is taken from git (``git archive COMMIT recorder``)
into a temporary directory and run there, pure Python, in a subprocess
(previous_release_driver.py): it makes a station on the given catalogue URL, SQLite or
PostgreSQL, the way that release made one, and writes rows into it with its own code. So the
schema under test is exactly what that release left on each backend, independent of today's
catalogue.metadata, and nothing (no dump per backend, no key) has to be kept in the tree.
Skipped where the history is not at hand (an sdist, a shallow clone)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().with_name("previous_release_driver.py")
# the last release before schema revisions (revision 0001 is its schema)
RELEASE_0_1_0 = "01849c6"
# an older one, before staff notes, request statuses and a recording's footage start: its
# catalogue lacks tables and nullable columns that 0001 has
BEFORE_NOTES = "30a995d"


def release_tree(commit: str, root: Path) -> Path:
    """``recorder/`` as it was at ``commit``, under ``root``; skips the test without git or
    without that commit."""
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit,
                                  "recorder"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"needs the git history with release {commit} (a clone, not an sdist): "
                    f"{exc}")
    tree = root / f"release-{commit}"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def make_station(commit: str, root: Path, url: str, data: Path, public_key_b64: str,
                 recordings: list[Path]) -> dict[str, Any]:
    """A station made in ``data`` on ``url`` by release ``commit``'s code: cam7 enrolled,
    ``recordings`` ingested, holds placed (one released), and what that release also had
    (a note, a request, a signed checkpoint). Returns what the driver says it wrote."""
    tree = release_tree(commit, root)
    env = {**os.environ, "PYTHONPATH": str(tree), "RECORDER_NATIVE": "off"}
    run = subprocess.run([sys.executable, str(DRIVER), url, str(data), public_key_b64,
                          *map(str, recordings)], env=env, cwd="/", capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    made: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    assert made["recorder"] == str(tree / "recorder" / "__init__.py"), made  # the old code ran
    return made
