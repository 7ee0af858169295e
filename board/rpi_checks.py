"""Raspberry Pi checks for `bwv doctor`: camera, microphone, GPIO pins, clock, RTC, free storage.

`rpi_checks` returns one `RpiCheck` per item, each with a remedy the wearer's technician can act
on. On a machine that is not a Raspberry Pi it returns a single SKIPPED item saying so, so that a
development machine never fails them. Every file is read under ``root`` (``/``; a fake tree in
the tests) and every probe that talks to hardware (cameras, PortAudio, the pin factory, the
kernel clock) can be handed in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import fcntl
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .settings import BoardSettings

MODEL_PATH = Path("/proc/device-tree/model")
MIN_FREE_BYTES = 2 * 1024**3  # about 30 minutes of 1080p30 at 10 Mbit/s with headroom
TIME_ERROR = 5  # adjtimex's return value when the kernel clock is not synchronised
STA_UNSYNC = 0x0040  # adjtimex status bit: the clock is not synchronised
GPIO_GET_CHIPINFO_IOCTL = 0x8044B401  # _IOR(0xB4, 0x01, struct gpiochip_info), linux/gpio.h

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
Probe = Callable[[], Sequence[str]]


class CheckStatus(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class RpiCheck:
    label: str
    status: CheckStatus
    detail: str
    remedy: str = ""


@dataclass(frozen=True)
class KernelClock:
    """What adjtimex(2) says of the kernel clock."""

    synchronised: bool
    max_error_us: int


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=15, check=False)


def pi_model(model_path: Path = MODEL_PATH) -> str | None:
    """The Pi's model string ("Raspberry Pi 5 Model B Rev 1.0"), or None if this is not a Pi."""
    try:
        model = model_path.read_bytes().rstrip(b"\0").decode("ascii", "replace").strip()
    except OSError:
        return None
    return model if model.startswith("Raspberry Pi") else None


def picamera2_cameras() -> list[str]:
    """The cameras libcamera lists, through picamera2 (ImportError if it is not installed)."""
    from picamera2 import Picamera2

    return [f"{info.get('Model', '?')} ({info.get('Id', '')})".replace(" ()", "")
            for info in Picamera2.global_camera_info()]


class _Timex(ctypes.Structure):
    # struct timex up to its status field; the rest is room for what the kernel writes
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("rest", ctypes.c_byte * 256)]


