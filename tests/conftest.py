"""Shared fixtures: every test of an accelerated piece runs against both implementations.

The ``ring_impl`` fixture is parametrised with ids ``native`` and ``pure``. The native case is
skipped (and listed as skipped) when RECORDER_NATIVE=off, or under auto when the module is not
built; under RECORDER_NATIVE=required a missing native module is an error, never a skip.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, settings

from recorder import _native

# CI and the developers' machines are 2 shared cores: how fast examples are *generated* depends
# on whatever else runs, so that is not a failure; every property keeps its example count.
settings.register_profile("shared-machine", suppress_health_check=[HealthCheck.too_slow],
                          deadline=None)
settings.load_profile("shared-machine")


def _implementation(piece: str, kind: str) -> ModuleType:
    spec = _native.PIECES[piece]
    if kind == "pure":
        return importlib.import_module(spec.pure_module)
    policy = _native.policy_from_environ()
    if policy is _native.NativePolicy.OFF:
        pytest.skip("RECORDER_NATIVE=off: native implementation deselected")
    try:
        return importlib.import_module(spec.native_module)
    except ImportError as exc:
        if policy is _native.NativePolicy.REQUIRED:
            raise
        pytest.skip(f"native {piece} not built: {exc}")


@pytest.fixture(scope="session", params=["native", "pure"])
def ring_impl(request: pytest.FixtureRequest) -> ModuleType:
    """The module of one implementation of the pre-event ring (has ``PreEventRing``)."""
    return _implementation("ring", request.param)


@pytest.fixture(scope="session")
def both_ring_impls() -> tuple[ModuleType, ModuleType]:
    """(native, pure) ring modules, for differential tests; skipped where native is absent."""
    return _implementation("ring", "native"), _implementation("ring", "pure")


def _on_raspberry_pi() -> bool:
    try:
        return "Raspberry Pi" in Path("/proc/device-tree/model").read_text(errors="ignore")
    except OSError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``pi`` run on a Raspberry Pi and are skipped (and listed as skipped) elsewhere."""
    if _on_raspberry_pi():
        return
    skip = pytest.mark.skip(reason="needs a Raspberry Pi with its camera module (marked pi)")
    for item in items:
        if "pi" in item.keywords:
            item.add_marker(skip)


# --- the suite on every core ---------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """The whole suite (`bash scripts/test`, `pytest` with no paths, `-k`/`-m` allowed) runs on
    every core: pytest-xdist ``-n auto``, whole files per worker so that a module's fixtures are
    made once. Named files run in this process (starting workers costs seconds), as does any run
    given ``-n``, ``-p no:xdist``, ``--pdb``/``--trace`` (which xdist refuses) or
    ``--collect-only``, an xdist worker itself, and a run without xdist installed (the aarch64
    tests under emulation).

    This is here and not in pyproject's addopts so that ``pytest benches/`` stays serial
    (pytest-benchmark measures nothing under xdist) and a run without xdist still parses.
    """
    if (not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput")
            or config.args_source is not pytest.Config.ArgsSource.TESTPATHS
            or config.option.usepdb or config.option.trace or config.option.collectonly):
        return
    if config.option.numprocesses is None:
        config.option.numprocesses = "auto"
        if config.option.dist == "no":
            config.option.dist = "loadfile"


@pytest.fixture
def no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.fsync and os.fdatasync do nothing, in this process, for one test.

    For tests of what is uploaded, catalogued or kept, where durability is not what is checked:
    they run hundreds of fsyncs, slow on a busy disk. Never for a test of durability, power cuts
    or the order of writes and syncs (the manifest, the segment writer, recovery)."""
    import os

    monkeypatch.setattr(os, "fsync", lambda fd: None)
    monkeypatch.setattr(os, "fdatasync", lambda fd: None)
