"""An encrypted recording end to end, as a user makes it: `bwv record --station-key` with the line
`bwv station key` prints, real encoders (synthetic camera and tone), real subprocesses.

Oracles: `bwv verify` and sha256sum pass without any key; ffprobe sees ``encv``/``enca``; the
station's key file unwraps the content key from the signed header, and with it ffmpeg decrypts
every segment, whose decoded frames carry consecutive burned-in frame numbers and decode without
an error; without the key the pictures do not decode, and the content key is nowhere on the card.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import av
import pytest

from recorder.capture.camera.test_pattern import read_frame_number
from recorder.integrity import manifest
from recorder.integrity.content_key import ContentKey, unwrap
from recorder.integrity.keys import DeviceKey
from recorder.station import encryption_key
from recorder.storage.mux import IMPLEMENTATION as MUX_IMPLEMENTATION
from recorder.station.identity import StationIdentity
from recorder.uploader import Uploader
from support import warm
from support.station import make_store, serve


def environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "JOURNAL_STREAM"}
    return {**env, **extra}


def bwv(args: list[str], data: Path) -> subprocess.CompletedProcess[str]:
    return warm.run(args, env=environment(BWV_DATA_DIR=str(data)), cwd="/", timeout=300)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(recording, station data directory, `bwv record`'s stderr) of 4 s recorded for a
    station whose pin is given to `bwv record --station-key` in a file."""
    tmp = tmp_path_factory.mktemp("encrypted")
    station = tmp / "station"
    StationIdentity.load_or_create(station)
    pin_file = tmp / "station.pin"
    pin_file.write_text(StationIdentity.load_or_create(station).pin_line() + "\n")
    done = bwv(["--log-level", "info", "record", "--fast", "--audio", "synthetic", "--size",
                "320x240", "--pre-event", "1", "--duration", "4", "--segment", "2",
                "--station-key", str(pin_file), "--out", str(tmp / "out")], tmp / "data")
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip()), station, done.stderr


def segments(recording: Path) -> list[Path]:
    return sorted(recording.glob("*.mp4"))


def content_key_of(recording: Path, station: Path) -> ContentKey:
    """What the station does: read the signed header, unwrap with its key file."""
    check = manifest.check_manifest((recording / manifest.MANIFEST_NAME).read_bytes())
    assert check.ok, check.problems
    header = check.read.header
    assert header is not None and header.encryption is not None
    private = encryption_key.load(station / encryption_key.ENCRYPTION_KEY_FILE)
    return unwrap(header.encryption, header.recording_id, private)


def decrypted_frame_numbers(segment: Path, key: ContentKey, out: Path) -> list[int | None]:
    result = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-decryption_key",
                             key.key.hex(), "-seekable", "0", "-i", str(segment), "-c", "copy",
                             str(out)], capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "")
    with av.open(str(out)) as container:
        return [read_frame_number(frame) for frame in container.decode(video=0)]


def test_the_recording_says_it_is_encrypted_and_by_which_muxer(
        made: tuple[Path, Path, str]) -> None:
    recording, _, log = made
    which = "native" if MUX_IMPLEMENTATION == "native" else "pure-Python"
    assert "('cenc', key id " in log and f"with the {which} muxer" in log
    assert len(segments(recording)) >= 2


def test_it_verifies_without_any_key(made: tuple[Path, Path, str]) -> None:
    recording = made[0]
    checked = warm.run(["verify", "--json", str(recording)], env=environment(), cwd="/",
                       timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] is True
    key_id = manifest.check_manifest((recording / manifest.MANIFEST_NAME).read_bytes()) \
        .lines[0]["encryption"]["key_id"]
    assert report["encryption"] == {"scheme": "cenc", "key_id": key_id, "kem": "x25519"}
    human = warm.run(["verify", str(recording)], env=environment(), cwd="/", timeout=120)
    assert human.returncode == 0
    assert f"encrypted   cenc, key id {key_id}" in human.stdout
    listed = {line["file"]: line["sha256"] for line in
              map(json.loads, (recording / manifest.MANIFEST_NAME).read_text().splitlines())
              if line["type"] == "segment"}
    for segment in segments(recording):  # the signed hash is of the encrypted file as stored
        assert hashlib.sha256(segment.read_bytes()).hexdigest() == listed[segment.name]


