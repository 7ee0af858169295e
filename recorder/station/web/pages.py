"""The staff pages: the recordings list with its filters, a recording's page (one player over
all its segments, markers, verification, holds, notes, export), its footage (and, for an
encrypted recording, its content key as a ClearKey licence: recorder.station.web.clearkey), and
the audit log.

Every handler first finds the visitor (recorder.station.web.auth: no session, no page), then
checks the role and the recording against recorder.station.web.access, and writes the audit
entry for what it shows or does, naming the account and the client address. A refusal is an
audit entry too.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from ...integrity.bmff import BoxFormatError
from ...integrity.request_signing import is_safe_name
from .. import accounts, audit, content_keys, notes, retention
from ..audit import Action
from ..device_records import officer_note
from ..errors import UnknownRecordingError
from ..evidence_store import EvidenceStore, Status
from ..export import export_recording
from ..media import MediaTypeError, blob_response, mime_type
from ..search import Filters, search
from .clearkey import licence, requested_key_ids
from .access import Permission, allowed, may
from .auth import Visitor, check_csrf, visitor
from .html import date, e, form, page, table
from .security import KEY_WINDOW_S, WebSettings, read_form

AUDIT_PAGE_ENTRIES = 200


class Refused(Exception):
    """The visitor may not do this (their role, or a recording not theirs to see)."""

    def __init__(self, who: Visitor, permission: str, recording_id: str | None,
                 detail: dict[str, Any] | None = None) -> None:
        super().__init__(f"{who.name} may not {permission}")
        self.who = who
        self.permission = permission
        self.recording_id = recording_id
        self.detail = detail or {}  # what the audit entry adds: why, which key ids


@dataclass
class _Play:
    user: str
    recording_id: str
    started: float  # time.monotonic() when the page was shown
    used: bool = False  # footage fetched under it
    key_released: bool = False  # the content key released to it (an encrypted recording)


class Plays:
    """The playbacks handed out with recording pages: a page view gives the player an id, and
    the first fetch of footage under it is the one audit entry of that playback (a player
    fetches each segment, and may fetch ranges of it, many requests for one viewing). A fetch
    without a live id of the same person and recording is a download, audited every time.

    For an encrypted recording the id is also what its content key is released to: once, and
    only within ``key_window_s`` of the page being shown."""

    def __init__(self, capacity: int = 10_000, key_window_s: float = KEY_WINDOW_S) -> None:
        self._plays: OrderedDict[str, _Play] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity
        self._key_window_s = key_window_s

    def start(self, user: str, recording_id: str) -> str:
        play = secrets.token_urlsafe(16)
        with self._lock:
            self._plays[play] = _Play(user, recording_id, time.monotonic())
            while len(self._plays) > self._capacity:
                self._plays.popitem(last=False)
        return play

    def first_use(self, play: str, user: str, recording_id: str) -> bool | None:
        """True the first time ``play`` is used, False after; None if it is not a playback of
        this user and recording."""
        with self._lock:
            found = self._plays.get(play)
            if found is None or (found.user, found.recording_id) != (user, recording_id):
                return None
            first = not found.used
            found.used = True
            return first

    def release_key(self, play: str, user: str, recording_id: str) -> str | None:
        """None when ``play`` may have the recording's content key now (and marks it as
        released); else why not."""
        with self._lock:
            found = self._plays.get(play)
            if found is None or (found.user, found.recording_id) != (user, recording_id):
                return "not a playback of this person and recording"
            if time.monotonic() - found.started > self._key_window_s:
                return "the playback has expired: reload the page"
            if found.key_released:
                return "the key was already released to this playback"
            found.key_released = True
            return None


def team_officers(store: EvidenceStore, user: accounts.User) -> frozenset[str]:
    """The officer ids of the officer accounts in ``user``'s team."""
    if user.team is None:
        return frozenset()
    return frozenset(other.officer_id for other in accounts.list_users(store.engine)
                     if other.team == user.team and other.role == "officer"
                     and other.officer_id is not None and not other.disabled)


