"""The device key: created once with mode 0600, reloaded, refused when exposed or damaged."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder.integrity import keys
from recorder.integrity.keys import (DeviceKey, KeyCorruptError, KeyPermissionError,
                                     PublicKeyFormatError)


def test_key_is_created_on_first_use_with_mode_0600_even_under_a_permissive_umask(
        tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        key = DeviceKey.load_or_create(tmp_path / "data")
    finally:
        os.umask(old_umask)
    assert key.path == tmp_path / "data" / keys.KEY_FILE_NAME
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "data").iterdir()] == [keys.KEY_FILE_NAME]


def test_second_use_loads_the_same_key(tmp_path: Path) -> None:
    first = DeviceKey.load_or_create(tmp_path)
    second = DeviceKey.load_or_create(tmp_path)
    assert first.public_key_raw == second.public_key_raw
    assert len(first.public_key_raw) == 32


def test_find_does_not_create_a_key(tmp_path: Path) -> None:
    assert DeviceKey.find(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_fingerprint_is_sha256sum_of_the_raw_public_key_as_openssl_exports_it(
        tmp_path: Path) -> None:
    key = DeviceKey.load_or_create(tmp_path)
    der = subprocess.run(["openssl", "pkey", "-in", str(key.path), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    raw = der[-32:]
    digest = subprocess.run(["sha256sum"], input=raw, check=True,
                            capture_output=True).stdout.split()[0].decode()
    assert key.fingerprint == digest == hashlib.sha256(key.public_key_raw).hexdigest()


def test_openssl_derives_the_same_public_pem_from_the_key_file(tmp_path: Path) -> None:
    key = DeviceKey.load_or_create(tmp_path)
    pem = subprocess.run(["openssl", "pkey", "-in", str(key.path), "-pubout"], check=True,
                         capture_output=True, text=True).stdout
    assert pem == key.public_key_pem


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_readable_by_others_is_refused_with_the_chmod_to_run(tmp_path: Path,
                                                                  mode: int) -> None:
    key = DeviceKey.load_or_create(tmp_path)
    key.path.chmod(mode)
    with pytest.raises(KeyPermissionError, match=rf"mode {mode:04o}.*chmod 600 "):
        DeviceKey.load_or_create(tmp_path)


def test_corrupt_key_file_is_refused_and_not_silently_replaced(tmp_path: Path) -> None:
    path = tmp_path / keys.KEY_FILE_NAME
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    path.chmod(0o600)
    with pytest.raises(KeyCorruptError, match="unreadable.*re-enrolling"):
        DeviceKey.load_or_create(tmp_path)
    assert b"garbage" in path.read_bytes()


def test_a_key_of_another_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / keys.KEY_FILE_NAME
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(KeyCorruptError, match="not an Ed25519 key"):
        DeviceKey.load(path)


def test_a_symlinked_key_is_refused(tmp_path: Path) -> None:
    real = DeviceKey.load_or_create(tmp_path / "elsewhere")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / keys.KEY_FILE_NAME).symlink_to(real.path)
    with pytest.raises(KeyPermissionError, match="symbolic link"):
        DeviceKey.load_or_create(tmp_path / "data")


def test_signatures_verify_with_the_public_key(tmp_path: Path) -> None:
    key = DeviceKey.load_or_create(tmp_path)
    signature = key.sign(b"message")
    assert keys.verify_signature(key.public_key, signature, b"message")
    assert not keys.verify_signature(key.public_key, signature, b"messagE")


def test_trusted_public_key_loads_from_pem_or_hex(tmp_path: Path) -> None:
    key = DeviceKey.load_or_create(tmp_path)
    pem_file = tmp_path / "pub.pem"
    pem_file.write_text(key.public_key_pem)
    hex_file = tmp_path / "pub.hex"
    hex_file.write_text(key.public_key_raw.hex() + "\n")
    for path in (pem_file, hex_file):
        assert keys.public_key_raw(keys.load_public_key(path)) == key.public_key_raw


def test_a_file_without_a_public_key_is_refused_with_the_forms_accepted(tmp_path: Path) -> None:
    path = tmp_path / "pub.txt"
    path.write_text("not a key")
    with pytest.raises(PublicKeyFormatError, match="PEM file.*64 hex digits"):
        keys.load_public_key(path)
    with pytest.raises(PublicKeyFormatError, match="cannot read"):
        keys.load_public_key(tmp_path / "missing.pem")


def test_header_form_of_the_public_key_round_trips_and_is_the_pem_body(tmp_path: Path) -> None:
    key = DeviceKey.load_or_create(tmp_path)
    text = keys.public_key_spki_b64(key.public_key)
    assert text in key.public_key_pem
    assert keys.public_key_raw(keys.public_key_from_spki_b64(text)) == key.public_key_raw
    other = keys.public_key_spki_b64(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(PublicKeyFormatError):
        keys.public_key_from_spki_b64(other[:-4])
    with pytest.raises(PublicKeyFormatError):
        keys.public_key_from_spki_b64("***")


def test_default_data_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv(keys.DATA_DIR_ENV_VAR, str(tmp_path))
    assert keys.default_data_dir() == tmp_path
    monkeypatch.delenv(keys.DATA_DIR_ENV_VAR)
    assert keys.default_data_dir() == Path.home() / ".local" / "share" / "bwv"
