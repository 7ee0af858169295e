"""Encrypted recordings at the station (issue 15): the content key unwrapped with the station's
key, released to a staff page's player as a ClearKey licence (only to a live playback of a person
who may play that recording, once, audited, never cached), played by headless chromium through
EME across a segment boundary, and exported with the encrypted files as the camera signed them
plus the key, which ffmpeg decrypts with.

The recordings are made as a camera makes them: `bwv record --station-key` with the station's
pin line (real encoders, real subprocess), once for the module; then ingested into a station.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
import re
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import pytest
from support import warm
from support.browser import browser, page, page_problems, screenshot  # noqa: F401
from support.staff import StaffBrowser, add_staff, logged_in
from support.station import (ServedStation, copy_station, ingest, make_recording, make_store,
                             serve_web)

from recorder.capture.camera.test_pattern import read_frame_number
from recorder.integrity import manifest
from recorder.integrity.content_key import ContentKey, EncryptionPrivateKey, Kem, unwrap
from recorder.integrity.keys import DeviceKey
from recorder.station import accounts, audit, content_keys, encryption_key
from recorder.station.decrypt import DecryptError, decrypt_segment
from recorder.station.evidence_store import EvidenceStore
from recorder.station.export import NotEncryptedError, export_recording
from recorder.station.identity import StationIdentity
from recorder.station.web.security import WebSettings


@dataclass(frozen=True)
class Encrypted:
    """Two encrypted recordings (A, 5 s; B, 2 s) held by one station, served on its pages."""

    store: EvidenceStore
    web: ServedStation
    a: Path  # the camera's folder of recording A
    b: Path
    keys: dict[str, ContentKey]  # by recording id: unwrapped as the test's own oracle
    station: Path  # the station's data directory

    @property
    def a_id(self) -> str:
        return self.a.name


def environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "JOURNAL_STREAM"}
    return {**env, **extra}


def bwv(args: list[str], data: Path) -> subprocess.CompletedProcess[str]:
    return warm.run(args, env=environment(BWV_DATA_DIR=str(data)), cwd="/", timeout=300)


def record(tmp: Path, pin_file: Path, name: str, seconds: int) -> Path:
    done = bwv(["record", "--fast", "--audio", "synthetic", "--size", "320x240", "--pre-event",
                "1", "--duration", str(seconds), "--segment", "2", "--station-key",
                str(pin_file), "--out", str(tmp / name)], tmp / "camera")
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def header_of(recording: Path) -> manifest.Header:
    header = manifest.read_lines((recording / manifest.MANIFEST_NAME).read_bytes()).header
    assert header is not None and header.encryption is not None
    return header


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Encrypted]:
    tmp = tmp_path_factory.mktemp("station-encrypted")
    station = tmp / "station"
    pin_file = tmp / "station.pin"
    pin_file.write_text(StationIdentity.load_or_create(station).pin_line() + "\n")
    a = record(tmp, pin_file, "a", 5)
    b = record(tmp, pin_file, "b", 2)
    assert a.name != b.name
    camera = DeviceKey.find(tmp / "camera")
    assert camera is not None
    store = make_store(station)
    device_id = header_of(a).device_id
    store.enroll(device_id, camera.public_key, by="admin")
    keys = {}
    for recording in (a, b):
        assert ingest(store, recording, device_id).verified
        header = header_of(recording)
        assert header.encryption is not None and store.identity.encryption is not None
        keys[recording.name] = unwrap(header.encryption, header.recording_id,
                                      store.identity.encryption)
    web = serve_web(store)
    try:
        yield Encrypted(store, web, a, b, keys, station)
    finally:
        web.stop()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def request_for(*key_ids: bytes) -> str:
    """A ClearKey licence request as chromium's session sends it."""
    return json.dumps({"kids": [b64url(key_id) for key_id in key_ids], "type": "temporary"})


def player_of(client: StaffBrowser, recording_id: str) -> dict[str, str]:
    """The player's data attributes on the recording page."""
    answer = client.get(f"/recordings/{recording_id}")
    assert answer.status_code == 200, answer.text
    found = dict(re.findall(r"data-(clearkey|play|csrf)='([^']*)'", answer.text))
    return found


