"""PyAudio for real, with no sound card: ALSA's ``file`` plugin plays a known PCM file into a
capture device, PortAudio lists and opens it, and the AAC we record decodes back to that signal.

Each test writes, in its own temporary directory, the raw PCM file and an ALSA configuration that
includes the system's ``alsa.conf`` and adds:

- ``pcm.bwv_test_mic``: ``type file`` over the ``null`` plugin, ``infile`` the known PCM
  (s16le, mono, 48 kHz; the file plugin reads it raw in whatever format the stream was opened
  with), ``file "/dev/null"`` (the plugin insists on an output file) and a ``hint`` so that ALSA's
  device hints, which PortAudio enumerates, include it;
- ``pcm.!default``: a ``plug`` onto it, so PortAudio has a default input device.

The capture runs in a subprocess whose environment alone has ``ALSA_CONFIG_PATH`` pointing at that
file, so the test process's own PortAudio (if any) never sees it. The ``null`` plugin is never
"busy" and returns data as fast as it is read, so this device is not paced in real time: the
capture runs with ``tolerance_us=None`` (pts counted from the samples alone) and a queue larger
than the capture (one test keeps the tolerance to see the clock catch the too-fast device), and
the busy and unsupported-rate paths are tested against a fake in test_audio.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recorder import AUDIO, AccessUnit

from support.audio import RATE, best_alignment, chirp, decode, to_s16

pytest.importorskip("pyaudio", reason="PyAudio is not installed (pip install pyaudio)")
pytestmark = pytest.mark.skipif(not Path("/usr/share/alsa/alsa.conf").exists(),
                                reason="ALSA's alsa.conf is missing (Debian package libasound2)")

DEVICE = "bwv_test_mic"
SECONDS = 2

CAPTURE = """
import dataclasses, json, sys
from recorder.capture.audio import AudioFormat, AudioError
from recorder.capture.audio.pyaudio_source import PyAudioMicrophone, list_input_devices

request = json.loads(sys.argv[1])
result = {"devices": [[d.index, d.name] for d in list_input_devices()]}
units = []
source = PyAudioMicrophone(AudioFormat(48000, 1, 128000), request["device"],
                           tolerance_us=request["tolerance_us"], buffer_seconds=10,
                           blocks=request["blocks"])
try:
    source.start(units.append)
    source.finished.wait(30)
    source.close()
    result["units"] = [[u.stream, u.pts_us, u.is_keyframe, u.payload.hex()] for u in units]
    result["asc"] = source.audio_specific_config.hex()
    result["chosen"] = source.device.name
    result["stats"] = dataclasses.astuple(source.stats)
    result["error"] = repr(source.error) if source.error else None
except AudioError as exc:
    result["raised"] = [type(exc).__name__, str(exc)]
print(json.dumps(result))
"""


@pytest.fixture
def alsa_config(tmp_path: Path) -> Path:
    """An ALSA configuration with a capture device that plays a known 2 s chirp."""
    (tmp_path / "known.raw").write_bytes(to_s16(chirp(SECONDS * RATE)))
    config = tmp_path / "asound.conf"
    config.write_text(f"""\
