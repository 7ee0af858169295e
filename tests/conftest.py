"""Shared fixtures: every test of an accelerated piece runs against both implementations.

The ``implementation`` fixture is parametrised with ids ``native`` and ``pure`` (the native case
carries the ``native`` marker: deselect it with ``-m "not native"`` or skip it with
``--no-native``); ``ring_impl``, ``mux_impl`` and ``sha_impl`` are the module of that
implementation of each piece. The native case is skipped (and listed as skipped) when
RECORDER_NATIVE=off, or under auto when the module is not built; under RECORDER_NATIVE=required
a missing native module is an error, never a skip. Helpers shared by tests are in support/.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import signal
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, settings

from support import emulated, session
from support.twins import twin_module

# pytest rewrites the asserts of every test module it collects, and of every module of a
# package that is a pytest plugin (hypothesis: 73 modules), and caches the result in
# __pycache__ (ignored by git) unless bytecode writing is off, as PYTHONDONTWRITEBYTECODE makes
# it in some shells and CI images: then each xdist worker rewrote and compiled them all again,
# 3 s of CPU per worker per run. This process writes its cache from here on, and the workers
# (started after this) and the processes tests start inherit an environment that lets them.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# CI and the developers' machines are 2 shared cores: how fast examples are *generated* depends
# on whatever else runs, so that is not a failure; every property keeps its example count.
settings.register_profile("shared-machine", suppress_health_check=[HealthCheck.too_slow],
                          deadline=None)
settings.load_profile("shared-machine")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-native", action="store_true", default=False,
                     help="skip the native implementation of every accelerated piece")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "native: runs the native implementation of an "
                            "accelerated piece (skipped with --no-native)")
    # A suite started in the background by a non-interactive shell (as CI may start it) inherits
    # Ctrl-C ignored, and so would every `bwv` it starts, until bwv installs its own handlers:
    # a SIGINT in start-up would then be lost. The signal tests are about what a user at a
    # terminal gets, so the processes they start get the default disposition back.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not hasattr(config, "workerinput"):  # the controller, before any worker starts
        session.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        session.end()


@pytest.fixture(scope="session", params=[pytest.param("native", marks=pytest.mark.native),
                                         "pure"])
def implementation(request: pytest.FixtureRequest) -> str:
    """"native" or "pure": which implementation of an accelerated piece a test runs against."""
    if request.param == "native" and request.config.getoption("--no-native"):
        pytest.skip("--no-native: native implementation skipped")
    return str(request.param)


@pytest.fixture(scope="session")
def ring_impl(implementation: str) -> ModuleType:
    """The module of one implementation of the pre-event ring (has ``PreEventRing``)."""
    return twin_module("ring", implementation)


@pytest.fixture(scope="session")
def mux_impl(implementation: str) -> ModuleType:
    """The module of one implementation of the muxer (has ``FragmentedMp4Muxer``)."""
    return twin_module("mux", implementation)


@pytest.fixture(scope="session")
def sha_impl(implementation: str) -> ModuleType:
    """The module of one implementation of the hasher (has ``Sha256``)."""
    return twin_module("sha256", implementation)


def _both(piece: str, config: pytest.Config) -> tuple[ModuleType, ModuleType]:
    if config.getoption("--no-native"):
        pytest.skip("--no-native: a differential test needs the native implementation")
    return twin_module(piece, "native"), twin_module(piece, "pure")


@pytest.fixture(scope="session")
def both_ring_impls(pytestconfig: pytest.Config) -> tuple[ModuleType, ModuleType]:
    """(native, pure) ring modules, for differential tests; skipped where native is absent."""
    return _both("ring", pytestconfig)


@pytest.fixture(scope="session")
def both_mux_impls(pytestconfig: pytest.Config) -> tuple[ModuleType, ModuleType]:
    """(native, pure) muxer modules, for differential tests; skipped where native is absent."""
    return _both("mux", pytestconfig)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything collection made (every test module, hypothesis, the station's libraries) goes
    to the permanent GC generation: a full collection of that heap in the middle of a real-time
    recording stalls the capture threads for a fifth of a second, which a camera process, with a
    small heap, never sees; the recorded frames then bunch up and fail the timing checks."""
    gc.collect()
    gc.freeze()


