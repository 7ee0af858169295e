"""What this machine is, for `bwv bench` and `bwv doctor`: the board, the CPU and its SHA-256 and
AES instructions, the cpufreq governor, emulation, Python, and which native pieces are loaded.

Every probe reads files under ``root`` (``/`` on a real machine; a directory holding a fake
``proc/`` and ``sys/`` tree in the tests) and gives None, never an exception, for a file that is
missing or unreadable: a field team pastes what there is.
"""

from __future__ import annotations

import platform
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._native import PIECES, NativeFallbackWarning, load

#: ARM's "CPU part" numbers (implementer 0x41) of the cores found in Raspberry Pis and their kin.
ARM_PARTS = {
    0xB76: "ARM1176",      # Pi 1, Zero
    0xC07: "Cortex-A7",    # Pi 2
    0xD03: "Cortex-A53",   # Pi 3, Zero 2 W
    0xD04: "Cortex-A35",
    0xD05: "Cortex-A55",
    0xD07: "Cortex-A57",
    0xD08: "Cortex-A72",   # Pi 4, 400, CM4
    0xD0B: "Cortex-A76",   # Pi 5
}
X86_MACHINES = {"x86_64", "amd64", "i386", "i686"}
ARM_MACHINES = {"aarch64", "arm64", "armv7l", "armv6l", "armv8l"}


@dataclass(frozen=True)
class Machine:
    """The facts, each None where this machine does not say."""

    board: str | None           # /proc/device-tree/model, e.g. "Raspberry Pi 4 Model B Rev 1.5"
    architecture: str           # of this Python process (platform.machine())
    cpu: str | None             # "Intel(R) Xeon(R) ...", "Cortex-A72 (ARM part 0xd08)"
    cores: int | None           # online CPUs
    sha_instructions: bool | None  # SHA-256 in hardware: x86 sha_ni, ARMv8 sha2
    aes_instructions: bool | None  # x86 aes (AES-NI), ARMv8 aes
    governor: str | None        # cpu0's cpufreq scaling governor
    max_mhz: int | None         # cpu0's scaling_max_freq
    emulation: str | None       # "qemu-user: ...", "virtual machine: ...", or None (none seen)
    python: str
    native: dict[str, str] = field(default_factory=dict)  # piece -> "native" or "pure (why)"
    sha256_path: str = ""       # the block function the active SHA-256 hasher runs

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs, in the order they are printed."""

        def said(value: object) -> str:
            if value is None:
                return "unknown"
            if isinstance(value, bool):
                return "yes" if value else "no"
            return str(value)

        governor = said(self.governor)
        if self.max_mhz is not None:
            governor += f" (max {self.max_mhz} MHz)"
        return [
            ("board", said(self.board)),
            ("cpu", f"{said(self.cpu)}, {said(self.cores)} cores, {self.architecture}"),
            ("SHA-256 instructions", said(self.sha_instructions)),
            ("AES instructions", said(self.aes_instructions)),
            ("cpufreq governor", governor),
            ("emulation", self.emulation or "none seen"),
            ("python", self.python),
            ("native pieces", ", ".join(f"{name} {how}" for name, how in self.native.items())),
            ("SHA-256 path", self.sha256_path or "unknown"),
        ]


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().rstrip(b"\0\n").decode("utf-8", "replace").strip()
    except (OSError, ValueError):
        return None


def _cpuinfo(root: Path) -> list[tuple[str, str]]:
    """/proc/cpuinfo as (key, value) pairs, in order; empty if unreadable."""
    text = _read(root / "proc" / "cpuinfo") or ""
    pairs = []
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            pairs.append((key.strip(), value.strip()))
    return pairs


def _first(pairs: list[tuple[str, str]], *keys: str) -> str | None:
    return next((value for key, value in pairs if key in keys and value), None)


def _online_cores(root: Path, pairs: list[tuple[str, str]]) -> int | None:
    online = _read(root / "sys" / "devices" / "system" / "cpu" / "online")
    if online:
        count = 0
        try:
            for part in online.split(","):
                first, _, last = part.partition("-")
                count += int(last or first) - int(first) + 1
        except ValueError:
            count = 0
        if count > 0:
            return count
    processors = sum(1 for key, _ in pairs if key == "processor")
    return processors or None


def _cpu_name(pairs: list[tuple[str, str]]) -> str | None:
    name = _first(pairs, "model name", "cpu model", "Processor")
    if name and not name.lower().startswith("arm"):  # x86 (and armv7's "ARMv7 Processor rev 3")
        return name
    part = _first(pairs, "CPU part")
    if part is not None:
        try:
            number = int(part, 16)
        except ValueError:
            return name
        core = ARM_PARTS.get(number)
        return f"{core} (ARM part {part})" if core else f"ARM part {part}"
    return name


def _instructions(pairs: list[tuple[str, str]]) -> tuple[bool | None, bool | None]:
    """(SHA-256, AES) in hardware according to cpuinfo's flags (x86) or Features (ARM)."""
    flags = _first(pairs, "flags")
    if flags is not None:
        words = set(flags.split())
        return "sha_ni" in words, "aes" in words
    features = _first(pairs, "Features")
    if features is not None:
        words = set(features.split())
        return "sha2" in words, "aes" in words
    return None, None


