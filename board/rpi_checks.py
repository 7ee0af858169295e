"""Raspberry Pi checks for `bwv doctor`: camera, microphone, GPIO pins, clock sync, free storage.

`rpi_checks` returns one `RpiCheck` per item, each with a remedy the wearer's technician can act
on. On a machine that is not a Raspberry Pi it returns a single SKIPPED item saying so.
"""

from __future__ import annotations

import enum
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .settings import BoardSettings

MODEL_PATH = Path("/proc/device-tree/model")
MIN_FREE_BYTES = 2 * 1024**3  # about 30 minutes of 1080p30 at 10 Mbit/s with headroom

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class CheckStatus(enum.Enum):
    OK = "ok"
    FAIL = "FAIL"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class RpiCheck:
    label: str
    status: CheckStatus
    detail: str
    remedy: str = ""


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=15, check=False)


def pi_model(model_path: Path = MODEL_PATH) -> str | None:
    """The Pi's model string ("Raspberry Pi 5 Model B Rev 1.0"), or None if this is not a Pi."""
    try:
        model = model_path.read_bytes().rstrip(b"\0").decode("ascii", "replace").strip()
    except OSError:
        return None
    return model if model.startswith("Raspberry Pi") else None


def rpi_checks(settings: BoardSettings | None = None, storage_path: Path = Path("."), *,
               model_path: Path = MODEL_PATH, run: Runner = _run) -> list[RpiCheck]:
    """Every Pi check, in the order `bwv doctor` prints them."""
    settings = settings or BoardSettings()
    model = pi_model(model_path)
    if model is None:
        return [RpiCheck("Raspberry Pi", CheckStatus.SKIPPED,
                         "not a Raspberry Pi: camera, microphone and GPIO checks skipped")]
    return [RpiCheck("Raspberry Pi", CheckStatus.OK, model),
            _camera(run), _microphone(run), _gpio(settings), _clock(run),
            _storage(storage_path)]


def _try(run: Runner, command: Sequence[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return run(command)
    except (OSError, subprocess.SubprocessError):
        return None


def _camera(run: Runner) -> RpiCheck:
    result = _try(run, ["rpicam-hello", "--list-cameras"])
    if result is None:
        return RpiCheck("camera", CheckStatus.FAIL, "rpicam-hello is not installed",
                        "sudo apt install rpicam-apps python3-picamera2")
    if result.returncode == 0 and ": " in result.stdout and "No cameras" not in result.stdout:
        first = next(line.strip() for line in result.stdout.splitlines() if ": " in line)
        return RpiCheck("camera", CheckStatus.OK, first)
    return RpiCheck("camera", CheckStatus.FAIL, "no camera found",
                    "power off, reseat the camera ribbon cable (contacts toward the board on "
                    "a Pi 4), and keep camera_auto_detect=1 in /boot/firmware/config.txt")


def _microphone(run: Runner) -> RpiCheck:
    result = _try(run, ["arecord", "-l"])
    if result is None:
        return RpiCheck("microphone", CheckStatus.FAIL, "arecord is not installed",
                        "sudo apt install alsa-utils")
    cards = [line for line in result.stdout.splitlines() if line.startswith("card ")]
    if cards:
        return RpiCheck("microphone", CheckStatus.OK, cards[0])
    return RpiCheck("microphone", CheckStatus.FAIL, "no capture device",
                    "plug in a USB microphone or enable an I2S one with a dtoverlay in "
                    "/boot/firmware/config.txt; then `arecord -l` must list it (or set "
                    "audio = \"none\")")


def _gpio(settings: BoardSettings) -> RpiCheck:
    from gpiozero import DigitalInputDevice, DigitalOutputDevice
    from gpiozero.exc import GPIOZeroError

    inputs = [settings.button_pin, *settings.aux_pins]
    if settings.dock_pin is not None:
        inputs.append(settings.dock_pin)
    outputs = [settings.red_led_pin, settings.green_led_pin, settings.buzzer_pin]
    try:
        for pin in inputs:
            DigitalInputDevice(pin).close()
        for pin in outputs:
            DigitalOutputDevice(pin).close()
    except (GPIOZeroError, OSError, RuntimeError) as exc:
        return RpiCheck("GPIO pins", CheckStatus.FAIL, f"{type(exc).__name__}: {exc}",
                        "sudo apt install python3-lgpio; add the service user to the gpio "
                        "group; stop any other program using these pins")
    return RpiCheck("GPIO pins", CheckStatus.OK,
                    f"inputs {inputs}, outputs {outputs} (BCM) can be claimed")


def _clock(run: Runner) -> RpiCheck:
    result = _try(run, ["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if result is not None and result.stdout.strip() == "yes":
        return RpiCheck("clock sync", CheckStatus.OK, "NTP synchronised")
    return RpiCheck("clock sync", CheckStatus.FAIL, "the clock is not synchronised",
                    "connect to a network and `sudo timedatectl set-ntp true`; a Pi has no "
                    "battery-backed clock except a Pi 5 with a battery on its RTC connector")


def _storage(path: Path) -> RpiCheck:
    try:
        free = shutil.disk_usage(path).free
    except OSError as exc:
        return RpiCheck("free storage", CheckStatus.FAIL, f"{path}: {exc}",
                        "create the recordings directory or fix its path in the settings")
    detail = f"{free / 1024**3:.1f} GiB free at {path}"
    if free < MIN_FREE_BYTES:
        return RpiCheck("free storage", CheckStatus.FAIL, detail,
                        "dock the camera to upload and free space, or use a larger SD card")
    return RpiCheck("free storage", CheckStatus.OK, detail)
