"""The station's player (recorder/station/static/player.js) in Debian's chromium under Playwright:
one <video> plays a real recording's segments as one timeline, across every segment boundary,
without a stall; markers seek; damage and refusals show an alert instead of hanging.

The page is served by a small Starlette app under uvicorn in a thread, as the station's pages
will be: a CSP without inline script (a script the player needed inline, or an eval, would be
refused and logged as a console error), player.js from the installed package, the segments
only to a request carrying the page's session cookie.

The recording is made by the recorder itself (the synthetic camera, 2 s segments, not in real
time): 1 s of pre-event without audio, then 5 s more, so segment 1's audio starts at 1.58 s.
"""

from __future__ import annotations

import base64
import html
import importlib.resources
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from recorder.capture.camera.test_pattern import read_frame_number
from recorder.station.media import mime_type
from support.browser import browser, page, page_problems, screenshot  # noqa: F401
from support.recording import manifest_lines, settings

COOKIE = "bwv_session=player-test"
CSP = ("default-src 'self'; script-src 'self'; media-src 'self' blob:; "
       "style-src 'self'; frame-ancestors 'none'")
SEEK_TO = 3.0  # seconds: inside the second segment (2.0 - 4.0)


@dataclass
class Site:
    """What the test server serves, and the media requests it saw."""

    segments: dict[str, bytes]
    mime: str
    requested: list[str] = field(default_factory=list)
    behind: float | None = None
    listed: list[str] = field(default_factory=list)  # on the page; default: every segment

    def __post_init__(self) -> None:
        self.listed = self.listed or sorted(self.segments)

    def page(self) -> str:
        urls = json.dumps([f"/media/{name}" for name in self.listed])
        behind = "" if self.behind is None else f" data-behind='{self.behind}'"
        return ("<!doctype html><html><head><meta charset=utf-8><title>player</title>"
                "<script src='/static/player.js' defer></script></head><body>"
                f"<video id=v controls muted data-segments='{html.escape(urls)}' "
                f"data-mime='{html.escape(self.mime)}'{behind}></video>"
                f"<p><button id=marker data-seek='{SEEK_TO}'>marker at 0:03</button></p>"
                "</body></html>")


def player_js() -> bytes:
    return (importlib.resources.files("recorder.station") / "static" / "player.js").read_bytes()


def site_app(site: Site) -> Starlette:
    async def index(request: Request) -> Response:
        response = HTMLResponse(site.page(), headers={"Content-Security-Policy": CSP})
        response.set_cookie("bwv_session", "player-test", httponly=True, samesite="strict")
        return response

    async def script(request: Request) -> Response:
        return Response(player_js(), media_type="text/javascript")

    async def media(request: Request) -> Response:
        name = str(request.path_params["name"])
        site.requested.append(name)
        if request.cookies.get("bwv_session") != "player-test":
            return Response("no session", status_code=403)
        if name not in site.segments:
            return Response("no such segment", status_code=404)
        return Response(site.segments[name], media_type="video/mp4")

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)  # a 404 here would be a console error of its own

    return Starlette(routes=[Route("/", index), Route("/static/player.js", script),
                             Route("/media/{name}", media), Route("/favicon.ico", no_icon)])