def entries(store: EvidenceStore, actor: str, action: str) -> list[audit.AuditEntry]:
    return [entry for entry in audit.entries(store.engine)
            if entry.actor == actor and entry.action == action]


def released_nothing(answer: Any, key: ContentKey) -> None:
    assert key.key.hex() not in answer.text and b64url(key.key) not in answer.text


# --- unwrapping at the station

def test_the_station_unwraps_the_key_of_a_held_recording(encrypted: Encrypted) -> None:
    store = encrypted.store
    assert content_keys.content_key(store, encrypted.a_id) == encrypted.keys[encrypted.a_id]
    wrapped = content_keys.wrapped_key(store, encrypted.a_id)
    assert wrapped is not None and wrapped.key_id == encrypted.keys[encrypted.a_id].key_id


def test_without_its_key_file_or_with_another_stations_key_it_says_why(
        encrypted: Encrypted, monkeypatch: pytest.MonkeyPatch) -> None:
    store = encrypted.store
    monkeypatch.setattr(store, "identity", replace(store.identity, encryption=None))
    with pytest.raises(content_keys.NoEncryptionKeyError, match="no encryption key file"):
        content_keys.content_key(store, encrypted.a_id)
    other = EncryptionPrivateKey.generate(Kem.X25519)
    monkeypatch.setattr(store, "identity", replace(store.identity, encryption=other))
    with pytest.raises(content_keys.ContentKeyUnwrapError, match="does not open"):
        content_keys.content_key(store, encrypted.a_id)
    hybrid = EncryptionPrivateKey.generate(Kem.MLKEM768_X25519)
    monkeypatch.setattr(store, "identity", replace(store.identity, encryption=hybrid))
    with pytest.raises(content_keys.ContentKeyUnwrapError, match="wrapped with x25519"):
        content_keys.content_key(store, encrypted.a_id)


# --- the ClearKey licence route

def test_a_player_gets_the_key_once_audited_and_never_cached(encrypted: Encrypted) -> None:
    store, key = encrypted.store, encrypted.keys[encrypted.a_id]
    client = logged_in(encrypted.web.url, store, "disclosure", "do-key")
    try:
        player = player_of(client, encrypted.a_id)
        assert player["clearkey"] == f"/recordings/{encrypted.a_id}/clearkey"
        form = {"play": player["play"], "request": request_for(key.key_id)}
        answer = client.post(player["clearkey"], form)
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {"keys": [{"kty": "oct", "kid": b64url(key.key_id),
                                           "k": b64url(key.key)}], "type": "temporary"}
        again = client.post(player["clearkey"], form)  # the same playback asks again
        assert again.status_code == 403
        released_nothing(again, key)
    finally:
        client.close()
    [release] = entries(store, "do-key", audit.Action.KEY_RELEASE)
    assert release.recording_id == encrypted.a_id
    assert release.detail["key_id"] == key.key_id.hex()
    assert release.detail["play"] == player["play"]
    [refusal] = entries(store, "do-key", audit.Action.ACCESS_REFUSED)
    assert refusal.detail["reason"] == "the key was already released to this playback"


def test_the_page_of_an_encrypted_recording_has_no_inline_script(encrypted: Encrypted) -> None:
    client = logged_in(encrypted.web.url, encrypted.store, "disclosure", "do-csp")
    try:
        answer = client.get(f"/recordings/{encrypted.a_id}")
    finally:
        client.close()
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe" not in csp
    assert re.findall(r"<script[^>]*>", answer.text) == [
        '<script src="/static/player.js" defer>']
    [mime] = re.findall(r"data-mime='([^']*)'", answer.text)  # named through encv's frma
    assert re.fullmatch(r'video/mp4; codecs="avc1\.[0-9a-f]{6}, mp4a\.40\.2"', html.unescape(mime))