def _emulation(root: Path, machine: str, pairs: list[tuple[str, str]]) -> str | None:
    """What emulates or virtualises this machine, where it shows."""
    x86_cpuinfo = _first(pairs, "flags", "vendor_id") is not None
    arm_cpuinfo = _first(pairs, "Features", "CPU implementer") is not None
    if machine in ARM_MACHINES and x86_cpuinfo:
        return f"qemu-user: an {machine} process on an x86 CPU (its /proc/cpuinfo is the host's)"
    if machine in X86_MACHINES and arm_cpuinfo:
        return f"user-mode emulation: an {machine} process on an ARM CPU"
    compatible = _read(root / "proc" / "device-tree" / "compatible") or ""
    if "dummy-virt" in compatible or "qemu" in compatible.lower():
        return "virtual machine: QEMU's 'virt' board"
    dmi = " ".join(filter(None, (_read(root / "sys" / "class" / "dmi" / "id" / name)
                                 for name in ("sys_vendor", "product_name"))))
    for vendor in ("QEMU", "KVM", "VMware", "VirtualBox", "Xen", "Microsoft", "Amazon", "Google"):
        if vendor.lower() in dmi.lower():
            return f"virtual machine: {dmi}"
    flags = _first(pairs, "flags") or ""
    if "hypervisor" in flags.split():
        return "virtual machine: the CPU reports a hypervisor"
    return None


def _native_pieces() -> tuple[dict[str, str], str]:
    pieces = {}
    sha256_path = ""
    for name in PIECES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NativeFallbackWarning)
            try:
                choice = load(name)
            except ImportError as exc:  # RECORDER_NATIVE=required without the native piece
                pieces[name] = f"missing ({exc})"
                continue
        pieces[name] = (choice.implementation if choice.implementation == "native"
                        else f"pure ({choice.reason})")
        if name == "sha256":
            sha256_path = str(getattr(choice.module, "ACCELERATION", ""))
    return pieces, sha256_path


def describe(root: Path = Path("/"), *, machine: str | None = None,
             native: bool = True) -> Machine:
    """This machine (or the one whose /proc and /sys are under ``root``); ``machine`` stands in
    for platform.machine(); ``native=False`` leaves the native pieces out (they are this
    process's, whatever ``root`` says)."""
    machine = machine or platform.machine()
    pairs = _cpuinfo(root)
    sha, aes = _instructions(pairs)
    cpufreq = root / "sys" / "devices" / "system" / "cpu" / "cpu0" / "cpufreq"
    max_khz = _read(cpufreq / "scaling_max_freq")
    pieces, sha256_path = _native_pieces() if native else ({}, "")
    board = _read(root / "proc" / "device-tree" / "model") or _first(pairs, "Model")
    return Machine(
        board=board,
        architecture=machine,
        cpu=_cpu_name(pairs),
        cores=_online_cores(root, pairs),
        sha_instructions=sha,
        aes_instructions=aes,
        governor=_read(cpufreq / "scaling_governor"),
        max_mhz=int(max_khz) // 1000 if max_khz and max_khz.isdigit() else None,
        emulation=_emulation(root, machine, pairs),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        native=pieces,
        sha256_path=sha256_path,
    )
