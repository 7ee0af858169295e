"""The Pi field kit: the machine's description on fake /proc and /sys trees, `bwv doctor`'s Pi
checks on fake trees with gpiozero's MockFactory, and the real `bwv bench --quick` and `bwv doctor`
as the field team runs them."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockFactory

from recorder import _native
from recorder.board import BoardSettings, CheckStatus, RpiCheck, rpi_checks
from recorder.board.rpi_checks import KernelClock
from recorder.device.bench import QUICK, Profile, bench_sha256
from recorder.device.machine import describe

BWV = [sys.executable, "-m", "recorder"]  # run from "/": the installed package, not ./recorder

PI4_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

processor\t: 1
Features\t: fp asimd evtstrm crc32 cpuid
CPU part\t: 0xd08

Revision\t: c03115
Model\t\t: Raspberry Pi 4 Model B Rev 1.5
"""
PI5_FEATURES = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid"
X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz
flags\t\t: fpu vme sse2 aes avx2 sha_ni
"""


def tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """A fake root: each path (relative, e.g. proc/cpuinfo) with its content."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def test_a_pi_4_has_neither_sha_nor_aes_instructions(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "proc/cpuinfo": PI4_CPUINFO,
        "proc/device-tree/model": b"Raspberry Pi 4 Model B Rev 1.5\0",
        "sys/devices/system/cpu/online": "0-3\n",
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "ondemand\n",
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq": "1800000\n",
    })
    m = describe(root, machine="aarch64", native=False)
    assert m.board == "Raspberry Pi 4 Model B Rev 1.5"
    assert m.cpu == "Cortex-A72 (ARM part 0xd08)"
    assert m.cores == 4  # from sys's online list, not the two processors cpuinfo shows
    assert (m.sha_instructions, m.aes_instructions) == (False, False)
    assert (m.governor, m.max_mhz) == ("ondemand", 1800)
    assert m.emulation is None
    rows = dict(m.rows())
    assert rows["cpufreq governor"] == "ondemand (max 1800 MHz)"
    assert rows["SHA-256 instructions"] == "no"


def test_a_pi_5_has_both(tmp_path: Path) -> None:
    cpuinfo = PI4_CPUINFO.replace("0xd08", "0xd0b").replace(
        "fp asimd evtstrm crc32 cpuid", PI5_FEATURES)
    m = describe(tree(tmp_path, {"proc/cpuinfo": cpuinfo}), machine="aarch64", native=False)
    assert m.cpu == "Cortex-A76 (ARM part 0xd0b)"
    assert (m.sha_instructions, m.aes_instructions) == (True, True)
    assert m.cores == 2  # no sys tree: the processors cpuinfo lists
    assert m.board == "Raspberry Pi 4 Model B Rev 1.5"  # cpuinfo's Model without a device tree


def test_x86_flags_and_a_virtual_machine(tmp_path: Path) -> None:
    root = tree(tmp_path, {"proc/cpuinfo": X86_CPUINFO.replace("sha_ni", "hypervisor"),
                           "sys/class/dmi/id/sys_vendor": "QEMU\n"})
    m = describe(root, machine="x86_64", native=False)
    assert m.cpu == "Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz"
    assert (m.sha_instructions, m.aes_instructions) == (False, True)
    assert m.emulation == "virtual machine: QEMU"


def test_qemu_user_shows_as_an_arm_process_on_an_x86_cpuinfo(tmp_path: Path) -> None:
    m = describe(tree(tmp_path, {"proc/cpuinfo": X86_CPUINFO}), machine="aarch64", native=False)
    assert m.emulation is not None and m.emulation.startswith("qemu-user")