def visible_officers(store: EvidenceStore, user: accounts.User) -> frozenset[str] | None:
    """The officers whose recordings ``user`` sees; None: every recording."""
    if user.role == "officer":
        return frozenset({user.officer_id}) if user.officer_id else frozenset()
    if user.role == "supervisor":
        own = {user.officer_id} if user.officer_id else set()
        return team_officers(store, user) | own
    return None


def web_routes(store: EvidenceStore, settings: WebSettings) -> list[Route]:
    """The routes of the staff pages (login aside: recorder.station.web.auth)."""
    plays = Plays(key_window_s=settings.key_window_s)

    def record(who: Visitor, action: str, recording_id: str | None,
               detail: dict[str, Any]) -> None:
        store.record_access(who.name, action, recording_id, dict(detail, client=who.client))

    async def audited(who: Visitor, action: str, recording_id: str | None,
                      detail: dict[str, Any]) -> None:
        await run_in_threadpool(record, who, action, recording_id, detail)

    def shell(who: Visitor, title: str, body: str, status: int = 200) -> Response:
        return page(title, body, user=who.name, csrf=who.session.csrf, status=status)

    async def require(who: Visitor, permission: str, recording_id: str | None = None) -> Any:
        """The recording's row when ``who`` may do ``permission`` on it (or on none, when
        ``recording_id`` is None); Refused otherwise. An unknown recording and one not theirs
        to see are refused alike: a page must not tell which recording ids exist."""
        if recording_id is None:
            if not may(who.user, permission):
                raise Refused(who, permission, None)
            return None
        if not is_safe_name(recording_id):
            raise Refused(who, permission, None)
        try:
            row = await run_in_threadpool(store.recording, recording_id)
        except UnknownRecordingError:
            raise Refused(who, permission, recording_id) from None
        team = await run_in_threadpool(team_officers, store, who.user)
        if not allowed(who.user, permission, row, team):
            raise Refused(who, permission, recording_id)
        return row

    async def posted(request: Request, permission: str) -> tuple[Visitor, dict[str, str], str]:
        """The visitor, form and recording of a state-changing POST, once the session, the
        CSRF token and ``permission`` on the recording have all passed."""
        who = await visitor(request, store, settings)
        fields = await read_form(request)
        check_csrf(who, fields)
        recording_id = str(request.path_params["recording_id"])
        await require(who, permission, recording_id)
        return who, fields, recording_id

    def missing(who: Visitor, what: str) -> Response:
        return shell(who, what, f"<p class=failed role=alert>{e(what.capitalize())} needs a "
                     "stated reason or purpose.</p>", status=400)

    async def index(request: Request) -> Response:
        who = await visitor(request, store, settings)
        if not may(who.user, Permission.LIST):
            return shell(who, "bwv station", _home_without_recordings(who))
        filters = Filters.from_query(dict(request.query_params))
        officers = await run_in_threadpool(visible_officers, store, who.user)
        found = await run_in_threadpool(search, store.engine, filters, officers)
        await audited(who, Action.LIST, None, dict(filters.audit_detail(), shown=len(found.rows),
                                                   total=found.total))
        summary = ""
        if officers is None:  # the station's counts, for those who see every recording
            counts = await run_in_threadpool(retention.stats, store)
            summary = ", ".join(f"{name.replace('_', ' ')} {value}"
                                for name, value in counts.items() if name != "bytes_stored")
        requests = ("<p><a href='/requests'>requests from the public</a></p>"
                    if may(who.user, Permission.REQUESTS) else "")
        if may(who.user, Permission.APPROVE_REDACTION):
            requests += "<p><a href='/approvals'>redacted copies awaiting approval</a></p>"
        return shell(who, "recordings", f"<p>{e(summary)}</p>" * bool(summary) + requests
                     + _list_page(found, filters, dict(request.query_params)))

    async def recording(request: Request) -> Response:
        who = await visitor(request, store, settings)
        recording_id = str(request.path_params["recording_id"])
        row = await require(who, Permission.VIEW, recording_id)
        holdings = await run_in_threadpool(store.holdings, recording_id)
        holds = await run_in_threadpool(retention.active_holds, store, recording_id)
        marks = await run_in_threadpool(store.markers, recording_id)
        written = await run_in_threadpool(notes.notes_of, store, recording_id)
        await audited(who, Action.VIEW, recording_id, {"page": "recording"})
        team = await run_in_threadpool(team_officers, store, who.user)
        player = ""
        if (allowed(who.user, Permission.PLAY, row, team) and row.status != Status.DELETED
                and holdings.segments):
            mime = await run_in_threadpool(_mime_of, store, holdings.segments)
            play = plays.start(who.name, recording_id)
            urls = [f"/recordings/{recording_id}/media/{file}?play={play}"
                    for file in sorted(holdings.segments)]
            wrapped = await run_in_threadpool(content_keys.wrapped_key, store, recording_id)
            keys = ("" if wrapped is None else
                    f" data-clearkey='/recordings/{e(recording_id)}/clearkey' "
                    f"data-play='{e(play)}' data-csrf='{e(who.session.csrf)}'")
            player = (f"<video id=player controls data-segments='{e(json.dumps(urls))}' "
                      f"data-mime='{e(mime)}'{keys}></video>"
                      '<script src="/static/player.js" defer></script>'
                      if mime else "<p class=failed>The footage's codecs are not ones a "
                      "browser plays: download it instead.</p>")
        body = _recording_page(row, holdings.segments, holds, marks, written, player, who,
                               may_note=allowed(who.user, Permission.NOTE, row, team),
                               may_hold=allowed(who.user, Permission.HOLD, row, team),
                               may_release=allowed(who.user, Permission.RELEASE, row, team),
                               may_export=allowed(who.user, Permission.EXPORT, row, team))
        return shell(who, recording_id, body)

    async def media(request: Request) -> Response:
        who = await visitor(request, store, settings)
        recording_id = str(request.path_params["recording_id"])
        file = str(request.path_params["file"])
        play = request.query_params.get("play", "")[:64]
        first = plays.first_use(play, who.name, recording_id) if play else None
        permission = Permission.PLAY if first is not None else Permission.DOWNLOAD
        await require(who, permission, recording_id)
        if not is_safe_name(file):
            raise Refused(who, permission, recording_id)
        sha256 = await run_in_threadpool(store.segment_sha256, recording_id, file)
        if first is None:  # a download: every fetch is an entry
            await audited(who, Action.DOWNLOAD, recording_id,
                          {"file": file, "range": request.headers.get("range", "")[:100]})
        elif first:  # the first fetch of a playback
            await audited(who, Action.PLAY, recording_id, {"play": play})
        return await run_in_threadpool(blob_response, store.blobs, sha256,
                                       request.headers.get("range", ""))

    async def clearkey_licence(request: Request) -> Response:
        """The content key of an encrypted recording, as a ClearKey licence for the page's
        player: the same session, CSRF token and PLAY permission as its footage, a live play id
        of this person and recording (once, within the key window), and only key ids of this
        recording. Every release and every refusal is an audit entry."""
        who, fields, recording_id = await posted(request, Permission.PLAY)
        play = fields.get("play", "")[:64]
        asked = requested_key_ids(fields.get("request", ""))
        shown_ids = [key_id.hex() for key_id in asked]
        key = await run_in_threadpool(content_keys.content_key, store, recording_id)
        if key is None:
            raise Refused(who, Permission.PLAY, recording_id,
                          {"reason": "the recording is not encrypted", "key_ids": shown_ids})
        if any(key_id != key.key_id for key_id in asked):
            raise Refused(who, Permission.PLAY, recording_id,
                          {"reason": "a key id of another recording", "key_ids": shown_ids})
        why_not = plays.release_key(play, who.name, recording_id)
        if why_not is not None:
            raise Refused(who, Permission.PLAY, recording_id,
                          {"reason": why_not, "key_ids": shown_ids})
        await audited(who, Action.KEY_RELEASE, recording_id,
                      {"play": play, "key_id": key.key_id.hex()})
        return Response(licence([key]), media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    async def export(request: Request) -> Response:
        who, fields, recording_id = await posted(request, Permission.EXPORT)
        purpose = fields.get("purpose", "").strip()[:500]
        if not purpose:
            return missing(who, "an export")
        scratch = Path(tempfile.mkdtemp(prefix="bwv-web-export-"))
        out = scratch / f"{recording_id}.zip"

        def cleanup() -> None:
            out.unlink(missing_ok=True)
            scratch.rmdir()

        try:
            await run_in_threadpool(export_recording, store, recording_id, out, who.name,
                                    f"{purpose} (web, {who.client})")
        except BaseException:
            cleanup()  # an unknown or deleted recording leaves no directory behind
            raise
        return FileResponse(out, media_type="application/zip", filename=out.name,
                            background=BackgroundTask(cleanup))

    async def hold(request: Request) -> Response:
        who, fields, recording_id = await posted(request, Permission.HOLD)
        await run_in_threadpool(retention.place_hold, store, recording_id,
                                fields.get("reason", "")[:500], fields.get("case", "")[:128],
                                who.name)
        return _back_to(recording_id)

    async def release(request: Request) -> Response:
        who, fields, recording_id = await posted(request, Permission.RELEASE)
        reason = fields.get("reason", "").strip()[:500]
        if not reason:
            return missing(who, "a release")
        await run_in_threadpool(retention.release_holds, store, recording_id, who.name, reason)
        return _back_to(recording_id)

    async def note(request: Request) -> Response:
        who, fields, recording_id = await posted(request, Permission.NOTE)
        await run_in_threadpool(notes.add_note, store, recording_id,
                                fields.get("text", "")[:notes.NOTE_MAX_CHARS * 2], who.name,
                                {"client": who.client})
        return _back_to(recording_id)

    async def audit_log(request: Request) -> Response:
        who = await visitor(request, store, settings)
        await require(who, Permission.AUDIT)
        user = request.query_params.get("user", "")[:128]
        recording_id = request.query_params.get("recording", "")[:128]
        entries = await run_in_threadpool(_audit_entries, store, user, recording_id)
        await audited(who, Action.AUDIT_VIEW, None,
                      {name: value for name, value in (("user", user),
                                                       ("recording", recording_id)) if value})
        return shell(who, "audit log", _audit_page(entries, user, recording_id))

    return [Route("/", index, methods=["GET"]),
            Route("/audit", audit_log, methods=["GET"]),
            Route("/recordings/{recording_id}", recording, methods=["GET"]),
            Route("/recordings/{recording_id}/media/{file}", media, methods=["GET"]),
            Route("/recordings/{recording_id}/clearkey", clearkey_licence, methods=["POST"]),
            Route("/recordings/{recording_id}/export", export, methods=["POST"]),
            Route("/recordings/{recording_id}/hold", hold, methods=["POST"]),
            Route("/recordings/{recording_id}/release", release, methods=["POST"]),
            Route("/recordings/{recording_id}/notes", note, methods=["POST"])]


def _mime_of(store: EvidenceStore, segments: dict[str, str]) -> str | None:
    """The player's media type, from the first segment's moov (its first megabyte)."""
    with store.blobs.open(segments[min(segments)]) as blob:
        head = blob.read(1 << 20)
    try:
        return mime_type(head)
    except (MediaTypeError, BoxFormatError):
        return None


def _back_to(recording_id: str) -> Response:
    from starlette.responses import RedirectResponse

    return RedirectResponse(f"/recordings/{recording_id}", status_code=303)


def _home_without_recordings(who: Visitor) -> str:
    links = []
    if may(who.user, Permission.AUDIT):
        links.append("<li><a href='/audit'>the audit log</a></li>")
    return (f"<h1>bwv station</h1><p>Logged in as {e(who.name)} ({e(who.user.role)}): this "
            f"role sees no recordings.</p><ul>{''.join(links)}</ul>")


def _list_page(found: Any, filters: Filters, query: dict[str, str]) -> str:
    def field(name: str, label: str, value: str, kind: str = "text") -> str:
        return (f'<label>{e(label)} <input name="{e(name)}" type="{e(kind)}" '
                f'value="{e(value)}"></label> ')

    search_form = ("<form method=get action=/ class=filters>"
                   + field("officer", "officer", filters.officer)
                   + field("device", "device", filters.device)
                   + field("from", "from", filters.date_from, "date")
                   + field("to", "to", filters.date_to, "date")
                   + field("case", "case reference", filters.case)
                   + _select("status", ("", "receiving", "verified", "failed", "deleted"),
                             filters.status)
                   + _select("held", ("", "yes", "no"), filters.held)
                   + _select("markers", ("", "yes", "no"), filters.markers)
                   + _select("sort", ("recorded", "received", "officer", "device"), filters.sort)
                   + "<button>search</button></form>")
    rows = []
    for row in found.rows:
        name = e(row.recording_id)
        link = (name if row.status == Status.DELETED
                else f'<a href="/recordings/{name}">{name}</a>')
        clock = (f" <span class=flag>camera clock: {e(row.clock_flag)}</span>"
                 if row.clock_flag else "")
        rows.append([link, e(row.device_id), e(officer_note(row)), date(row.recorded_us) + clock,
                     f"<span class={e(row.status)}>{e(row.status)}</span>",
                     e(row.segment_count), date(row.retain_until_us, 10),
                     f"<span class=failed>{e(row.device_flag or '')}</span>"])
    pager = ""
    if found.pages > 1:
        links = []
        for number in (found.page - 1, found.page + 1):
            if 1 <= number <= found.pages:
                target = urlencode(dict(query, page=str(number)))
                links.append(f'<a href="/?{e(target)}">page {number}</a>')
        pager = f"<p>page {found.page} of {found.pages} " + " ".join(links) + "</p>"
    return (f"<h1>Recordings</h1>{search_form}<p>{found.total} found</p>"
            + table(("recording", "device", "officer", "recorded", "status", "segments",
                     "kept until", "flag"), rows) + pager)


def _select(name: str, options: tuple[str, ...], chosen: str) -> str:
    items = "".join(f'<option value="{e(option)}"{" selected" if option == chosen else ""}>'
                    f"{e(option or 'any')}</option>" for option in options)
    return f'<label>{e(name)} <select name="{e(name)}">{items}</select></label> '


def _recording_page(row: Any, segments: dict[str, str], holds: list[retention.Hold],
                    marks: list[Any], written: list[notes.Note], player: str, who: Visitor, *,
                    may_note: bool, may_hold: bool, may_release: bool, may_export: bool) -> str:
    name = e(row.recording_id)
    csrf = who.session.csrf
    report = json.loads(row.verify_report) if row.verify_report else {}
    problems = "".join(f"<li>{e(p.get('where'))}: {e(p.get('message'))}</li>"
                       for p in report.get("problems", []) if isinstance(p, dict))
    hold_items = "".join(f"<li>case {e(h.case_ref)}: {e(h.reason)} ({e(h.placed_by)}, "
                         f"{date(h.placed_us)})</li>" for h in holds) or "<li>none</li>"
    marker_items = "".join(_marker(m, row.first_pts_us) for m in marks) or "<li>none</li>"
    files = "".join(f"<li><code>{e(file)}</code> sha256 <code>{e(sha)}</code></li>"
                    for file, sha in sorted(segments.items()))
    note_items = "".join(f"<li><p class=note-text>{e(n.text)}</p><p class=note-by>"
                         f"{e(n.author)}, {date(n.written_us)}</p></li>"
                         for n in written) or "<li>none</li>"
    note_form = ""
    if may_note:
        note_form = (f'<form method=post action="/recordings/{name}/notes">'
                     f'<input type=hidden name=csrf value="{e(csrf)}">'
                     "<label>add a note (kept for good: notes are never edited or deleted) "
                     f"<textarea name=text maxlength={notes.NOTE_MAX_CHARS} required>"
                     "</textarea></label> <button>add note</button></form>")
    actions = ""
    if may_hold:
        actions += "<h3>Flag as evidence</h3>" + form(
            f"/recordings/{name}/hold", "place hold", csrf,
            (("reason", "reason", "text"), ("case", "case reference", "text")))
    if may_release and holds:
        actions += "<h3>Release the holds</h3>" + form(
            f"/recordings/{name}/release", "release", csrf, (("reason", "reason", "text"),))
    if may_export:
        actions += "<h3>Export package</h3>" + form(
            f"/recordings/{name}/export", "export", csrf, (("purpose", "purpose", "text"),))
    flag = f"<p class=failed>FLAGGED: {e(row.device_flag)}</p>" if row.device_flag else ""
    clock = (f" <span class=flag>camera clock: {e(row.clock_flag)}</span>"
             if row.clock_flag else "")
    return (f"<p><a href='/'>all recordings</a></p><h1>{name}</h1>"
            f"<p>device {e(row.device_id)}, officer {e(officer_note(row))}, recorded "
            f"{date(row.recorded_us)}{clock}, received {date(row.received_us)}, kept until "
            f"{date(row.retain_until_us)}</p>{flag}"
            f"<p class={e(row.status)}>verification: {e(row.verify_summary or '')}</p>"
            f"<ul>{problems}</ul>{player}<h2>Markers</h2><ul class=markers>{marker_items}</ul>"
            f"<h2>Holds</h2><ul>{hold_items}</ul>"
            f"<h2>Notes</h2><ul class=notes>{note_items}</ul>{note_form}{actions}"
            f"<h2>Segments</h2><ul>{files}</ul>")


def _marker(mark: Any, first_pts_us: int | None) -> str:
    """A marker, with a button that seeks the player to it (0 s on the player is segment 1's
    first frame) when its place in the footage is known."""
    if mark.pts_us is None or first_pts_us is None or mark.pts_us < first_pts_us:
        return f"<li>{e(mark.utc)}</li>"
    seconds = (mark.pts_us - first_pts_us) / 1e6
    return (f"<li><button type=button data-seek='{seconds:.3f}'>{seconds:.1f} s</button> "
            f"{e(mark.utc)}</li>")


def _audit_entries(store: EvidenceStore, user: str, recording_id: str) -> list[audit.AuditEntry]:
    found = [entry for entry in audit.entries(store.engine, recording_id or None)
             if not user or entry.actor == user]
    return found[-AUDIT_PAGE_ENTRIES:]


def _audit_page(entries: list[audit.AuditEntry], user: str, recording_id: str) -> str:
    filters = ("<form method=get action=/audit class=filters>"
               f'<label>user <input name=user value="{e(user)}"></label> '
               f'<label>recording <input name=recording value="{e(recording_id)}"></label> '
               "<button>filter</button></form>")
    rows = [[e(entry.seq), e(audit_time(entry)), e(entry.actor), e(entry.action),
             e(entry.recording_id or ""), f"<code>{e(json.dumps(dict(entry.detail)))}</code>"]
            for entry in reversed(entries)]
    return (f"<h1>Audit log</h1>{filters}<p>the newest {len(entries)} entries shown</p>"
            + table(("seq", "at", "who", "action", "recording", "detail"), rows))


def audit_time(entry: audit.AuditEntry) -> str:
    return str(json.loads(entry.line).get("at", ""))
