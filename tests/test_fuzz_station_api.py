"""Fuzzing the station's HTTP API (issue 13): hypothesis draws requests — any method, paths
around the real ones (known and unknown recordings, traversal, odd characters, queries), any
subset of the X-BWV-* headers with valid or hostile values (a Content-Length that lies is
tests/test_station_limits.py's, over raw sockets), bodies that are or are not MP4, and
requests properly signed by an enrolled camera with one part changed after signing — and sends
them to a real station on loopback. Whatever arrives, the answer is a documented status (never a
5xx), an error is the JSON the camera reads, and afterwards the station is healthy, its audit
chain and checkpoints verify, and the recording it held is untouched."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.station import ServedStation, ingest, make_recording, make_store, serve
from support.http import http

from recorder.integrity.keys import DeviceKey
from recorder.integrity.request_signing import (HEADER_CONTENT_SHA256, HEADER_DEVICE,
                                                HEADER_NONCE, HEADER_SIGNATURE, HEADER_STATION,
                                                HEADER_TIMESTAMP, sign_request)
from recorder.station import audit
from recorder.station.evidence_store import EvidenceStore

API = "/api/v1"
# what the API answers, by design; anything else (a 5xx above all) is a finding
DOCUMENTED = {200, 201, 400, 401, 404, 405, 409, 410, 411, 413, 415, 422, 507}
FTYP = bytes.fromhex("00000018667479706973366d0000000069736f36") + b"mp41"


@dataclass
class Station:
    served: ServedStation
    store: EvidenceStore
    key: DeviceKey
    recording_id: str
    holdings: dict[str, object]


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    root = tmp_path_factory.mktemp("api-fuzz")
    key = DeviceKey.load_or_create(root / "camera")
    store = make_store(root / "station")  # the system clock: requests are signed now
    store.enroll("cam7", key.public_key, by="admin")
    held = ingest(store, make_recording(root / "recordings", key))
    assert held.verified
    served = serve(store)
    yield Station(served, store, key, held.recording_id, held.to_json())
    served.stop()
    store.engine.dispose()


NAMES = st.one_of(
    st.sampled_from(["20261123T070000Z-cam7", "000001.mp4", "manifest", "..", ".", "%2e%2e",
                     "a" * 200, "cam7", "x.mp4", "000001.mp4.partial"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
)
PATHS = st.one_of(
    st.builds(lambda r: f"{API}/recordings/{r}", NAMES),
    st.builds(lambda r, f: f"{API}/recordings/{r}/segments/{f}", NAMES, NAMES),
    st.builds(lambda r: f"{API}/recordings/{r}/manifest", NAMES),
    st.sampled_from([f"{API}/health", f"{API}/recordings", f"{API}/", "/", "/recordings/x"]),
)
HEADER_VALUES = st.one_of(
    st.sampled_from(["", "0", "-1", "²", "١٧٩٥", "9" * 40, "cam7", "a" * 64, "A" * 88 + "==",
                     "station-0000000000000000", "\t", "x" * 300]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
)
BODIES = st.one_of(st.binary(max_size=2048), st.builds(lambda tail: FTYP + tail,
                                                       st.binary(max_size=2048)))
CHANGES = st.sampled_from([None, "method", "path", "query", "body", "station", "device",
                           "timestamp", "signature"])


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH"]), path=PATHS,
       query=st.sampled_from(["", "a=1", "as=someone-else", "x=%00"]), body=BODIES,
       signed=st.booleans(), change=CHANGES,
       extra=st.dictionaries(st.sampled_from([HEADER_DEVICE, HEADER_TIMESTAMP, HEADER_NONCE,
                                              HEADER_CONTENT_SHA256, HEADER_SIGNATURE,
                                              HEADER_STATION]),
                             HEADER_VALUES, max_size=3))
def test_no_request_gets_an_undocumented_answer(
        station: Station, method: str, path: str, query: str, body: bytes, signed: bool,
        change: str | None, extra: dict[str, str]) -> None:
    headers: dict[str, str | bytes] = {}
    if signed:
        headers = sign_request(station.key, "cam7", method, path,
                               hashlib.sha256(body).hexdigest(),
                               station_id=station.served.station_id, query=query)
        if change == "method":
            method = "PUT" if method == "GET" else "GET"
        elif change == "path":
            path += "x"
        elif change == "query":
            query += "&b=2"
        elif change == "body":
            body += b"!"
        elif change == "station":
            headers[HEADER_STATION] = "station-ffffffffffffffff"
        elif change == "device":
            headers[HEADER_DEVICE] = "cam8"
        elif change == "timestamp":
            headers[HEADER_TIMESTAMP] = str(int(headers[HEADER_TIMESTAMP]) - 1)
        elif change == "signature":
            headers[HEADER_SIGNATURE] = "A" * 86 + "=="
    else:  # sent as UTF-8 bytes: httpx would refuse to encode "²" as ASCII itself
        headers.update({name: value.encode() for name, value in extra.items()})
    url = station.served.url + path + (f"?{query}" if query else "")
    try:
        answer = http.request(method, url, content=body if method != "GET" else None,
                              headers=headers, timeout=30)
    except (httpx.LocalProtocolError, httpx.InvalidURL):
        return  # the client would not send it: nothing reached the station
    assert answer.status_code in DOCUMENTED, (answer.status_code, answer.text[:300])
    if answer.status_code >= 400 and path.startswith(API):
        error = answer.json()
        assert set(error) == {"error", "message"} and isinstance(error["error"], str)


@pytest.mark.parametrize("path", [f"{API}/recordings/0/", f"{API}/health/", f"{API}/recordings/"])
def test_a_slash_too_many_is_not_found_not_redirected(station: Station, path: str) -> None:
    """The fuzzing found `GET /api/v1/recordings/0/` answered 307 (Starlette's redirect to the
    path without the slash), which the API's documentation does not have."""
    answer = http.get(station.served.url + path, timeout=30, follow_redirects=False)
    assert answer.status_code == 404, answer.status_code
    assert answer.json()["error"] == "not_found"


def test_after_the_fuzzing_the_station_is_healthy_and_its_records_intact(
        station: Station) -> None:
    """Runs after the fuzz test of this module (pytest keeps file order within a worker; on
    its own it checks a fresh station)."""
    health = http.get(f"{station.served.url}{API}/health", timeout=5)
    assert health.status_code == 200 and health.json()["ok"] is True
    check = audit.verify(station.store.engine, station.store.identity)
    assert check.ok, check.problems
    assert station.store.holdings(station.recording_id).to_json() == station.holdings
