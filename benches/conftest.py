"""Bench fixtures: the same implementations as the tests, plus the baselines a user would pick;
and `--bwv-table`, which ends the run with the README table and a description of the machine.

Run: .venv/bin/pytest benches/ --bwv-table [--benchmark-json=bench.json]
 or: .venv/bin/pytest benches/ --benchmark-json=bench.json && .venv/bin/python benches/table.py bench.json
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import table

from recorder import _native

_RUN_JSON = pytest.StashKey[dict[str, Any]]()

# "CPU part" of /proc/cpuinfo on Arm cores a field team or a CI runner is likely to have
ARM_CORES = {"0xd03": "Cortex-A53", "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76",
             "0xd0c": "Neoverse-N1", "0xd40": "Neoverse-V1", "0xd49": "Neoverse-N2",
             "0xd4f": "Neoverse-V2"}


def implementation(piece: str, kind: str) -> ModuleType:
    spec = _native.PIECES[piece]
    if kind == "pure":
        return importlib.import_module(spec.pure_module)
    try:
        return importlib.import_module(spec.native_module)
    except ImportError as exc:
        if _native.policy_from_environ() is _native.NativePolicy.REQUIRED:
            raise
        pytest.skip(f"native {piece} not built: {exc}")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bwv-table", action="store_true",
                     help="end with the bench table (native against pure and the external "
                          "baseline) and the machine it ran on, ready to paste")


def pytest_configure(config: pytest.Config) -> None:
    # pytest-benchmark builds the JSON the table is made from only when asked for a file
    if config.getoption("bwv_table") and not config.getoption("benchmark_json", None):
        handle, name = tempfile.mkstemp(prefix="bwv-bench-", suffix=".json")
        os.close(handle)
        config.option.benchmark_json = Path(name)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info["bwv"] = describe_machine()


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any,
                                 output_json: dict[str, Any]) -> None:
    config.stash[_RUN_JSON] = output_json


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own table: ours is the last thing printed
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not config.getoption("bwv_table"):
        return
    terminalreporter.section("bwv bench table (paste from here)")
    data = config.stash.get(_RUN_JSON, None)
    if data is None:
        terminalreporter.write_line("no benchmarks ran, so there is no table")
        return
    for line in table.render(data):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"\n(JSON of this run: {config.getoption('benchmark_json')})")


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace").replace("\0", "").strip()
    except OSError:
        return ""


def describe_machine() -> dict[str, str]:
    """What a reader of a bench table needs to know about the machine: board, CPU and its SHA
    instructions, memory, OS, Python, which pieces are native, and whether this is emulation."""
    cpuinfo = _read("/proc/cpuinfo")
    fields: dict[str, str] = {}
    parts: list[str] = []
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        fields.setdefault(key, value)
        if key == "CPU part":
            parts.append(value)
    cores = os.cpu_count() or 0
    if parts:
        names = sorted({ARM_CORES.get(part, f"Arm core {part}") for part in parts})
        cpu = f"{cores} x {' + '.join(names)}"
    else:
        cpu = f"{cores} x {fields.get('model name') or platform.processor() or 'unknown CPU'}"
    flags = set((fields.get("Features") or fields.get("flags") or "").split())
    sha = [name for name, flag in (("ARMv8 SHA-2", "sha2"), ("x86 SHA-NI", "sha_ni")) if flag in flags]
    board = (_read("/proc/device-tree/model")
             or " ".join(filter(None, (_read("/sys/class/dmi/id/sys_vendor"),
                                        _read("/sys/class/dmi/id/product_name"))))
             or "unknown board")
    memory_kib = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                       if line.startswith("MemTotal:")), 0)
    os_name = next((line.split("=", 1)[1].strip('"') for line in
                    _read("/etc/os-release").splitlines() if line.startswith("PRETTY_NAME=")),
                   platform.system())
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq")
    native = []
    for piece in _native.PIECES.values():
        try:
            importlib.import_module(piece.native_module)
            native.append(f"{piece.name}=native")
        except ImportError:
            native.append(f"{piece.name}=pure")
    try:
        acceleration = importlib.import_module("recorder._sha256_c").ACCELERATION
    except (ImportError, AttributeError):
        acceleration = "hashlib (native SHA-256 not built)"
    description = {
        "board": board,
        "cpu": cpu,
        "cpu_sha_instructions": ", ".join(sha) or "none",
        "cpu_frequency": (f"max {int(max_khz) / 1e6:.2f} GHz, governor {governor}"
                          if max_khz.isdigit() else "not reported"),
        "memory": f"{memory_kib / 2**20:.1f} GiB",
        "os": f"{os_name}, kernel {platform.release()}, {platform.machine()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "native": f"RECORDER_NATIVE={_native.policy_from_environ().value}: {', '.join(native)}",
        "sha256_block_function": acceleration,
    }
    vcgencmd = shutil.which("vcgencmd")
    if vcgencmd:  # Raspberry Pi firmware: under-voltage and throttling spoil a bench
        result = subprocess.run([vcgencmd, "get_throttled"], capture_output=True, text=True,
                                check=False)
        description["pi_throttled"] = result.stdout.strip() or result.stderr.strip()
    if platform.machine() in ("aarch64", "arm64") and fields.get("vendor_id"):
        description["emulated"] = ("yes: an x86 /proc/cpuinfo under an aarch64 interpreter "
                                   "(qemu-user); these times are NOT performance figures")
    return description