@pytest.fixture
def serve() -> Iterator[Any]:
    """Serve a Site on 127.0.0.1 (uvicorn in a thread); stopped after the test."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(site: Site) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(site_app(site), log_level="critical"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from recorder.board import BoardSettings, ScriptedBoard
    from recorder.cli.record import record

    tmp = tmp_path_factory.mktemp("player")
    with ScriptedBoard(BoardSettings()) as board:
        return record(settings(tmp), board, duration_s=5.0, trigger_after_s=1.0, realtime=False,
                      recordings_dir=tmp / "recordings")


def segments_of(recording: Path) -> dict[str, bytes]:
    return {line["file"]: (recording / line["file"]).read_bytes()
            for line in manifest_lines(recording) if line["type"] == "segment"}


def video_span(segment: Path) -> tuple[float, float]:
    """(first pts, end of the last frame) of the video track, in seconds, from ffprobe."""
    result = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                             "packet=pts_time,duration_time", "-of", "json", str(segment)],
                            capture_output=True, text=True, check=True, timeout=30)
    packets = json.loads(result.stdout)["packets"]
    times = [float(p["pts_time"]) for p in packets]
    last = max(packets, key=lambda p: float(p["pts_time"]))
    return min(times), float(last["pts_time"]) + float(last["duration_time"])


def frame_number_at(segment: Path, seconds: float) -> int:
    """The burned-in number of the frame shown at ``seconds``: the last one starting by then."""
    with av.open(str(segment)) as container:
        shown = [(frame.pts * frame.time_base, read_frame_number(frame))
                 for frame in container.decode(video=0)]
    number = max((entry for entry in shown if entry[0] <= Fraction(seconds)),
                 key=lambda entry: entry[0])[1]
    assert number is not None
    return number


# Samples currentTime every 20 ms while playing: the longest wall-clock time it stood still
# (not paused, not ended) is a stall, whatever events the browser fired; and the events too.
MONITOR = """(video) => {
  const log = {samples: [], events: [], maxFreezeMs: 0};
  let last = video.currentTime, since = performance.now();
  for (const name of ["waiting", "stalled", "playing", "seeked", "ended"]) {
    video.addEventListener(name, () => log.events.push([name, video.currentTime]));
  }
  setInterval(() => {
    const now = performance.now();
    if (video.paused || video.ended || video.currentTime !== last) {
      last = video.currentTime; since = now;
    } else {
      log.maxFreezeMs = Math.max(log.maxFreezeMs, now - since);
    }
    log.samples.push(video.currentTime);
  }, 20);
  window.playerLog = log;
}"""

FRAME = """(video) => {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const context = canvas.getContext("2d");
  context.drawImage(video, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let text = "";
  for (let i = 0; i < data.length; i += 8192) {
    text += String.fromCharCode.apply(null, data.subarray(i, i + 8192));
  }
  return [canvas.width, canvas.height, btoa(text)];
}"""


def shown_frame_number(page: Any) -> int | None:
    width, height, data = page.locator("#v").evaluate(FRAME)
    rgba = np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 4)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba[:, :, :3]), format="rgb24")
    return read_frame_number(frame)


def test_player_js_is_installed_with_the_package() -> None:
    text = player_js().decode()
    assert "MediaSource" in text and "data-segments" in text


def test_one_timeline_across_every_segment_without_a_stall(page: Any, serve: Any,
                                                          recording: Path) -> None:
    segments = segments_of(recording)
    names = sorted(segments)
    assert len(names) == 4
    spans = [video_span(recording / name) for name in names]
    total = sum(end - start for start, end in spans)  # ffprobe: the oracle of the length
    site = Site(segments, mime_type(segments[names[0]]), behind=1.0)
    page.goto(serve(site))
    video = page.locator("#v")
    page.wait_for_function("() => document.getElementById('v').readyState >= 2")
    # bounded: before playing, the first segment and two ahead, not the fourth
    assert site.requested == names[:3], site.requested

    video.evaluate(MONITOR)
    video.evaluate("v => { v.playbackRate = 3; return v.play(); }")
    page.wait_for_function("() => document.getElementById('v').ended")
    log = page.evaluate("window.playerLog")

    assert log["maxFreezeMs"] < 1000, log
    assert spans[0][1] == pytest.approx(2.0, abs=0.05)
    samples = log["samples"]
    assert any(spans[0][1] < t < spans[1][1] for t in samples), samples  # past the 1st boundary
    assert any(spans[3][0] < t for t in samples), samples  # into the last segment
    assert samples == sorted(samples), "currentTime went back"
    assert video.evaluate("v => v.duration") == pytest.approx(total, abs=0.05)
    assert video.evaluate("v => v.dataset.playerState") == "complete"
    assert site.requested == names  # each segment fetched once
    # played segments more than data-behind seconds back were removed from the buffer
    assert video.evaluate("v => v.buffered.start(0)") >= spans[1][0] - 0.05
    screenshot(page, "player-ended")
    assert page_problems(page).all() == []


def test_a_marker_seeks_into_the_second_segment(page: Any, serve: Any,
                                                recording: Path) -> None:
    segments = segments_of(recording)
    site = Site(segments, mime_type(segments["000001.mp4"]))
    page.goto(serve(site))
    page.wait_for_function("() => document.getElementById('v').readyState >= 2")
    video = page.locator("#v")
    video.evaluate("v => { window.seeked = false; "
                   "v.addEventListener('seeked', () => { window.seeked = true; }); }")
    page.click("#marker")
    page.wait_for_function("() => window.seeked && document.getElementById('v').readyState >= 2")
    assert video.evaluate("v => v.currentTime") == pytest.approx(SEEK_TO, abs=0.001)
    expected = frame_number_at(recording / "000002.mp4", SEEK_TO)
    assert shown_frame_number(page) == expected
    screenshot(page, "player-marker")
    assert page_problems(page).all() == []


@pytest.mark.parametrize("fault", ["damaged", "missing"])
def test_a_bad_second_segment_shows_an_alert(page: Any, serve: Any, recording: Path,
                                             fault: str) -> None:
    segments = segments_of(recording)
    site = Site(dict(segments), mime_type(segments["000001.mp4"]))
    if fault == "damaged":
        data = bytearray(segments["000002.mp4"])
        data[8:4096] = bytes(len(data[8:4096]))  # its moov is gone
        site.segments["000002.mp4"] = bytes(data)
    else:
        del site.segments["000002.mp4"]  # listed on the page, answered 404
    page.goto(serve(site))
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "segment 2" in alert.inner_text() or "decode" in alert.inner_text()
    assert page.locator("#v").evaluate("v => v.dataset.playerState") == "failed"
    screenshot(page, f"player-{fault}-segment")

