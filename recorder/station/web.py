"""The station's web pages: a list of recordings and a page per recording that plays its
segments in the browser, shows its verification, markers and holds, and offers the export
package. Every recording page view and every export is an audit entry.

The pages have no login of their own: serve them (``bwv station serve --web``) only behind a
reverse proxy that authenticates staff and passes the user name in ``X-Remote-User``; the audit
log records that name and the client address.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from ..integrity.request_signing import is_safe_name
from . import retention
from .audit import Action
from .catalogue import shown
from .device_records import officer_note
from .errors import UnknownRecordingError
from .evidence_store import EvidenceStore, Status
from .export import export_recording

_STYLE = """<style>
body{font:15px/1.4 system-ui,sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
.flag{color:#a60}
.verified{color:#060}.failed{color:#a00}.deleted{color:#888}video{width:32em;max-width:100%}
</style>"""


def _actor(request: Request) -> str:
    user = request.headers.get("x-remote-user", "anonymous")
    client = request.client.host if request.client else "unknown"
    return f"web:{user}@{client}"


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html><head><meta charset=utf-8><title>"
                        f"{html.escape(title)}</title>{_STYLE}</head><body>{body}</body></html>")


def _date(value: int | None) -> str:
    return shown(value)


def _clock(flag: str | None) -> str:
    """The camera-clock warning of a recording (camera_clock.ClockFlag), or nothing."""
    return "" if flag is None else f"<span class=flag>camera clock: {html.escape(flag)}</span>"


def web_routes(store: EvidenceStore) -> list[Route]:
    """The routes of the web pages, to add to the app."""

    async def index(request: Request) -> Response:
        rows = await run_in_threadpool(store.list_recordings)
        lines = []
        for row in rows:
            name = html.escape(row.recording_id)
            link = (name if row.status == Status.DELETED
                    else f'<a href="/recordings/{name}">{name}</a>')
            lines.append(
                f"<tr><td>{link}</td><td>{html.escape(row.device_id)}</td>"
                f"<td>{html.escape(officer_note(row))}</td><td>{_date(row.recorded_us)} "
                f"{_clock(row.clock_flag)}</td>"
                f"<td class={row.status}>{row.status}</td><td>{row.segment_count}</td>"
                f"<td>{shown(row.retain_until_us, 10)}</td>"
                f"<td class=failed>{html.escape(row.device_flag or '')}</td></tr>")
        counts = await run_in_threadpool(retention.stats, store)
        summary = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in counts.items()
                            if name != "bytes_stored")
        return _page("bwv station", f"<h1>Recordings</h1><p>{summary}</p><table><tr>"
                     "<th>recording</th><th>device</th><th>officer</th><th>recorded</th>"
                     "<th>status</th><th>segments</th><th>kept until</th><th>flag</th></tr>"
                     + "".join(lines) + "</table>")

    def _recording_id(request: Request) -> str:
        recording_id = str(request.path_params["recording_id"])
        if not is_safe_name(recording_id):
            raise UnknownRecordingError(f"no recording {recording_id}")
        return recording_id

    async def recording(request: Request) -> Response:
        recording_id = _recording_id(request)
        row = await run_in_threadpool(store.recording, recording_id)
        holdings = await run_in_threadpool(store.holdings, recording_id)
        holds = await run_in_threadpool(retention.active_holds, store, recording_id)
        await run_in_threadpool(store.record_access, _actor(request), Action.VIEW, recording_id,
                                {"page": "recording"})
        name = html.escape(recording_id)
        videos = "".join(
            f'<figure><video controls preload=metadata src="/recordings/{name}/media/'
            f'{html.escape(file)}"></video><figcaption>{html.escape(file)} sha256 '
            f"<code>{sha}</code></figcaption></figure>"
            for file, sha in sorted(holdings.segments.items()))
        hold_text = "".join(f"<li>case {html.escape(h.case_ref)}: {html.escape(h.reason)} "
                            f"({html.escape(h.placed_by)}, {_date(h.placed_us)})</li>"
                            for h in holds) or "<li>none</li>"
        report = json.loads(row.verify_report) if row.verify_report else {}
        problems = "".join(f"<li>{html.escape(p['where'])}: {html.escape(p['message'])}</li>"
                           for p in report.get("problems", []))
        body = (f"<p><a href='/'>all recordings</a></p><h1>{name}</h1>"
                f"<p>device {html.escape(row.device_id)}, officer "
                f"{html.escape(officer_note(row))}, recorded {_date(row.recorded_us)} "
                f"{_clock(row.clock_flag)}, received {_date(row.received_us)}, "
                f"kept until {_date(row.retain_until_us)}</p>"
                + (f"<p class=failed>FLAGGED: {html.escape(row.device_flag)}</p>"
                   if row.device_flag else "") +
                f"<p class={row.status}>verification: {html.escape(row.verify_summary or '')}"
                f"</p><ul>{problems}</ul><h2>Holds</h2><ul>{hold_text}</ul>"
                f"<p><a href='/recordings/{name}/export'>download the export package</a> "
                "(recorded in the audit log)</p>" + videos)
        return _page(recording_id, body)

    async def media(request: Request) -> Response:
        recording_id = _recording_id(request)
        file = str(request.path_params["file"])
        sha256 = await run_in_threadpool(store.segment_sha256, recording_id, file)
        # every fetch of footage is an access, audited like a page view (with the byte range, as
        # a player fetches a segment in parts): none can be pulled without a trace
        await run_in_threadpool(store.record_access, _actor(request), Action.VIEW_MEDIA,
                                recording_id, {"file": file,
                                               "range": request.headers.get("range", "")[:100]})
        local = store.blobs.local_path(sha256)
        if local is not None:
            return FileResponse(local, media_type="video/mp4")

        def chunks() -> Iterator[bytes]:
            with store.blobs.open(sha256) as blob:
                while chunk := blob.read(1 << 20):
                    yield chunk

        return StreamingResponse(chunks(), media_type="video/mp4")

    async def export(request: Request) -> Response:
        recording_id = _recording_id(request)
        scratch = Path(tempfile.mkdtemp(prefix="bwv-web-export-"))
        out = scratch / f"{recording_id}.zip"

        def cleanup() -> None:
            out.unlink(missing_ok=True)
            scratch.rmdir()

        try:
            await run_in_threadpool(export_recording, store, recording_id, out,
                                    _actor(request), "download from the station's web page")
        except BaseException:
            cleanup()  # an unknown or deleted recording leaves no directory behind
            raise

        return FileResponse(out, media_type="application/zip", filename=out.name,
                            background=BackgroundTask(cleanup))

    return [Route("/", index, methods=["GET"]),
            Route("/recordings/{recording_id}", recording, methods=["GET"]),
            Route("/recordings/{recording_id}/media/{file}", media, methods=["GET"]),
            Route("/recordings/{recording_id}/export", export, methods=["GET"])]