def test_missing_and_garbled_files_are_unknown_never_a_traceback(tmp_path: Path) -> None:
    empty = describe(tmp_path, machine="riscv64", native=False)
    assert (empty.board, empty.cpu, empty.cores, empty.sha_instructions, empty.governor,
            empty.emulation) == (None, None, None, None, None, None)
    assert dict(empty.rows())["board"] == "unknown"
    (tmp_path / "proc" / "cpuinfo").mkdir(parents=True)  # a directory where a file should be
    garbled = tree(tmp_path / "g", {
        "proc/cpuinfo": b"\xff\xfe CPU part : zz\nprocessor : 0\n",
        "sys/devices/system/cpu/online": "nonsense",
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq": "fast",
    })
    for root in (tmp_path, garbled):
        m = describe(root, machine="aarch64", native=False)
        assert m.max_mhz is None
    assert describe(garbled, machine="aarch64", native=False).cores == 1


def test_describe_names_the_native_pieces_and_the_sha_path() -> None:
    m = describe()
    assert set(m.native) == set(_native.PIECES)
    sha256 = _native.load("sha256")
    assert m.sha256_path == sha256.module.ACCELERATION
    assert m.native["sha256"].startswith(sha256.implementation)


# -- bwv doctor's Pi checks ----------------------------------------------------------------------

@pytest.fixture
def factory() -> Iterator[MockFactory]:
    mock = MockFactory()
    yield mock
    mock.reset()


def pi_root(tmp_path: Path, rtc: bool = True, gpiochip: bool = True) -> Path:
    files: dict[str, str | bytes] = {"proc/device-tree/model": b"Raspberry Pi 5 Model B Rev 1.0\0"}
    if gpiochip:
        files["dev/gpiochip0"] = b""  # present; a plain file, so no label is read
    if rtc:
        files["sys/class/rtc/rtc0/name"] = "rpi-rtc soc:rpi_rtc\n"
    return tree(tmp_path, files)


