"""The wrapped content key in the manifest header: written, signed and chained with the header,
read back to the same key, absent (and the bytes unchanged) for a recording in the clear, and a
crafted ``encryption`` object, even one re-signed with the device key, is a line problem with a
message, never a crash.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.integrity import manifest
from recorder.integrity.content_key import (
    ContentKey, EncryptionPrivateKey, Kem, unwrap, wrap,
)
from recorder.integrity.keys import DeviceKey
from recorder.integrity.manifest import LineProblemCode, ManifestWriter, RecordingHeader

HEADER = RecordingHeader(recording_id="20261123T070427Z-cam7", device_id="cam7",
                         officer_id="PC 1234", utc_start="2026-11-23T07:04:27.000000Z",
                         monotonic_start_us=5_000_000, clock_source="ntp")
STATION = {kem: EncryptionPrivateKey.generate(kem) for kem in Kem}


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> DeviceKey:
    return DeviceKey.load_or_create(tmp_path_factory.mktemp("data"))


def header_line(directory: Path, key: DeviceKey, header: RecordingHeader) -> bytes:
    directory.mkdir()
    with ManifestWriter.create(directory, key, header) as writer:
        writer.seal("2026-11-23T07:06:00.000000Z")
    return (directory / manifest.MANIFEST_NAME).read_bytes()


def resigned(key: DeviceKey, obj: dict[str, Any]) -> bytes:
    """A header line with ``obj``'s fields, signed with the device key: what a crafted manifest
    looks like to a reader that does not trust the device key."""
    body = {name: value for name, value in obj.items() if name != "sig"}
    body["sig"] = base64.b64encode(key.sign(manifest.canonical_bytes(body))).decode()
    return manifest.canonical_bytes(body) + b"\n"


@pytest.mark.parametrize("kem", list(Kem), ids=[kem.value for kem in Kem])
def test_the_wrapped_key_is_in_the_signed_header_and_unwraps(tmp_path: Path, key: DeviceKey,
                                                             kem: Kem) -> None:
    content = ContentKey.new()
    wrapped = wrap(content, HEADER.recording_id, STATION[kem].public_key())
    data = header_line(tmp_path / "rec", key, dataclasses.replace(HEADER, encryption=wrapped))
    check = manifest.check_manifest(data, trusted_key=key.public_key)
    assert check.ok, check.problems
    header = check.read.header
    assert header is not None and header.encryption == wrapped
    assert check.lines[0]["encryption"] == {
        "aead": "AES-256-GCM", "kdf": "HKDF-SHA256", "kem": kem.value,
        "key_id": content.key_id.hex(), "scheme": "cenc",
        "wrapped_key": base64.b64encode(wrapped.wrapped).decode()}
    assert unwrap(header.encryption, header.recording_id, STATION[kem]) == content
    assert content.key.hex().encode() not in data and content.key not in data


def test_a_recording_without_a_key_has_no_encryption_field(tmp_path: Path,
                                                           key: DeviceKey) -> None:
    data = header_line(tmp_path / "rec", key, HEADER)
    assert b"encryption" not in data
    header = manifest.check_manifest(data).read.header
    assert header is not None and header.encryption is None


def test_changing_the_wrapped_key_breaks_the_signature(tmp_path: Path, key: DeviceKey) -> None:
    wrapped = wrap(ContentKey.new(), HEADER.recording_id, STATION[Kem.X25519].public_key())
    data = header_line(tmp_path / "rec", key, dataclasses.replace(HEADER, encryption=wrapped))
    text = base64.b64encode(wrapped.wrapped).decode()
    other = base64.b64encode(bytes([wrapped.wrapped[0] ^ 1]) + wrapped.wrapped[1:]).decode()
    check = manifest.check_manifest(data.replace(text.encode(), other.encode()),
                                    trusted_key=key.public_key)
    assert [problem.code for problem in check.problems if problem.line == 1] == \
        [LineProblemCode.SIGNATURE]


CRAFTED = [  # a whole new value, or fields merged into the real one
    ("not an object", "encryption is not an object"),
    ([{"scheme": "cenc"}], "it must have exactly aead, kdf, kem, key_id, scheme, wrapped_key"),
    ({"scheme": "cbcs"}, "encryption.scheme is 'cbcs'"),
    ({"kem": "rsa"}, "encryption.kem 'rsa' is not one of"),
    ({"kdf": 7}, "encryption.kdf is not a string"),
    ({"key_id": "ZZ" * 16}, "key_id is not 32 lower-case hex digits"),
    ({"key_id": "00" * 400}, "key_id is not 32 lower-case hex digits"),
    ({"wrapped_key": "A" * 1_000_000}, "wrapped_key is 1000000 characters"),
    ({"wrapped_key": "!" * 88}, "wrapped_key is not valid base64"),
]


@pytest.mark.parametrize("change, message", CRAFTED, ids=[m for _, m in CRAFTED])
def test_a_crafted_encryption_object_is_a_clear_problem(tmp_path: Path, key: DeviceKey,
                                                        change: Any, message: str) -> None:
    wrapped = wrap(ContentKey.new(), HEADER.recording_id, STATION[Kem.X25519].public_key())
    obj = json.loads(header_line(tmp_path / "rec", key,
                                 dataclasses.replace(HEADER, encryption=wrapped)).splitlines()[0])
    if isinstance(change, dict):
        obj["encryption"] = {**obj["encryption"], **change}
    else:  # a string, or a list holding the whole object
        obj["encryption"] = change if isinstance(change, str) else change[0]
    check = manifest.check_manifest(resigned(key, obj), trusted_key=key.public_key,
                                    require_sealed=False)
    problems = [problem for problem in check.problems if problem.line == 1]
    assert [problem.code for problem in problems] == [LineProblemCode.MISSING_FIELD]
    assert message in problems[0].message and "header field 'encryption'" in problems[0].message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(st.none() | st.booleans() | st.integers(-2**53 + 1, 2**53 - 1)
                    | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["aead", "kdf", "kem", "key_id", "scheme",
                                                       "wrapped_key", "x"]), inner, max_size=7),
                    max_leaves=20))
def test_any_encryption_value_reads_without_a_crash(key: DeviceKey, value: Any) -> None:
    obj = {"type": "header", "format": manifest.FORMAT, "recording_id": "r", "device_id": "d",
           "officer_id": "", "public_key": "x", "key_fingerprint": "0" * 64, "utc_start": "u",
           "monotonic_start_us": 0, "clock_source": "ntp", "settings": {}, "seq": 1,
           "prev": manifest.GENESIS_PREV, "encryption": value}
    check = manifest.check_manifest(resigned(key, obj), require_sealed=False)
    assert not check.ok  # the made-up public_key alone makes it fail; reading never raises