</usr/share/alsa/alsa.conf>
pcm.{DEVICE} {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{tmp_path / 'known.raw'}"
    format "raw"
    hint {{ show on description "bwv-recorder test microphone (a known PCM file)" }}
}}
pcm.!default {{
    type plug
    slave.pcm "{DEVICE}"
}}
""")
    return config


def run_capture(config: Path, device: str | None, blocks: int = 90,
                tolerance_us: int | None = None) -> dict[str, Any]:
    env = dict(os.environ, ALSA_CONFIG_PATH=str(config))
    env.pop("JACK_DEFAULT_SERVER", None)
    done = subprocess.run(
        [sys.executable, "-c", CAPTURE, json.dumps({"device": device, "blocks": blocks, "tolerance_us": tolerance_us})],
        env=env, capture_output=True, text=True, timeout=60, check=False,
        cwd=config.parent)  # not the source tree: import the installed package
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def units_of(result: dict[str, Any]) -> list[AccessUnit]:
    return [AccessUnit(stream, pts, key, bytes.fromhex(payload))
            for stream, pts, key, payload in result["units"]]


def test_portaudio_lists_the_alsa_file_device_and_a_default(alsa_config: Path) -> None:
    names = [name for _, name in run_capture(alsa_config, "no such microphone")["devices"]]
    assert DEVICE in names and "default" in names


def test_pyaudio_capture_of_the_known_signal_decodes_back_to_it(alsa_config: Path) -> None:
    result = run_capture(alsa_config, DEVICE)
    assert result["error"] is None and result["chosen"] == DEVICE
    blocks, units_sent, overflows, lost, resyncs = result["stats"]
    assert (blocks, overflows, lost, resyncs) == (90, 0, 0, 0)
    units = units_of(result)
    assert units_sent == len(units) == 91 and all(u.stream == AUDIO for u in units)
    pts = [u.pts_us for u in units]
    assert pts[1:] == [pts[1] + n * 1024 * 1_000_000 // RATE for n in range(90)]
    assert pts[0] < pts[1]  # the priming frame
    # decoded from the first captured sample on (the priming frame is 1024 samples)
    decoded = decode(units, bytes.fromhex(result["asc"]))[0][1024:]
    known = chirp(SECONDS * RATE)[:len(decoded)]
    lag, correlation = best_alignment(decoded, known, 2048)
    print(f"pyaudio capture: correlation {correlation:.4f} at lag {lag}")
    assert correlation > 0.9, f"correlation {correlation:.3f} at lag {lag}"
    assert lag == 0  # nothing lost or inserted before the first block


def test_pyaudio_default_device_and_device_by_index_capture_the_same_signal(
        alsa_config: Path) -> None:
    by_default = run_capture(alsa_config, None, blocks=20)
    assert by_default["chosen"] == "default"
    index = next(i for i, name in by_default["devices"] if name == DEVICE)
    by_index = run_capture(alsa_config, str(index), blocks=20)
    assert by_index["chosen"] == DEVICE
    known = chirp(SECONDS * RATE)
    for result in (by_default, by_index):
        decoded = decode(units_of(result), bytes.fromhex(result["asc"]))[0][1024:1024 + 19 * 1024]
        assert best_alignment(decoded, known[:len(decoded)], 256)[1] > 0.9


def test_pyaudio_missing_device_error_lists_what_exists(alsa_config: Path) -> None:
    raised = run_capture(alsa_config, "usb headset")["raised"]
    assert raised[0] == "MicrophoneNotFoundError"
    assert "'usb headset'" in raised[1] and DEVICE in raised[1]
    raised = run_capture(alsa_config, "99")["raised"]
    assert raised[0] == "MicrophoneNotFoundError" and "index 99" in raised[1]


def test_alsa_utils_reads_the_same_device(alsa_config: Path, tmp_path: Path) -> None:
    """An outside oracle: arecord captures the same bytes PortAudio was given."""
    if shutil.which("arecord") is None:
        pytest.skip("arecord is not installed (Debian package alsa-utils)")
    out = tmp_path / "arecord.raw"
    env = dict(os.environ, ALSA_CONFIG_PATH=str(alsa_config))
    subprocess.run(["arecord", "-q", "-D", DEVICE, "-f", "S16_LE", "-c", "1", "-r", str(RATE),
                    "-t", "raw", "-s", str(RATE), str(out)], env=env, check=True, timeout=30)
    got = np.frombuffer(out.read_bytes(), dtype="<i2")
    assert np.array_equal(got, np.frombuffer(to_s16(chirp(SECONDS * RATE)), dtype="<i2")[:RATE])


def test_a_device_faster_than_real_time_is_caught_by_the_clock(alsa_config: Path) -> None:
    """The unpaced test device delivers 2 s of audio in milliseconds: with a tolerance the sample
    count runs ahead of the monotonic clock, so the clock re-anchors (counted) and pts stay
    increasing and near the time the blocks really arrived."""
    result = run_capture(alsa_config, DEVICE, blocks=40, tolerance_us=20_000)
    blocks, _, overflows, _, resyncs = result["stats"]
    assert (blocks, overflows) == (40, 0) and resyncs > 0
    pts = [unit[1] for unit in result["units"]]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    assert pts[-1] - pts[1] < 39 * 21_333  # not spaced by the count alone
