"""`bwv doctor`: what is installed and active on this machine, and why; this camera's identity
(device id and key) and the command that enrolls it at the evidence station."""

from __future__ import annotations

import platform
import shlex
import sys
import warnings
from dataclasses import dataclass

from .. import __version__
from .._native import ENV_VAR, PIECES, NativeFallbackWarning, load, policy_from_environ
from ..settings import Settings


@dataclass(frozen=True)
class DoctorLine:
    label: str
    value: str


def report(settings: Settings | None = None) -> list[DoctorLine]:
    """The facts `bwv doctor` prints, in order; ``settings`` (default: all defaults) give the
    device id and the data directory."""
    settings = settings if settings is not None else Settings.load(None)
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
        detail = f"{choice.implementation}: {choice.reason}"
        acceleration = getattr(choice.module, "ACCELERATION", None)
        if acceleration is not None:  # the SHA-256 hasher: which block function it runs
            detail += f"; hashing with {acceleration}"
        lines.append(DoctorLine(f"{name} ({piece.summary})", detail))
    lines.append(_machine_line())
    lines.append(_device_id_line(settings))
    lines.extend(_device_key_lines(settings))
    lines.append(_station_line(settings))
    lines.extend(_raspberry_pi_lines(settings))
    return lines


def _device_id_line(settings: Settings) -> DoctorLine:
    from ..integrity.request_signing import is_safe_name

    where = ("device.device_id" if settings["device.device_id"]
             else "the host name; set device.device_id to choose another")
    value = f"{settings.device_id} ({where})"
    if not is_safe_name(settings.device_id):
        value += (" -> the station refuses this id: use letters, digits, '.', '_' and '-' "
                  "(at most 128)")
    return DoctorLine("device id", value)


def enroll_command(device_id: str, public_key_b64: str) -> str:
    """The command, run at the station, that lets this camera upload."""
    return (f"bwv station enroll --device-id {shlex.quote(device_id)} "
            f"--public-key {shlex.quote(public_key_b64)}")


def _raspberry_pi_lines(settings: Settings) -> list[DoctorLine]:
    """Camera, microphone, GPIO, clock, RTC and storage checks on a Pi; one 'skipped' line
    elsewhere. The pins checked are those of the settings' [board] table."""
    from ..board import BoardSettings, BoardSettingsError, rpi_checks

    try:
        board = BoardSettings.from_mapping(settings.board)
    except BoardSettingsError as exc:
        return [DoctorLine("GPIO pins", f"FAIL: [board] settings: {exc}")]
    storage = settings.data_dir
    while not storage.exists():  # free space is that of the nearest existing directory
        storage = storage.parent
    lines = []
    for check in rpi_checks(board, storage_path=storage, microphones=_portaudio_inputs):
        value = f"{check.status.value}: {check.detail}"
        if check.remedy:
            value += f" -> {check.remedy}"
        lines.append(DoctorLine(check.label, value))
    return lines


def _portaudio_inputs() -> list[str]:
    from ..capture.audio.pyaudio_source import list_input_devices

    return [str(device) for device in list_input_devices()]


def _machine_line() -> DoctorLine:
    """The CPU facts a figure depends on (`bwv bench` prints them all)."""
    from .machine import describe

    m = describe(native=False)
    rows = dict(m.rows())
    value = (f"{rows['cpu']}; SHA-256 instructions {rows['SHA-256 instructions']}, AES "
             f"{rows['AES instructions']}; cpufreq governor {rows['cpufreq governor']}")
    if m.emulation:
        value += f"; {m.emulation}"
    return DoctorLine("machine", value)


def _device_key_lines(settings: Settings) -> list[DoctorLine]:
    # Doctor only looks: the key is created by the first recording, so that running a
    # diagnostic never changes the camera's identity or leaves a key in a mistyped directory.
    from ..integrity import keys  # imported here: the rest of doctor needs no cryptography

    data_dir = settings.data_dir
    try:
        key = keys.DeviceKey.find(data_dir)
    except (keys.DeviceKeyError, OSError) as exc:
        return [DoctorLine("device key", f"ERROR: {exc}")]
    if key is None:
        return [DoctorLine("device key", f"no device key yet (created on first recording) in "
                                         f"{data_dir} (set storage.data_dir or "
                                         f"{keys.DATA_DIR_ENV_VAR} to change)")]
    public_key = keys.public_key_spki_b64(key.public_key)
    return [DoctorLine("device key", str(key.path)),
            DoctorLine("device public key", public_key),
            DoctorLine("device key fingerprint", f"sha256 {key.fingerprint}"),
            DoctorLine("enroll at the station", enroll_command(settings.device_id, public_key))]


def _station_line(settings: Settings) -> DoctorLine:
    """Where docked uploads go and which station the camera trusts to delete on its word."""
    from ..integrity.keys import PublicKeyFormatError
    from ..integrity.station_pin import parse_pin

    url = str(settings["station.url"]) or "no station.url: docking uploads nothing"
    pin_text = str(settings["station.public_key"])
    if not pin_text:
        trust = ("no station key pinned: uploads delete nothing here -> set station.public_key "
                 "to the line `bwv station key --data DIR` prints on the station")
    else:
        try:
            pin = parse_pin(pin_text)
        except PublicKeyFormatError as exc:
            trust = f"ERROR: station.public_key: {exc}"
        else:
            trust = (f"pinned {pin.station_id} (key sha256 {pin.fingerprint}): compare with "
                     "what the station prints; " + (
                         f"recordings encrypted for it ({pin.encryption_key.kem.value})"
                         if pin.encryption_key is not None else
                         "recordings in the clear: the pin has no encryption key (a station "
                         "from before encryption); take the line again from `bwv station key`"))
    return DoctorLine("evidence station", f"{url}; {trust}")


def render(lines: list[DoctorLine]) -> str:
    width = max(len(line.label) for line in lines)
    return "\n".join(f"{line.label:<{width}}  {line.value}" for line in lines)