def kernel_clock() -> KernelClock | None:
    """adjtimex(2) with no change asked (modes 0): whether the kernel clock is synchronised (by
    NTP, chrony or timesyncd), or None where the call is not to be had."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return KernelClock(synchronised=state != TIME_ERROR and not timex.status & STA_UNSYNC,
                       max_error_us=int(timex.maxerror))


def rpi_checks(settings: BoardSettings | None = None, storage_path: Path = Path("."), *,
               root: Path = Path("/"), model_path: Path | None = None, run: Runner = _run,
               pin_factory: object | None = None, cameras: Probe = picamera2_cameras,
               microphones: Probe | None = None,
               clock: Callable[[], KernelClock | None] = kernel_clock) -> list[RpiCheck]:
    """Every Pi check, in the order `bwv doctor` prints them. ``microphones`` lists PortAudio's
    input devices (the recorder's capture layer has the probe; None skips the check);
    ``pin_factory`` is gpiozero's (None: its default)."""
    settings = settings or BoardSettings()
    model = pi_model(model_path or root / "proc" / "device-tree" / "model")
    if model is None:
        return [RpiCheck("Raspberry Pi", CheckStatus.SKIPPED,
                         "not a Raspberry Pi: camera, microphone, GPIO and clock checks skipped")]
    return [RpiCheck("Raspberry Pi", CheckStatus.OK, model),
            _camera(cameras), _microphone(microphones), _gpio(settings, root, pin_factory),
            _clock(run, clock), _rtc(root), _storage(storage_path)]


def _camera(cameras: Probe) -> RpiCheck:
    try:
        found = list(cameras())
    except ImportError as exc:
        return RpiCheck("camera", CheckStatus.FAIL,
                        f"picamera2 (with libcamera's Python bindings) is not importable: {exc}",
                        "sudo apt install python3-picamera2, and make the venv with "
                        "--system-site-packages (docs/raspberry-pi.md)")
    except Exception as exc:  # libcamera's own errors: a diagnostic reports, never raises
        return RpiCheck("camera", CheckStatus.FAIL, f"libcamera: {type(exc).__name__}: {exc}",
                        "stop any other program using the camera (rpicam-*, another bwv), "
                        "then reboot")
    if found:
        return RpiCheck("camera", CheckStatus.OK, "; ".join(found))
    return RpiCheck("camera", CheckStatus.FAIL, "libcamera lists no camera",
                    "power off, reseat the camera ribbon cable (contacts toward the board on "
                    "a Pi 4), and keep camera_auto_detect=1 in /boot/firmware/config.txt")


def _microphone(microphones: Probe | None) -> RpiCheck:
    if microphones is None:
        return RpiCheck("microphone", CheckStatus.SKIPPED, "no PortAudio probe given")
    try:
        found = list(microphones())
    except Exception as exc:  # PyAudio missing (NoMicrophoneError) or PortAudio failing
        return RpiCheck("microphone", CheckStatus.FAIL, f"PortAudio: {exc}",
                        "sudo apt install python3-pyaudio and make the venv with "
                        "--system-site-packages, or pip install 'bwv-recorder[mic]' (or set "
                        "audio.source = \"none\")")
    if found:
        return RpiCheck("microphone", CheckStatus.OK, "; ".join(found))
    return RpiCheck("microphone", CheckStatus.FAIL, "PortAudio sees no input device",
                    "plug in a USB microphone or enable an I2S one with a dtoverlay in "
                    "/boot/firmware/config.txt; `arecord -l` must then list it (or set "
                    "audio.source = \"none\")")


def _gpio_chips(root: Path) -> list[str]:
    """The GPIO character devices, each with the label its driver gives (the header's is
    "pinctrl-bcm2711" on a Pi 4, "pinctrl-rp1" on a Pi 5) where the kernel answers."""
    chips = []
    for device in sorted((root / "dev").glob("gpiochip*")):
        label = ""
        try:
            with open(device, "rb") as chip:
                info = bytearray(68)  # struct gpiochip_info: name[32], label[32], lines
                fcntl.ioctl(chip.fileno(), GPIO_GET_CHIPINFO_IOCTL, info)
            label = info[32:64].split(b"\0")[0].decode("ascii", "replace")
        except OSError:  # not a character device (a test tree), or no permission
            pass
        chips.append(f"{device.name} ({label})" if label else device.name)
    return chips


def _gpio(settings: BoardSettings, root: Path, pin_factory: object | None) -> RpiCheck:
    chips = _gpio_chips(root)
    if not chips:
        return RpiCheck("GPIO pins", CheckStatus.FAIL, f"no GPIO chip in {root / 'dev'}",
                        "boot Raspberry Pi OS Bookworm's kernel, which gives /dev/gpiochip*")
    from gpiozero import DigitalInputDevice, DigitalOutputDevice
    from gpiozero.exc import GPIOZeroError

    inputs = [settings.button_pin, *settings.aux_pins]
    if settings.dock_pin is not None:
        inputs.append(settings.dock_pin)
    outputs = [settings.red_led_pin, settings.green_led_pin, settings.buzzer_pin]
    try:
        for pin in inputs:
            DigitalInputDevice(pin, pin_factory=pin_factory).close()
        for pin in outputs:
            DigitalOutputDevice(pin, pin_factory=pin_factory).close()
    except (GPIOZeroError, OSError, RuntimeError) as exc:
        return RpiCheck("GPIO pins", CheckStatus.FAIL,
                        f"GPIO{pin}: {type(exc).__name__}: {exc}",
                        "sudo apt install python3-lgpio; add the service user to the gpio "
                        "group; stop any other program using these pins")
    return RpiCheck("GPIO pins", CheckStatus.OK,
                    f"inputs {inputs}, outputs {outputs} (BCM) free on {', '.join(chips)}")


def _clock(run: Runner, clock: Callable[[], KernelClock | None]) -> RpiCheck:
    said = []
    result = _try(run, ["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    answer = result.stdout.strip() if result is not None and result.returncode == 0 else ""
    if answer in ("yes", "no"):
        said.append(f"timedatectl: NTPSynchronized={answer}")
    kernel = clock()
    if kernel is not None:
        said.append("kernel clock " + ("synchronised" if kernel.synchronised else "unsynchronised")
                    + f" (max error {kernel.max_error_us / 1000:g} ms)")
    detail = "; ".join(said) or "neither timedatectl nor adjtimex answered"
    if answer == "yes" or (kernel is not None and kernel.synchronised):
        return RpiCheck("clock sync", CheckStatus.OK, detail)
    return RpiCheck("clock sync", CheckStatus.FAIL, detail,
                    "connect to a network and `sudo timedatectl set-ntp true`; recordings "
                    "made before the clock syncs carry a wrong UTC time")


def _rtc(root: Path) -> RpiCheck:
    rtcs = []
    for device in sorted((root / "sys" / "class" / "rtc").glob("rtc*")):
        try:
            name = (device / "name").read_text().strip()
        except (OSError, UnicodeDecodeError):
            name = ""
        rtcs.append(f"{device.name} ({name})" if name else device.name)
    if rtcs:
        return RpiCheck("RTC", CheckStatus.OK, ", ".join(rtcs))
    return RpiCheck("RTC", CheckStatus.WARN, "no real-time clock: the time is lost at power-off",
                    "until NTP syncs after boot the camera's time is wrong: fit a battery to a "
                    "Pi 5's RTC connector, or an RTC module (dtoverlay=i2c-rtc,...) on others")


def _try(run: Runner, command: Sequence[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return run(command)
    except (OSError, subprocess.SubprocessError):
        return None


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