def test_someone_who_may_not_play_the_recording_is_refused_its_key(
        encrypted: Encrypted) -> None:
    store, key = encrypted.store, encrypted.keys[encrypted.a_id]
    owner = logged_in(encrypted.web.url, store, "disclosure", "do-owner")
    play = player_of(owner, encrypted.a_id)["play"]
    owner.close()
    # a custodian sees the recording but may not play footage; an officer does not see it
    for role, name in (("custodian", "cu-nokey"), ("officer", "pc-nokey")):
        client = StaffBrowser(encrypted.web.url, store)
        try:
            staff = add_staff(store, name, role, officer_id="9999" if role == "officer" else None)
            assert client.login(staff).status_code == 303
            client.get("/")  # a page with the CSRF token
            answer = client.post(f"/recordings/{encrypted.a_id}/clearkey",
                                 {"play": play, "request": request_for(key.key_id)})
        finally:
            client.close()
        assert answer.status_code == 403, answer.text
        released_nothing(answer, key)
        [refusal] = entries(store, name, audit.Action.ACCESS_REFUSED)
        assert refusal.recording_id == encrypted.a_id and refusal.detail["wanted"] == "play"
        assert entries(store, name, audit.Action.KEY_RELEASE) == []


def test_a_key_id_of_another_recording_is_refused_through_this_one(
        encrypted: Encrypted) -> None:
    store = encrypted.store
    key_a, key_b = encrypted.keys[encrypted.a_id], encrypted.keys[encrypted.b.name]
    client = logged_in(encrypted.web.url, store, "disclosure", "do-other")
    try:
        player = player_of(client, encrypted.a_id)
        for asked in ((key_b.key_id,), (key_a.key_id, key_b.key_id)):
            answer = client.post(player["clearkey"], {"play": player["play"],
                                                      "request": request_for(*asked)})
            assert answer.status_code == 403
            released_nothing(answer, key_a)
            released_nothing(answer, key_b)
        # the refusals did not use up the playback: its own key id still opens
        answer = client.post(player["clearkey"], {"play": player["play"],
                                                  "request": request_for(key_a.key_id)})
        assert answer.status_code == 200
    finally:
        client.close()
    refusals = entries(store, "do-other", audit.Action.ACCESS_REFUSED)
    assert [r.detail["reason"] for r in refusals] == ["a key id of another recording"] * 2
    assert refusals[0].detail["key_ids"] == [key_b.key_id.hex()]
    assert len(entries(store, "do-other", audit.Action.KEY_RELEASE)) == 1


def test_no_session_no_csrf_no_playback_or_a_bad_request_release_nothing(
        encrypted: Encrypted) -> None:
    store, key = encrypted.store, encrypted.keys[encrypted.a_id]
    path = f"/recordings/{encrypted.a_id}/clearkey"
    client = logged_in(encrypted.web.url, store, "disclosure", "do-forged")
    try:
        player = player_of(client, encrypted.a_id)
        form = {"play": player["play"], "request": request_for(key.key_id)}
        stranger = StaffBrowser(encrypted.web.url, store)
        try:
            nobody = stranger.post(path, dict(form, csrf=player["csrf"]))
        finally:
            stranger.close()
        assert nobody.status_code == 401
        forged = client.post(path, form, csrf=False)
        wrong = client.post(path, dict(form, csrf="not-the-token"))
        assert forged.status_code == wrong.status_code == 403
        unknown = client.post(path, dict(form, play="made-up"))
        assert unknown.status_code == 403
        for bad in ("not json", json.dumps({"kids": ["AAAA"]}), json.dumps({"kids": []}),
                    json.dumps({"kids": [b64url(key.key_id)], "type": "persistent-license"})):
            answer = client.post(path, dict(form, request=bad))
            assert answer.status_code == 400 and "Traceback" not in answer.text
            released_nothing(answer, key)
        for answer in (nobody, forged, wrong, unknown):
            released_nothing(answer, key)
        # none of that used up the playback
        assert client.post(path, form).status_code == 200
    finally:
        client.close()
    refusals = entries(store, "do-forged", audit.Action.ACCESS_REFUSED)
    assert [r.detail["reason"] for r in refusals] == [
        "not a playback of this person and recording"]
    assert len(entries(store, "do-forged", audit.Action.KEY_RELEASE)) == 1


def test_a_playback_past_its_key_window_is_refused(encrypted: Encrypted) -> None:
    store, key = encrypted.store, encrypted.keys[encrypted.a_id]
    short = serve_web(store, WebSettings(key_window_s=0.5))
    try:
        client = logged_in(short.url, store, "disclosure", "do-late")
        try:
            player = player_of(client, encrypted.a_id)
            time.sleep(1.0)
            answer = client.post(player["clearkey"], {"play": player["play"],
                                                      "request": request_for(key.key_id)})
        finally:
            client.close()
    finally:
        short.stop()
    assert answer.status_code == 403
    released_nothing(answer, key)
    [refusal] = entries(store, "do-late", audit.Action.ACCESS_REFUSED)
    assert refusal.detail["reason"] == "the playback has expired: reload the page"


