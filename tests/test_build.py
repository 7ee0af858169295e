"""The build honours RECORDER_NATIVE: no compiler still installs under auto, never under required.

These build real wheels from a copy of the source tree with the C compiler replaced by `false`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("src") / "bwv-recorder"
    shutil.copytree(REPO, target, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "*.so", "__pycache__", ".hypothesis"))
    return target


def build_wheel(source: Path, out: Path, policy: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RECORDER_NATIVE=policy, CC="false", LDSHARED="false")
    # what an earlier build left, but for Cython's C (build/cython): that is the same for every
    # policy, and cythonize regenerates it only when its .pyx changed (two seconds a build)
    for stale in (source / "build").glob("*"):
        if stale.name != "cython":
            shutil.rmtree(stale)
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-v",
         "-w", str(out), str(source)],
        env=env, capture_output=True, text=True, timeout=600)


def wheel_files(out: Path) -> list[str]:
    [wheel] = out.glob("bwv_recorder-*.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_without_a_compiler_auto_builds_a_pure_python_install_and_says_so(
        source_copy: Path, tmp_path: Path) -> None:
    result = build_wheel(source_copy, tmp_path / "wheels", "auto")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "bwv-recorder: native module recorder.ring._ring_c NOT built" in log
    files = wheel_files(tmp_path / "wheels")
    assert "recorder/ring/_ring_py.py" in files and "recorder/board/__init__.py" in files
    assert not [f for f in files if f.endswith((".so", ".pyd", ".c", ".pyx"))]

    site = tmp_path / "site"
    [wheel] = (tmp_path / "wheels").glob("*.whl")
    zipfile.ZipFile(wheel).extractall(site)
    env = {k: v for k, v in os.environ.items() if k != "RECORDER_NATIVE"}
    env["PYTHONPATH"] = str(site)
    run = subprocess.run(
        [sys.executable, "-c", "import recorder; r = recorder.PreEventRing(1, 100); "
                               "r.push(0, 0, True, b'k'); print(recorder.implementation('ring'))"],
        env=env, cwd="/", capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "pure"
    assert "NativeFallbackWarning" in run.stderr and "build-essential" in run.stderr


def test_without_a_compiler_required_fails_the_build(source_copy: Path, tmp_path: Path) -> None:
    result = build_wheel(source_copy, tmp_path / "wheels", "required")
    assert result.returncode != 0
    assert not list((tmp_path / "wheels").glob("*.whl"))


def test_off_compiles_nothing(source_copy: Path, tmp_path: Path) -> None:
    result = build_wheel(source_copy, tmp_path / "wheels", "off")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RECORDER_NATIVE=off: building no native modules" in result.stdout + result.stderr
    assert not [f for f in wheel_files(tmp_path / "wheels") if f.endswith(".so")]