def test_ffprobe_sees_encrypted_h264_and_aac(made: tuple[Path, Path, str]) -> None:
    for segment in segments(made[0]):
        trace = subprocess.run(["ffprobe", "-v", "trace", str(segment)], capture_output=True,
                               text=True).stderr
        assert "4CC=encv" in trace and "4CC=enca" in trace


def test_the_station_key_unwraps_it_and_ffmpeg_decodes_every_numbered_frame(
        made: tuple[Path, Path, str], tmp_path: Path) -> None:
    recording, station, _ = made
    key = content_key_of(recording, station)
    numbers: list[int | None] = []
    for segment in segments(recording):
        numbers += decrypted_frame_numbers(segment, key, tmp_path / f"clear-{segment.name}")
    assert None not in numbers
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert len(numbers) >= 4 * 30 * 0.9
    audio = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-decryption_key",
                            key.key.hex(), "-seekable", "0", "-i", str(segments(recording)[0]),
                            "-map", "0:a", "-f", "null", "-"], capture_output=True, text=True)
    assert (audio.returncode, audio.stderr) == (0, "")


def test_without_the_key_the_card_shows_nothing(made: tuple[Path, Path, str],
                                               tmp_path: Path) -> None:
    recording, station, _ = made
    key = content_key_of(recording, station)
    for path in recording.iterdir():  # the key is never written, in any form
        data = path.read_bytes()
        assert key.key not in data and key.key.hex().encode() not in data
    segment = segments(recording)[0]
    with av.open(str(segment)) as container:
        try:
            numbers = [read_frame_number(frame) for frame in container.decode(video=0)]
        except av.error.InvalidDataError:
            numbers = []
    assert not any(number is not None for number in numbers)
    other = ContentKey(key.key_id, bytes(16))
    result = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-decryption_key",
                             other.key.hex(), "-seekable", "0", "-i", str(segment), "-map",
                             "0:v", "-f", "null", "-"], capture_output=True, text=True)
    assert result.returncode != 0 or result.stderr


def test_a_station_key_that_does_not_read_stops_before_recording(tmp_path: Path) -> None:
    pin = StationIdentity.load_or_create(tmp_path / "station").pin_line()
    head, kem, key, signature = pin.rsplit(":", 3)
    swapped = f"{head}:{kem}:{key[:-8]}AAAAAAA=:{signature}"
    for given, message in ((swapped, "not signed by the station's key"),
                           ("bwv-station/1:x", "is not a station key")):
        done = bwv(["record", "--fast", "--audio", "none", "--duration", "1", "--station-key",
                    given, "--out", str(tmp_path / "out")], tmp_path / "data")
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_station_takes_and_verifies_it_encrypted_without_any_key(
        made: tuple[Path, Path, str], tmp_path: Path) -> None:
    """Uploaded as a docked camera does: verified by the station, kept byte for byte as the
    camera signed it (so still encrypted), and the camera deletes it on the signed receipt."""
    recording, station_dir, _ = made
    card = tmp_path / "recordings"
    shutil.copytree(recording, card / recording.name)  # the module's copy stays for the others
    header = manifest.check_manifest((recording / manifest.MANIFEST_NAME).read_bytes()) \
        .read.header
    assert header is not None
    camera = DeviceKey.find(recording.parent.parent / "data")
    assert camera is not None
    store = make_store(station_dir)
    store.enroll(header.device_id, camera.public_key, by="test")
    served = serve(store)
    try:
        with Uploader(served.url, camera, header.device_id, card, pin=served.pin) as uploader:
            summary = uploader.upload_all()
    finally:
        served.stop()
    assert summary.ok, summary
    held = store.holdings(recording.name)
    assert held.verified, held.verify_summary
    for segment in segments(recording):
        with store.blobs.open(held.segments[segment.name]) as blob:
            assert blob.read() == segment.read_bytes()
    assert not (card / recording.name).exists()