def test_the_footage_is_served_encrypted_as_the_camera_signed_it(encrypted: Encrypted) -> None:
    client = logged_in(encrypted.web.url, encrypted.store, "disclosure", "do-bytes")
    try:
        answer = client.get(f"/recordings/{encrypted.a_id}")
        urls = json.loads(html.unescape(re.findall(r"data-segments='([^']*)'", answer.text)[0]))
        for url in urls:
            name = url.split("/")[-1].split("?")[0]
            served = client.get(url)
            assert served.status_code == 200
            assert served.content == (encrypted.a / name).read_bytes()
    finally:
        client.close()


# --- in a real browser

def log_in(page: Any, url: str, store: EvidenceStore, name: str) -> None:
    staff = add_staff(store, name, "disclosure")
    page.goto(url + "/")
    page.fill("input[name=name]", staff.name)
    page.fill("input[name=password]", staff.password)
    assert staff.secret is not None
    page.fill("input[name=code]", accounts.totp_code(staff.secret, store.clock()))
    page.click("text=log in")
    page.wait_for_url(url + "/")


def test_chromium_plays_it_through_clearkey_across_a_segment_boundary(
        page: Any, encrypted: Encrypted) -> None:
    store, url = encrypted.store, encrypted.web.url
    lines = manifest.read_lines((encrypted.a / manifest.MANIFEST_NAME).read_bytes())
    first = lines.of_type(manifest.LineType.SEGMENT)[0].obj
    assert first is not None
    boundary = (first["last_pts_us"] - first["first_pts_us"]) / 1e6
    problems = page_problems(page)
    log_in(page, url, store, "do-chromium")
    page.goto(f"{url}/recordings/{encrypted.a_id}")
    player = page.locator("#player")
    # play() is not awaited: with a key that never came it would wait for ever
    player.evaluate("video => { video.playbackRate = 2; video.play().catch(() => null); }")
    try:
        page.wait_for_function(f"() => document.querySelector('#player').currentTime > "
                               f"{boundary + 0.5}", timeout=20_000)
    except Exception:
        state = player.evaluate("video => [video.dataset.playerState, video.currentTime, "
                                "video.readyState, String(video.error && video.error.message)]")
        pytest.fail(f"the player did not pass {boundary + 0.5} s: {state}, "
                    f"{problems.all()}, {page.locator('[role=alert]').all_inner_texts()}")
    assert player.evaluate("video => video.error === null && video.mediaKeys !== null")
    assert page.locator("[role=alert]").count() == 0
    screenshot(page, "staff-encrypted-playing")
    assert [p for p in problems.all() if not p.endswith("/favicon.ico)")] == []
    [release] = entries(store, "do-chromium", audit.Action.KEY_RELEASE)
    assert release.detail["key_id"] == encrypted.keys[encrypted.a_id].key_id.hex()
    assert len(entries(store, "do-chromium", audit.Action.PLAY)) == 1


def test_chromium_shows_why_when_the_key_is_refused(page: Any, encrypted: Encrypted) -> None:
    store, url = encrypted.store, encrypted.web.url
    log_in(page, url, store, "do-refused")
    # the page's play id is spent before its player asks: the station refuses the key
    page.route("**/static/player.js", lambda route: route.abort())
    page.goto(f"{url}/recordings/{encrypted.a_id}")
    play = page.locator("#player").get_attribute("data-play")
    csrf = page.locator("#player").get_attribute("data-csrf")
    key = encrypted.keys[encrypted.a_id]
    spent = page.evaluate("""async ([path, fields]) => (await fetch(path, {
        method: "POST", body: new URLSearchParams(fields), credentials: "same-origin"})).status""",
                          [f"/recordings/{encrypted.a_id}/clearkey",
                           {"csrf": csrf, "play": play, "request": request_for(key.key_id)}])
    assert spent == 200
    page.unroute("**/static/player.js")
    page.add_script_tag(url="/static/player.js")
    page.locator("#player").evaluate("video => { video.play().catch(() => null); }")
    alert = page.locator("[role=alert]")
    alert.wait_for()
    assert "refused the recording's key (HTTP 403)" in alert.inner_text()


