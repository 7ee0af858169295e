"""Content keys wrapped to the station with HPKE, for both KEMs: a round trip opens, and every
attack fails: the wrong station key, a changed wrapped key, the key moved to another recording
or paired with another key id. The station's encryption key file is refused when others may read
it, and the pin carries the encryption key signed by the station key, so a changed one is refused.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from recorder import cli
from recorder.integrity.content_key import (
    ContentKey, EncryptionPrivateKey, Kem, UnwrapError, unwrap, wrap,
)
from recorder.integrity.keys import DeviceKey, PublicKeyFormatError
from recorder.device.doctor import _station_line
from recorder.integrity.station_pin import parse_pin
from recorder.settings import Settings
from recorder.station import encryption_key
from recorder.station.encryption_key import (
    ENCRYPTION_KEY_FILE, EncryptionKeyFileError, EncryptionKeyPermissionError,
)
from recorder.station.identity import StationIdentity

KEMS = [Kem.X25519, Kem.MLKEM768_X25519]


@pytest.fixture(scope="module", params=KEMS, ids=[kem.value for kem in KEMS])
def station_private(request: pytest.FixtureRequest) -> EncryptionPrivateKey:
    kem: Kem = request.param
    return EncryptionPrivateKey.generate(kem)


def test_a_new_content_key_is_16_random_bytes_with_a_16_byte_key_id() -> None:
    first, second = ContentKey.new(), ContentKey.new()
    assert len(first.key) == len(first.key_id) == 16
    assert first.key != second.key and first.key_id != second.key_id
    assert first.key.hex() not in repr(first)  # the key stays out of logs and tracebacks


def test_a_wrapped_key_opens_with_the_station_key_for_its_recording(
        station_private: EncryptionPrivateKey) -> None:
    key = ContentKey.new()
    wrapped = wrap(key, "rec-1", station_private.public_key())
    assert key.key not in wrapped.wrapped
    assert unwrap(wrapped, "rec-1", station_private) == key
    fields = wrapped.header_fields()
    assert fields["scheme"] == "cenc" and fields["kem"] == station_private.kem.value
    assert (fields["kdf"], fields["aead"]) == ("HKDF-SHA256", "AES-256-GCM")


def test_another_station_key_does_not_open_it(station_private: EncryptionPrivateKey) -> None:
    wrapped = wrap(ContentKey.new(), "rec-1", station_private.public_key())
    other = EncryptionPrivateKey.generate(station_private.kem)
    with pytest.raises(UnwrapError, match="another station or recording"):
        unwrap(wrapped, "rec-1", other)


def test_a_changed_wrapped_key_does_not_open(station_private: EncryptionPrivateKey) -> None:
    wrapped = wrap(ContentKey.new(), "rec-1", station_private.public_key())
    for position in (0, len(wrapped.wrapped) // 2, len(wrapped.wrapped) - 1):
        changed = bytearray(wrapped.wrapped)
        changed[position] ^= 0x01
        with pytest.raises(UnwrapError):
            unwrap(dataclasses.replace(wrapped, wrapped=bytes(changed)), "rec-1", station_private)
    with pytest.raises(UnwrapError):
        unwrap(dataclasses.replace(wrapped, wrapped=wrapped.wrapped[:20]), "rec-1",
               station_private)


def test_a_key_moved_to_another_recording_or_key_id_does_not_open(
        station_private: EncryptionPrivateKey) -> None:
    wrapped = wrap(ContentKey.new(), "rec-1", station_private.public_key())
    with pytest.raises(UnwrapError, match="rec-2"):
        unwrap(wrapped, "rec-2", station_private)
    with pytest.raises(UnwrapError):
        unwrap(dataclasses.replace(wrapped, key_id=bytes(16)), "rec-1", station_private)


def test_a_key_wrapped_with_one_kem_is_refused_by_a_station_of_the_other() -> None:
    wrapped = wrap(ContentKey.new(), "rec-1",
                   EncryptionPrivateKey.generate(Kem.X25519).public_key())
    with pytest.raises(UnwrapError, match="wrapped with x25519"):
        unwrap(wrapped, "rec-1", EncryptionPrivateKey.generate(Kem.MLKEM768_X25519))


@pytest.mark.parametrize("kem", KEMS, ids=[kem.value for kem in KEMS])
def test_the_station_key_file_is_0600_and_reloads_the_same_key(tmp_path: Path, kem: Kem) -> None:
    made = encryption_key.load_or_create(tmp_path / "station", kem)
    path = tmp_path / "station" / ENCRYPTION_KEY_FILE
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert encryption_key.load(path) == made and made.kem is kem
    key = ContentKey.new()
    assert unwrap(wrap(key, "r", made.public_key()), "r", encryption_key.load(path)) == key


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    encryption_key.load_or_create(tmp_path)
    path = tmp_path / ENCRYPTION_KEY_FILE
    for mode in (0o644, 0o640, 0o604):
        os.chmod(path, mode)
        with pytest.raises(EncryptionKeyPermissionError, match=f"chmod 600 {path}"):
            encryption_key.load(path)


def test_a_key_file_behind_a_link_or_damaged_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    encryption_key.load_or_create(real)
    (tmp_path / ENCRYPTION_KEY_FILE).symlink_to(real / ENCRYPTION_KEY_FILE)
    with pytest.raises(EncryptionKeyPermissionError, match="symbolic link"):
        encryption_key.load(tmp_path / ENCRYPTION_KEY_FILE)
    path = real / ENCRYPTION_KEY_FILE
    path.write_text("bwv-station-encryption-key/1:x25519:AAAA\n")
    with pytest.raises(EncryptionKeyFileError, match="restore it from backup"):
        encryption_key.load(path)


def test_the_pin_carries_the_encryption_key_signed_by_the_station(tmp_path: Path) -> None:
    identity = StationIdentity.load_or_create(tmp_path / "station", Kem.MLKEM768_X25519)
    assert identity.encryption is not None
    pin = parse_pin(identity.pin_line())
    assert pin.station_id == identity.station_id
    assert pin.encryption_key == identity.encryption.public_key()
    key = ContentKey.new()
    assert unwrap(wrap(key, "r", pin.encryption_key), "r", identity.encryption) == key


def test_a_pin_whose_encryption_key_was_swapped_is_refused(tmp_path: Path) -> None:
    """An attacker keeps the station's signing key (its fingerprint checks out) but puts their
    own encryption key in the line, to read the footage: the signature no longer verifies."""
    identity = StationIdentity.load_or_create(tmp_path / "station")
    head, kem, _, signature = identity.pin_line().rsplit(":", 3)
    theirs = EncryptionPrivateKey.generate(Kem.X25519).public_key()
    with pytest.raises(PublicKeyFormatError, match="not signed by the station's key"):
        parse_pin(f"{head}:{kem}:{theirs.b64()}:{signature}")
    with pytest.raises(PublicKeyFormatError, match="3 or 6 fields"):
        parse_pin(f"{head}:{kem}:{theirs.b64()}")
    with pytest.raises(PublicKeyFormatError, match="not one of"):
        parse_pin(f"{head}:rsa:{theirs.b64()}:{signature}")


def test_a_pin_without_an_encryption_key_still_reads(tmp_path: Path) -> None:
    identity = StationIdentity.load_or_create(tmp_path / "station")
    head = identity.pin_line().rsplit(":", 3)[0]
    pin = parse_pin(head)
    assert pin.encryption_key is None and pin.public_key == identity.public_key


def test_station_key_command_makes_the_chosen_kem_and_refuses_to_change_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    camera = DeviceKey.load_or_create(tmp_path / "camera").public_key_raw.hex()
    data = str(tmp_path / "station")
    assert cli.main(["station", "enroll", "--data", data, "--device-id", "cam1",
                     "--public-key", camera]) == 0
    capsys.readouterr()
    assert cli.main(["station", "key", "--data", data, "--quiet"]) == 0
    line = capsys.readouterr().out.strip()
    assert parse_pin(line).encryption_key is not None
    assert cli.main(["station", "key", "--data", data, "--encryption-kem",
                     "mlkem768-x25519"]) == 2
    assert "this station's encryption key is x25519" in capsys.readouterr().err
    other = str(tmp_path / "pq")
    assert cli.main(["station", "enroll", "--data", other, "--device-id", "cam1",
                     "--public-key", camera, "--encryption-kem", "mlkem768-x25519"]) == 0
    capsys.readouterr()
    assert cli.main(["station", "key", "--data", other, "--quiet"]) == 0
    pin = parse_pin(capsys.readouterr().out.strip())
    assert pin.encryption_key is not None and pin.encryption_key.kem is Kem.MLKEM768_X25519


def test_doctor_says_whether_recordings_are_encrypted_for_the_pinned_station(
        tmp_path: Path) -> None:
    identity = StationIdentity.load_or_create(tmp_path / "station", Kem.MLKEM768_X25519)
    base = Settings.load(None).with_values(storage_data_dir=str(tmp_path / "data"))
    line = _station_line(base.with_values(station_public_key=identity.pin_line())).value
    assert line.endswith("; recordings encrypted for it (mlkem768-x25519)")
    old = identity.pin_line().rsplit(":", 3)[0]
    line = _station_line(base.with_values(station_public_key=old)).value
    assert "recordings in the clear: the pin has no encryption key" in line
