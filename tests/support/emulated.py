"""The tests that cannot run on emulated aarch64 (benches/arm/run-emulated sets BWV_EMULATED=1), and
why. tests/conftest.py skips each with its reason, so the run lists them (-rs): none is left out
in silence, and everything else runs under qemu-aarch64.

A test belongs here only when emulation itself, not aarch64, keeps it from running: a failure that
would also happen on a Raspberry Pi is a bug to fix, never an entry here.
"""

from __future__ import annotations

import os

ENV = "BWV_EMULATED"

# node id, or the start of node ids (a file, a test and its parameters) -> why it is skipped
SKIPPED: dict[str, str] = {
    "tests/test_build.py::": (
        "emulated aarch64: builds wheels with a C compiler inside the test, and the compiler there "
        "is the host's x86-64 gcc; run-emulated's cross build is the aarch64 build"),
}

# The reason given by a fixture that cannot work under emulation (tests/test_storage_faults.py)
LD_PRELOAD_SHIM = ("emulated aarch64: the fault shim is LD_PRELOADed, and under qemu-user the "
                   "host's loader (of qemu itself) sees LD_PRELOAD before the emulated one does")


def active() -> bool:
    return os.environ.get(ENV) == "1"


def reason(nodeid: str) -> str | None:
    """Why the test ``nodeid`` is skipped under emulation, or None."""
    for prefix, why in SKIPPED.items():
        if nodeid == prefix or nodeid.startswith(prefix):
            return why
    return None