# --- the export package

def unzip(package: Path, into: Path) -> Path:
    with zipfile.ZipFile(package) as bundle:
        bundle.extractall(into)
    return into


@pytest.mark.parametrize("request_ref", [None, "SAR-2026-0099"])
def test_the_export_holds_the_signed_encrypted_files_and_the_key(
        encrypted: Encrypted, tmp_path: Path, request_ref: str | None) -> None:
    store, key, recording_id = encrypted.store, encrypted.keys[encrypted.a_id], encrypted.a_id
    result = export_recording(store, recording_id, tmp_path / "package.zip", "do-export",
                              "CPS file", request_ref=request_ref)
    assert result.verified
    folder = unzip(result.path, tmp_path / "unzipped")
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True,
                          text=True)
    assert sums.returncode == 0, sums.stdout + sums.stderr
    assert "content_key.json: OK" in sums.stdout
    signed = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
                             "station_key.pem", "-rawin", "-in", "SHA256SUMS", "-sigfile",
                             "SHA256SUMS.sig"], cwd=folder, capture_output=True, text=True)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    packaged = json.loads((folder / "content_key.json").read_text())
    assert packaged == {"recording_id": recording_id, "scheme": "cenc",
                        "key_id": key.key_id.hex(), "key": key.key.hex()}
    for segment in sorted(encrypted.a.glob("*.mp4")):  # the camera's own bytes
        assert (folder / recording_id / segment.name).read_bytes() == segment.read_bytes()

    readme = (folder / "README.txt").read_text()
    command = next(line for line in readme.splitlines() if "-decryption_key" in line)
    assert command.split()[:5] == ["ffmpeg", "-decryption_key", packaged["key"], "-seekable",
                                   "0"]
    clear = tmp_path / "clear.mp4"
    decrypted = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-decryption_key", packaged["key"],
         "-seekable", "0", "-i", str(folder / recording_id / "000001.mp4"), "-c", "copy",
         str(clear)], capture_output=True, text=True)
    assert (decrypted.returncode, decrypted.stderr) == (0, "")
    with av.open(str(clear)) as container:
        read = [read_frame_number(frame) for frame in container.decode(video=0)]
    numbers = [number for number in read if number is not None]
    assert numbers and len(numbers) == len(read)
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))

    checked = warm.run(["verify", "--key", str(folder / "device_key.pem"),
                        str(folder / recording_id)], env=environment(), cwd="/",
                       timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"key id {key.key_id.hex()}" in checked.stdout
    export = [e for e in audit.entries(store.engine) if e.action == audit.Action.EXPORT
              and e.detail["package_sha256"] == result.sha256]
    assert [e.detail["content_key_id"] for e in export] == [key.key_id.hex()]


def test_bwv_station_export_writes_the_key_or_says_why_it_cannot(encrypted: Encrypted,
                                                                 tmp_path: Path) -> None:
    key = encrypted.keys[encrypted.a_id]
    out = tmp_path / "cli.zip"
    done = warm.run(["station", "export", "--data", str(encrypted.station), encrypted.a_id,
                     "--out", str(out), "--purpose", "court bundle"], env=environment(),
                    timeout=120)
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(out) as package:
        assert json.loads(package.read("content_key.json"))["key"] == key.key.hex()
        assert "-decryption_key " + key.key.hex() in package.read("README.txt").decode()

    lost = tmp_path / "station-without-its-key"  # a restore that left the key file behind
    copy_station(encrypted.station, lost)
    (lost / encryption_key.ENCRYPTION_KEY_FILE).unlink()
    failed = warm.run(["station", "export", "--data", str(lost), encrypted.a_id, "--out",
                       str(tmp_path / "none.zip"), "--purpose", "court bundle"],
                      env=environment(), timeout=120)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "has lost its encryption key" in failed.stderr  # not a new key that opens nothing
    assert not (tmp_path / "none.zip").exists()
    assert not (lost / encryption_key.ENCRYPTION_KEY_FILE).exists()


def test_the_web_export_holds_the_key_and_a_station_without_its_key_says_so(
        encrypted: Encrypted, monkeypatch: pytest.MonkeyPatch) -> None:
    store, key = encrypted.store, encrypted.keys[encrypted.a_id]
    client = logged_in(encrypted.web.url, store, "disclosure", "do-web-export")
    try:
        player = player_of(client, encrypted.a_id)
        answer = client.post(f"/recordings/{encrypted.a_id}/export", {"purpose": "CPS file"})
        assert answer.status_code == 200, answer.text
        with zipfile.ZipFile(io.BytesIO(answer.content)) as package:
            assert json.loads(package.read("content_key.json"))["key"] == key.key.hex()
        # the station's encryption key file is gone (a restore without it): the player's
        # licence and the export both say why, and nothing is released
        monkeypatch.setattr(store, "identity", replace(store.identity, encryption=None))
        licence = client.post(player["clearkey"], {"play": player["play"],
                                                   "request": request_for(key.key_id)})
        assert licence.status_code == 500 and "no encryption key file" in licence.text
        export = client.post(f"/recordings/{encrypted.a_id}/export", {"purpose": "CPS file"})
        assert export.status_code == 500 and "no encryption key file" in export.text
        for failed in (licence, export):
            assert "Traceback" not in failed.text
            released_nothing(failed, key)
    finally:
        client.close()
    assert entries(store, "do-web-export", audit.Action.KEY_RELEASE) == []
    assert len(entries(store, "do-web-export", audit.Action.EXPORT)) == 1


def frame_hashes(path: Path, *args: str) -> list[str]:
    """Each decoded frame's MD5 (video and audio), in order per stream: ffmpeg's framemd5."""
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", *args, "-i", str(path), "-f",
                           "framemd5", "-"], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return sorted(f"{line.split(',')[0]} {line.split(',')[-1].strip()}"
                  for line in done.stdout.splitlines() if not line.startswith("#"))


