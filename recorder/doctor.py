"""`bwv doctor`: what is installed and active on this machine, and why."""

from __future__ import annotations

import platform
import sys
import warnings
from dataclasses import dataclass

from . import __version__
from ._native import ENV_VAR, PIECES, NativeFallbackWarning, load, policy_from_environ


@dataclass(frozen=True)
class DoctorLine:
    label: str
    value: str


def report() -> list[DoctorLine]:
    """The facts `bwv doctor` prints, in order."""
    lines = [
        DoctorLine("bwv-recorder", __version__),
        DoctorLine("python", f"{platform.python_implementation()} {platform.python_version()} "
                             f"({sys.executable})"),
        DoctorLine("platform", f"{platform.platform()} {platform.machine()}"),
        DoctorLine(ENV_VAR, policy_from_environ().value),
    ]
    for name, piece in PIECES.items():
        with warnings.catch_warnings():
            # the fallback is reported on its own line here; a warning on top would repeat it
            warnings.simplefilter("ignore", NativeFallbackWarning)
            choice = load(name)
        lines.append(DoctorLine(f"{name} ({piece.summary})",
                                f"{choice.implementation}: {choice.reason}"))
    lines.extend(_device_key_lines())
    lines.extend(_raspberry_pi_lines())
    return lines


def _raspberry_pi_lines() -> list[DoctorLine]:
    """Camera, microphone, GPIO, clock and storage checks on a Pi; one 'skipped' line elsewhere."""
    from .board import rpi_checks  # gpiozero is imported only when doctor gets this far
    from .keys import default_data_dir

    storage = default_data_dir()
    while not storage.exists():  # free space is that of the nearest existing directory
        storage = storage.parent
    lines = []
    for check in rpi_checks(storage_path=storage):
        value = f"{check.status.value}: {check.detail}"
        if check.remedy:
            value += f" -> {check.remedy}"
        lines.append(DoctorLine(check.label, value))
    return lines


def _device_key_lines() -> list[DoctorLine]:
    # Doctor only looks: the key is created by the first recording, so that running a
    # diagnostic never changes the camera's identity or leaves a key in a mistyped directory.
    from . import keys  # imported here: the rest of doctor needs no cryptography

    data_dir = keys.default_data_dir()
    try:
        key = keys.DeviceKey.find(data_dir)
    except (keys.DeviceKeyError, OSError) as exc:
        return [DoctorLine("device key", f"ERROR: {exc}")]
    if key is None:
        return [DoctorLine("device key", f"no device key yet (created on first recording) in "
                                         f"{data_dir} (set {keys.DATA_DIR_ENV_VAR} to change)")]
    return [DoctorLine("device key", str(key.path)),
            DoctorLine("device public key", keys.public_key_spki_b64(key.public_key)),
            DoctorLine("device key fingerprint", f"sha256 {key.fingerprint}")]


def render(lines: list[DoctorLine]) -> str:
    width = max(len(line.label) for line in lines)
    return "\n".join(f"{line.label:<{width}}  {line.value}" for line in lines)