def _on_raspberry_pi() -> bool:
    try:
        return "Raspberry Pi" in Path("/proc/device-tree/model").read_text(errors="ignore")
    except OSError:
        return False


def _without_a_libcamera_camera() -> str | None:
    """Why the tests marked ``picamera2`` cannot run here, or None if they can: on a Raspberry
    Pi, or under scripts/with-virtual-camera (libcamera's virtual camera) with picamera2 installed."""
    if _on_raspberry_pi():
        return None
    if os.environ.get("BWV_VIRTUAL_CAMERA") != "1":
        return ("needs picamera2 and a camera: a Raspberry Pi, or libcamera's virtual camera "
                "(bash scripts/with-virtual-camera .venv/bin/pytest ...; docs/testing.md)")
    if importlib.util.find_spec("picamera2") is None:
        return "picamera2 is not installed: bash scripts/setup --test --virtual-camera"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``pi`` run on a Raspberry Pi and are skipped (and listed as skipped) elsewhere;
    those marked ``picamera2`` also run on libcamera's virtual camera."""
    on_pi = _on_raspberry_pi()
    skip = pytest.mark.skip(reason="needs a Raspberry Pi's own hardware (marked pi)")
    no_camera = _without_a_libcamera_camera()
    if emulated.active():  # benches/arm/run-emulated: what emulation cannot run says why
        for item in items:
            why = emulated.reason(item.nodeid)
            if why is not None:
                item.add_marker(pytest.mark.skip(reason=why))
    # picamera2's preview thread still calls Thread.setDaemon; only that warning, only from it
    picamera2_deprecation = pytest.mark.filterwarnings(
        r"ignore:setDaemon\(\) is deprecated:DeprecationWarning:picamera2\.")
    for item in items:
        if "pi" in item.keywords:
            if not on_pi:
                item.add_marker(skip)
        elif "picamera2" in item.keywords:
            item.add_marker(picamera2_deprecation if no_camera is None
                            else pytest.mark.skip(reason=no_camera))


# --- the suite on every core ---------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """The whole suite (`bash scripts/test`, `pytest` with no paths, `-k`/`-m` allowed) runs on
    every core: pytest-xdist with two workers more than cores, idle workers taking tests from busy
    ones (``--dist worksteal``; a module's fixtures are then made once per worker that runs it). Named files run in this process (starting workers costs seconds), as does any run
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
        # two workers more than cores: a good part of the suite waits on real time (recordings
        # at camera speed, signals, timeouts, servers), and cores idle while it does. More
        # workers were faster on this 2-core machine at times (8: 91-126 s against 118-123 s),
        # but the load broke real-time tests' timing in CI (an audio offset of 91 ms against a
        # 67 ms bound, a reset /health): not worth seconds (docs/testing.md)
        config.option.numprocesses = (os.cpu_count() or 1) + 2
        if config.option.dist == "no":
            config.option.dist = "worksteal"


@pytest.fixture
def no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.fsync and os.fdatasync do nothing, in this process, for one test.

    For tests of what is uploaded, catalogued or kept, where durability is not what is checked:
    they run hundreds of fsyncs, slow on a busy disk. Never for a test of durability, power cuts
    or the order of writes and syncs (the manifest, the segment writer, recovery)."""
    import os

    monkeypatch.setattr(os, "fsync", lambda fd: None)
    monkeypatch.setattr(os, "fdatasync", lambda fd: None)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passwords hashed in this process are argon2id at t=1, m=1 MiB, p=1, for every test of a
    process that has loaded the station's accounts (it is never imported for this).

    A station's own parameters (t=3, m=64 MiB, p=4: 0.37 s of CPU per hash and verify) are
    pinned by tests/test_station_accounts.py, and used by every `bwv station` the tests start;
    the in-process tests log dozens of accounts in, to test who may see what, not argon2."""
    accounts = sys.modules.get("recorder.station.accounts")
    if accounts is not None:
        from argon2 import PasswordHasher

        monkeypatch.setattr(accounts, "password_hasher",
                            PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