def test_a_decrypted_export_has_clear_copies_with_both_hashes(encrypted: Encrypted,
                                                              tmp_path: Path) -> None:
    key = encrypted.keys[encrypted.a_id]
    out = tmp_path / "decrypted.zip"
    done = warm.run(["station", "export", "--data", str(encrypted.station), encrypted.a_id,
                     "--out", str(out), "--purpose", "for the jury", "--decrypted"],
                    env=environment(), timeout=300)
    assert done.returncode == 0, done.stderr
    exports = [e.detail for e in audit.entries(encrypted.store.engine)
               if e.action == audit.Action.EXPORT and e.detail["package_sha256"] == file_sha256(out)]
    assert exports == [{"purpose": "for the jury", "package_sha256": file_sha256(out),
                        "verified": True, "content_key_id": key.key_id.hex(),
                        "decrypted": True}]
    folder = unzip(out, tmp_path / "unzipped")
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True,
                          text=True)
    assert sums.returncode == 0 and "decrypted.json: OK" in sums.stdout, sums.stdout
    report = json.loads((folder / "decrypted.json").read_text())
    signed = {line["file"]: line["sha256"] for line in map(
        json.loads, (encrypted.a / manifest.MANIFEST_NAME).read_text().splitlines())
        if line["type"] == "segment"}
    assert [entry["file"] for entry in report["segments"]] == sorted(signed)
    for entry in report["segments"]:
        stored = folder / encrypted.a_id / entry["file"]
        clear = folder / "decrypted" / encrypted.a_id / entry["file"]
        assert entry["sha256"] == signed[entry["file"]] == file_sha256(stored)
        assert entry["decrypted_sha256"] == file_sha256(clear) != entry["sha256"]
        data = clear.read_bytes()
        assert b"encv" not in data and b"enca" not in data and b"senc" not in data
        # the oracle: ffmpeg decrypting the signed file with the key decodes the same pictures
        # and sound as ffmpeg decoding the clear copy with no key
        assert frame_hashes(clear) == frame_hashes(
            stored, "-decryption_key", key.key.hex(), "-seekable", "0")
    with av.open(str(folder / "decrypted" / encrypted.a_id / "000002.mp4")) as container:
        read = [read_frame_number(frame) for frame in container.decode(video=0)]
    assert read and None not in read
    [export] = [e for e in audit.entries(encrypted.store.engine)
                if e.action == audit.Action.EXPORT and e.detail["purpose"] == "for the jury"]
    assert export.detail["decrypted"] is True


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_decryptor_refuses_another_key_id_a_clear_or_a_damaged_segment(
        encrypted: Encrypted) -> None:
    key = encrypted.keys[encrypted.a_id]
    segment = (encrypted.a / "000001.mp4").read_bytes()
    other = encrypted.keys[encrypted.b.name]
    with pytest.raises(DecryptError, match=f"under key id {key.key_id.hex()}, not "):
        decrypt_segment(segment, other)
    clear = decrypt_segment(segment, key)
    with pytest.raises(DecryptError, match="has no encrypted track"):
        decrypt_segment(clear, key)
    for damaged in (segment[:len(segment) // 2], segment.replace(b"senc", b"sen_"),
                    segment.replace(b"tenc", b"ten_")):
        with pytest.raises(DecryptError):
            decrypt_segment(damaged, key)


def test_clear_copies_of_a_recording_in_the_clear_are_refused(encrypted: Encrypted,
                                                              tmp_path: Path) -> None:
    camera = DeviceKey.find(encrypted.a.parent.parent / "camera")
    assert camera is not None
    device_id = header_of(encrypted.a).device_id
    clear = make_recording(tmp_path / "clear", camera, device_id=device_id,
                           utc_start="2026-11-20T07:00:00.000000Z")
    assert ingest(encrypted.store, clear, device_id).verified
    with pytest.raises(NotEncryptedError, match="is not encrypted"):
        export_recording(encrypted.store, clear.name, tmp_path / "x.zip", "do-clear", "test",
                         decrypted=True)
    plain = export_recording(encrypted.store, clear.name, tmp_path / "y.zip", "do-clear", "test")
    with zipfile.ZipFile(plain.path) as package:
        assert not any(name.startswith(("content_key", "decrypted"))
                       for name in package.namelist())
    # its page plays it as before: no key to ask for, and the route has none to give
    client = logged_in(encrypted.web.url, encrypted.store, "disclosure", "do-clear-page")
    try:
        player = player_of(client, clear.name)
        assert "clearkey" not in player and player == {}
        answer = client.get(f"/recordings/{clear.name}")
        assert "data-segments=" in answer.text
        play = re.findall(r"media/000001\.mp4\?play=([^&\"]+)&quot;", answer.text)[0]
        refused = client.post(f"/recordings/{clear.name}/clearkey",
                              {"play": play, "request": request_for(bytes(16))})
        assert refused.status_code == 403
    finally:
        client.close()
    [refusal] = entries(encrypted.store, "do-clear-page", audit.Action.ACCESS_REFUSED)
    assert refusal.detail["reason"] == "the recording is not encrypted"


def test_a_redacted_copy_of_an_encrypted_recording_is_made_from_its_decrypted_footage(
        encrypted: Encrypted, tmp_path: Path) -> None:
    """Redaction (recorder.station.redact) reads an encrypted recording through the station's
    decryptor: every picture of the synthetic camera (no face in it) comes out in order, its
    burned-in frame number readable, and the audit entry says the footage was decrypted."""
    from recorder.station.redact import Plan, redact_recording
    from recorder.station.redact.detect import FaceDetector

    out = tmp_path / "redacted.mp4"
    # no face is this large: the cascade sometimes takes the burned-in text for one, and a mask
    # over the barcode strip would hide the frame numbers this test reads
    blind = FaceDetector(min_face=10_000)
    result = redact_recording(encrypted.store, Plan(encrypted.b.name), out, by="DO 7",
                              detector=blind)
    assert result.encrypted and result.rendered.tracks == []
    with av.open(str(out)) as container:
        numbers = [read_frame_number(frame) for frame in container.decode(video=0)]
    with av.open(str(encrypted.b / "000001.mp4"), options={
            "decryption_key": encrypted.keys[encrypted.b.name].key.hex()}) as container:
        first = read_frame_number(next(container.decode(video=0)))
    assert first is not None and numbers[0] == first
    assert numbers == list(range(first, first + len(numbers))) and len(numbers) >= 60
    [entry] = entries(encrypted.store, "DO 7", audit.Action.REDACT)
    assert entry.detail["decrypted"] is True and entry.detail["output_sha256"] == result.sha256
