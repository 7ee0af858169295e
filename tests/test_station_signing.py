"""The request signature ("bwv-request/2"): what is signed verifies, any change to method, path,
query, body hash, time, nonce, device or station breaks it, malformed headers are named, and openssl verifies
the same bytes with the device's PEM key."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.integrity.keys import DeviceKey
from recorder.integrity.request_signing import (HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP,
                                                request_message, sign_request)
from recorder.station.errors import RequestAuthError
from recorder.station.request_headers import parse_headers

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True).filter(
    lambda name: ".." not in name)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> DeviceKey:
    return DeviceKey.load_or_create(tmp_path_factory.mktemp("key"))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "PUT"]), recording=NAMES, body=st.binary(max_size=64),
       # the header takes 1-12 digits, and so must the changed timestamp, one more
       timestamp=st.integers(0, 10**12 - 2), device=NAMES,
       change=st.sampled_from(["method", "path", "query", "body", "timestamp", "nonce",
                               "device", "station"]))
def test_a_signed_request_verifies_and_any_change_breaks_it(
        key: DeviceKey, method: str, recording: str, body: bytes, timestamp: int, device: str,
        change: str) -> None:
    path = f"/api/v1/recordings/{recording}"
    body_sha = hashlib.sha256(body).hexdigest()
    headers = sign_request(key, device, method, path, body_sha, timestamp=timestamp,
                           station_id="station-a", query="a=1")
    signed = parse_headers(headers)
    assert signed.verifies(key.public_key, method, path, station_id="station-a", query="a=1")
    fields = {"method": method, "path": path, "body": body_sha, "timestamp": str(timestamp),
              "nonce": signed.nonce, "device": device, "query": "a=1", "station": "station-a"}
    fields[change] = {"method": "DELETE" if method != "DELETE" else "GET",
                      "path": path + "x", "body": hashlib.sha256(body + b"!").hexdigest(),
                      "timestamp": str(timestamp + 1), "nonce": "f" * 32,
                      "device": device + "x", "query": "a=2", "station": "station-b"}[change]
    tampered = dict(headers, **{"X-BWV-Content-SHA256": fields["body"],
                                HEADER_TIMESTAMP: fields["timestamp"],
                                HEADER_NONCE: fields["nonce"], "X-BWV-Device": fields["device"]})
    if fields["nonce"] == signed.nonce and change == "nonce":
        return  # the random nonce happened to be f*32
    assert not parse_headers(tampered).verifies(key.public_key, fields["method"], fields["path"],
                                                station_id=fields["station"],
                                                query=fields["query"])


def test_openssl_verifies_the_signed_bytes(key: DeviceKey, tmp_path: Path) -> None:
    path = "/api/v1/recordings/20261123T070000Z-cam7/segments/000001.mp4"
    body_sha = hashlib.sha256(b"segment").hexdigest()
    headers = sign_request(key, "cam7", "PUT", path, body_sha, timestamp=1795000000,
                           nonce="0123456789abcdef0123456789abcdef", station_id="station-a")
    (tmp_path / "msg").write_bytes(request_message("PUT", path, body_sha, 1795000000,
                                                   "0123456789abcdef0123456789abcdef", "cam7",
                                                   station_id="station-a"))
    (tmp_path / "sig").write_bytes(base64.b64decode(headers[HEADER_SIGNATURE]))
    (tmp_path / "key.pem").write_text(key.public_key_pem)
    result = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "key.pem",
                             "-rawin", "-in", "msg", "-sigfile", "sig"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout
    assert (tmp_path / "msg").read_bytes().split(b"\n")[0] == b"bwv-request/2"


@pytest.mark.parametrize(("header", "value", "says"), [
    (HEADER_TIMESTAMP, "-5", "is not integer Unix seconds"),
    (HEADER_NONCE, "short", "must be 32 lower-case hex digits"),
    ("X-BWV-Content-SHA256", "A" * 64, "must be 64 lower-case hex digits"),
    (HEADER_SIGNATURE, "c2ln", "not the base64 of a 64-byte Ed25519 signature"),
    ("X-BWV-Device", "../cam", "is not a device id"),
])
def test_malformed_headers_are_refused_by_name(key: DeviceKey, header: str, value: str,
                                               says: str) -> None:
    headers = sign_request(key, "cam7", "GET", "/p", "0" * 64, station_id="station-a")
    headers[header] = value
    with pytest.raises(RequestAuthError) as caught:
        parse_headers(headers)
    assert says in caught.value.detail