def never_runs(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    raise FileNotFoundError(command[0])


def checks(root: Path, factory: MockFactory, **probes: object) -> dict[str, RpiCheck]:
    arguments: dict[str, object] = {
        "cameras": lambda: ["imx708 (/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a)"],
        "microphones": lambda: ["1: USB PnP Sound Device (1 ch, 48000 Hz)"],
        "clock": lambda: KernelClock(synchronised=True, max_error_us=1500),
        "run": never_runs, **probes}
    found = rpi_checks(BoardSettings(), storage_path=root, root=root, pin_factory=factory,
                       **arguments)  # type: ignore[arg-type]
    return {check.label: check for check in found}


def test_a_healthy_pi_passes_every_check(tmp_path: Path, factory: MockFactory) -> None:
    found = checks(pi_root(tmp_path), factory)
    assert list(found) == ["Raspberry Pi", "camera", "microphone", "GPIO pins", "clock sync",
                           "RTC", "free storage"]
    statuses = {label: check.status for label, check in found.items()}
    assert statuses["free storage"] in (CheckStatus.OK, CheckStatus.FAIL)  # this machine's disk
    del statuses["free storage"]
    assert set(statuses.values()) == {CheckStatus.OK}, found
    assert "imx708" in found["camera"].detail
    assert "gpiochip0" in found["GPIO pins"].detail and "17" in found["GPIO pins"].detail
    assert "synchronised" in found["clock sync"].detail
    assert found["RTC"].detail == "rtc0 (rpi-rtc soc:rpi_rtc)"


def test_a_pin_in_use_is_named_with_what_to_do(tmp_path: Path, factory: MockFactory) -> None:
    holder = DigitalInputDevice(23, pin_factory=factory)  # the buzzer's pin, taken by another
    try:
        gpio = checks(pi_root(tmp_path), factory)["GPIO pins"]
    finally:
        holder.close()
    assert gpio.status is CheckStatus.FAIL
    assert gpio.detail.startswith("GPIO23: GPIOPinInUse")
    assert "stop any other program" in gpio.remedy
    assert checks(pi_root(tmp_path / "again"), factory)["GPIO pins"].status is CheckStatus.OK


def test_configured_pins_are_the_ones_checked(tmp_path: Path, factory: MockFactory) -> None:
    holder = DigitalInputDevice(5, pin_factory=factory)
    try:
        found = rpi_checks(BoardSettings(aux_pins=(5,)), storage_path=tmp_path,
                           root=pi_root(tmp_path), pin_factory=factory, run=never_runs,
                           cameras=lambda: [], microphones=lambda: [], clock=lambda: None)
    finally:
        holder.close()
    gpio = next(check for check in found if check.label == "GPIO pins")
    assert gpio.status is CheckStatus.FAIL and gpio.detail.startswith("GPIO5:")


def test_each_failure_says_what_to_fix(tmp_path: Path, factory: MockFactory) -> None:
    def no_picamera2() -> list[str]:
        raise ImportError("No module named 'picamera2'")

    def no_pyaudio() -> list[str]:
        raise RuntimeError("PyAudio is not installed")

    def unsynced(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(list(command), 0, "no\n", "")

    found = checks(pi_root(tmp_path, rtc=False, gpiochip=False), factory, cameras=no_picamera2,
                   microphones=no_pyaudio, run=unsynced,
                   clock=lambda: KernelClock(synchronised=False, max_error_us=16_000_000))
    assert found["camera"].status is CheckStatus.FAIL
    assert "python3-picamera2" in found["camera"].remedy
    assert found["microphone"].status is CheckStatus.FAIL
    assert "python3-pyaudio" in found["microphone"].remedy
    assert found["GPIO pins"].status is CheckStatus.FAIL
    assert "no GPIO chip" in found["GPIO pins"].detail
    assert found["clock sync"].status is CheckStatus.FAIL
    assert found["clock sync"].detail == ("timedatectl: NTPSynchronized=no; kernel clock "
                                          "unsynchronised (max error 16000 ms)")
    assert "set-ntp" in found["clock sync"].remedy
    assert found["RTC"].status is CheckStatus.WARN and "battery" in found["RTC"].remedy


def test_no_camera_and_no_microphone_listed(tmp_path: Path, factory: MockFactory) -> None:
    found = checks(pi_root(tmp_path), factory, cameras=lambda: [], microphones=lambda: [])
    assert found["camera"].status is CheckStatus.FAIL and "ribbon" in found["camera"].remedy
    assert found["microphone"].status is CheckStatus.FAIL
    assert "no input device" in found["microphone"].detail


def test_the_clock_is_synchronised_by_either_witness(tmp_path: Path,
                                                     factory: MockFactory) -> None:
    def synced(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(list(command), 0, "yes\n", "")

    by_timedatectl = checks(pi_root(tmp_path), factory, run=synced, clock=lambda: None)
    assert by_timedatectl["clock sync"].status is CheckStatus.OK
    neither = checks(pi_root(tmp_path), factory, clock=lambda: None)["clock sync"]
    assert neither.status is CheckStatus.FAIL
    assert neither.detail == "neither timedatectl nor adjtimex answered"


def test_off_a_pi_every_check_is_skipped_in_one_line(tmp_path: Path,
                                                     factory: MockFactory) -> None:
    found = rpi_checks(root=tmp_path, pin_factory=factory, cameras=lambda: 1 / 0)  # type: ignore
    assert [(c.label, c.status) for c in found] == [("Raspberry Pi", CheckStatus.SKIPPED)]
    assert found[0].detail.startswith("not a Raspberry Pi:")


def test_the_kernel_clock_probe_answers_here() -> None:
    from recorder.board.rpi_checks import kernel_clock

    state = kernel_clock()  # adjtimex(2) with modes 0 is allowed to anyone on Linux
    assert state is not None and state.max_error_us >= 0


# -- bwv bench and bwv doctor, as the field team runs them ----------------------------------------

def test_bench_catches_a_twin_that_hashes_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    from recorder.device import bench

    class Wrong:
        def __init__(self) -> None:
            self.n = 0

        def update(self, data: bytes) -> None:
            self.n += len(data)

        def digest(self) -> bytes:
            return self.n.to_bytes(32, "big")

    class Module:
        Sha256 = Wrong

    monkeypatch.setattr(bench, "_twin", lambda piece, kind: Module)
    tiny = Profile("tiny", rounds=1, ring_batch=1, ring_arena=1 << 20, video=(64, 32, 30, 1),
                   sha_total=64 << 10)
    with pytest.raises(bench.BenchMismatchError, match="sha256"):
        bench_sha256(tiny)


def test_bwv_bench_quick_prints_one_table_with_the_machine() -> None:
    result = subprocess.run([*BWV, "bench", "--quick"], cwd="/", capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "| SHA-256 instructions |" in result.stdout and "| native pieces |" in result.stdout
    rows = [line.split(" | ") for line in lines if line.startswith(("| ring", "| mux",
                                                                     "| sha256"))]
    kinds = {(row[0].strip("| "), row[2]) for row in rows}
    assert {("ring", "pure"), ("mux", "pure"), ("sha256", "hashlib")} <= kinds
    # the bench compares the twins whatever RECORDER_NATIVE says (CI's pure run sets it off):
    # a native row wherever the native module is built and importable
    native = importlib.util.find_spec(_native.PIECES["ring"].native_module) is not None
    assert (("ring", "native") in kinds) == native
    for row in rows:  # a real figure in every row: per unit, spread, MB/s
        assert row[3][0].isdigit() and " - " in row[4] and float(row[5].replace(",", "")) > 0
    assert "quick run of" in lines[0] and f"medians of {QUICK.rounds} rounds" in lines[0]


def test_bwv_bench_json_is_for_machines() -> None:
    result = subprocess.run([*BWV, "bench", "--quick", "--json"], cwd="/", capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["profile"] == "quick" and data["machine"]["cores"] >= 1
    assert {r["piece"] for r in data["results"]} == {"ring", "mux", "sha256"}
    for r in data["results"]:
        assert r["min_s"] <= r["median_s"] <= r["max_s"] and r["rounds"] == QUICK.rounds


def test_bwv_doctor_runs_its_pi_checks_or_says_skipped() -> None:
    result = subprocess.run([*BWV, "doctor"], cwd="/", capture_output=True, text=True,
                            timeout=60, env={**os.environ, "BWV_CONFIG": ""})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    [machine] = [line for line in lines if line.startswith("machine ")]
    assert "cores" in machine and "SHA-256 instructions" in machine
    if Path("/proc/device-tree/model").exists() and "Raspberry Pi" in Path(
            "/proc/device-tree/model").read_text(errors="replace"):
        for label in ("camera ", "microphone ", "GPIO pins ", "clock sync ", "RTC "):
            assert any(line.startswith(label) for line in lines), label
    else:
        [pi] = [line for line in lines if line.startswith("Raspberry Pi ")]
        assert "skipped: not a Raspberry Pi" in pi


def test_the_real_camera_probe_says_how_to_install_picamera2(tmp_path: Path,
                                                             factory: MockFactory) -> None:
    if importlib.util.find_spec("picamera2") is not None:
        pytest.skip("picamera2 is installed here: the camera is listed instead (below)")
    from recorder.board.rpi_checks import picamera2_cameras

    camera = checks(pi_root(tmp_path), factory, cameras=picamera2_cameras)["camera"]
    assert camera.status is CheckStatus.FAIL and "picamera2" in camera.detail
    assert "python3-picamera2" in camera.remedy


@pytest.mark.picamera2
def test_the_real_camera_probe_lists_the_camera(tmp_path: Path, factory: MockFactory) -> None:
    from recorder.board.rpi_checks import picamera2_cameras

    camera = checks(pi_root(tmp_path), factory, cameras=picamera2_cameras)["camera"]
    assert camera.status is CheckStatus.OK, camera
    assert camera.detail
