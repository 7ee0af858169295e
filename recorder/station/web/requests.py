"""Requests from the public on the staff pages, for disclosure officers: intake of a written
request (who, when it arrived, the time window, place, description), its 31-day deadline, the
recordings its window matches (held at intake, pre-event seconds included), and its course:
received -> searched -> disclosed (a zip of the redacted copies, each approved by a second
person, downloaded from here; nothing unredacted goes to a requester) or refused with a reason.
Every page and step is an audit entry under the officer's account.
"""

from __future__ import annotations

import datetime
import shutil
import tempfile
import zipfile
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import public_requests
from ..audit import Action
from ..catalogue import shown
from ..errors import BadRequestError
from ..evidence_store import EvidenceStore
from ..export import sha256_of
from ..redact import approval
from ..redact.approval import Copy
from ..redact.review import Reviews, companions
from ..public_requests import RequestState, Status
from .access import Permission, may
from .auth import Visitor, check_csrf, visitor
from .html import e, form, page, table
from .pages import Refused
from .security import WebSettings, read_form

WITHHELD = "WITHHELD.txt"  # in a disclosure zip: the held recordings not disclosed, and why
FIELDS = (("reference", "reference", "text"), ("requester", "requester's name", "text"),
          ("received", "received on (date on the letter)", "date"),
          ("from", "from (UTC)", "datetime-local"), ("to", "to (UTC)", "datetime-local"),
          ("place", "place", "text"), ("description", "what they describe", "text"))


def _utc_us(text: str, name: str) -> int:
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise BadRequestError(f"{name} is not a date and time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp() * 1_000_000)


def request_routes(store: EvidenceStore, settings: WebSettings,
                   reviews: Reviews) -> list[Route]:
    """GET/POST /requests, GET /requests/{reference}, its status and export forms."""

    async def officer(request: Request) -> Visitor:
        who = await visitor(request, store, settings)
        if not may(who.user, Permission.REQUESTS):
            raise Refused(who, Permission.REQUESTS, None)
        return who

    async def audited(who: Visitor, detail: dict[str, object]) -> None:
        await run_in_threadpool(store.record_access, who.name, Action.REQUEST_VIEW, None,
                                dict(detail, client=who.client))

    def shell(who: Visitor, title: str, body: str, status: int = 200) -> Response:
        return page(title, body, user=who.name, csrf=who.session.csrf, status=status)

    async def index(request: Request) -> Response:
        who = await officer(request)
        states = await run_in_threadpool(public_requests.list_requests, store)
        await audited(who, {"page": "requests", "shown": len(states)})
        now = store.clock()
        rows = [[f'<a href="/requests/{e(s.row.reference)}">{e(s.row.reference)}</a>',
                 e(s.row.requester), e(shown(s.row.received_us, 10)), e(s.status),
                 _deadline(s, now), e(len(s.held))] for s in states]
        body = ("<h1>Requests from the public</h1>"
                "<p><a href='/requests/new'>log a new request</a></p>"
                + table(("reference", "requester", "received", "status", "deadline",
                         "recordings held"), rows))
        return shell(who, "requests", body)

    async def new(request: Request) -> Response:
        who = await officer(request)
        return shell(who, "new request", "<h1>Log a request from the public</h1>"
                     "<p>Every recording its window matches is held at once.</p>"
                     + form("/requests", "log the request", who.session.csrf, FIELDS))

    async def create(request: Request) -> Response:
        who = await officer(request)
        fields = await read_form(request)
        check_csrf(who, fields)
        received = _utc_us(fields.get("received", "") + "T00:00", "received on")
        made = await run_in_threadpool(
            lambda: public_requests.record_request(
                store, fields.get("reference", "").strip()[:128],
                fields.get("requester", "").strip()[:500],
                fields.get("description", "").strip()[:2000],
                _utc_us(fields.get("from", ""), "from"), _utc_us(fields.get("to", ""), "to"),
                who.name, received_us=received, place=fields.get("place", "").strip()[:500]))
        return RedirectResponse(f"/requests/{made.reference}", status_code=303)

    async def detail(request: Request) -> Response:
        who = await officer(request)
        reference = str(request.path_params["reference"])
        state = await run_in_threadpool(public_requests.request_state, store, reference)
        await audited(who, {"request": reference})
        redacted = {rid: [path.name for path in reviews.outputs(reference, rid)]
                    for rid in state.held}
        newest = await run_in_threadpool(approval.newest, store, reference)
        return shell(who, reference, _detail(state, who, store.clock(), redacted,
                                             may(who.user, Permission.REDACT), newest,
                                             may(who.user, Permission.APPROVE_REDACTION)))

    async def status(request: Request) -> Response:
        who = await officer(request)
        fields = await read_form(request)
        check_csrf(who, fields)
        reference = str(request.path_params["reference"])
        await run_in_threadpool(public_requests.set_status, store, reference,
                                fields.get("status", ""), who.name,
                                fields.get("note", "").strip()[:2000])
        return RedirectResponse(f"/requests/{reference}", status_code=303)

    async def export(request: Request) -> Response:
        who = await officer(request)
        fields = await read_form(request)
        check_csrf(who, fields)
        reference = str(request.path_params["reference"])
        state = await run_in_threadpool(public_requests.request_state, store, reference)
        if state.status != Status.SEARCHED:
            raise BadRequestError(f"request {reference} is {state.status}: review what it "
                                  "matches (searched) before disclosing")
        # A member of the public receives redacted copies only, each approved by a second
        # person (recorder.station.redact.approval): a recording held for the request without
        # one is withheld (named in WITHHELD.txt), with none there is nothing to send, and a
        # newest copy not approved (or changed since) stops the export
        directory = reviews.directory(reference)
        copies = {rid: copy for rid, copy in
                  (await run_in_threadpool(approval.newest, store, reference)).items()
                  if rid in state.held}
        if not copies:
            raise BadRequestError(f"request {reference}: no recording has a redacted copy yet; "
                                  "redact what is to be disclosed first (nothing unredacted "
                                  "goes to a requester)")
        waiting = [why for why in await run_in_threadpool(
            lambda: [approval.disclosable(store, directory, copy) for copy in copies.values()])
            if why is not None]
        if waiting:
            raise BadRequestError(f"request {reference}: nothing is disclosed until every "
                                  f"redacted copy is approved: {'; '.join(waiting)}")
        redacted = {rid: directory / copy.file for rid, copy in copies.items()}
        withheld = [rid for rid in state.held if rid not in redacted]
        scratch = Path(tempfile.mkdtemp(prefix="bwv-web-request-"))
        out = scratch / f"{reference}.zip"

        def build() -> None:
            with zipfile.ZipFile(out, "w") as bundle:
                for recording_id, output in sorted(redacted.items()):
                    for path in companions(output):  # with its approval record
                        bundle.write(path, f"redacted/{path.name}")
                    digest = sha256_of(output)
                    if digest != copies[recording_id].sha256:
                        raise BadRequestError(f"{output.name} changed while it was exported")
                    store.record_access(who.name, Action.EXPORT, recording_id, {
                        "request": reference, "redacted": output.name, "sha256": digest,
                        "approved_by": copies[recording_id].decided_by,
                        "client": who.client})
                if withheld:
                    bundle.writestr(WITHHELD, "".join(
                        f"{rid}: held for this request, not disclosed (no redacted copy)\n"
                        for rid in withheld))
            note = f"export downloaded from the staff pages ({who.client})"
            if withheld:
                note += f"; withheld, no redacted copy: {', '.join(withheld)}"
            public_requests.set_status(store, reference, Status.DISCLOSED, who.name, note)

        try:
            await run_in_threadpool(build)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return FileResponse(out, media_type="application/zip", filename=out.name,
                            background=BackgroundTask(shutil.rmtree, scratch, True))

    return [Route("/requests", index, methods=["GET"]),
            Route("/requests", create, methods=["POST"]),
            Route("/requests/new", new, methods=["GET"]),
            Route("/requests/{reference}", detail, methods=["GET"]),
            Route("/requests/{reference}/status", status, methods=["POST"]),
            Route("/requests/{reference}/export", export, methods=["POST"])]


def _deadline(state: RequestState, now_us: int) -> str:
    text = e(shown(state.deadline_us, 10))
    if state.status in (Status.DISCLOSED, Status.REFUSED):
        return text
    days = (state.deadline_us - now_us) // (86_400 * 1_000_000)
    return (f"<span class=failed>{text}: overdue</span>" if days < 0
            else f"{text} ({days} days left)")


def _detail(state: RequestState, who: Visitor, now_us: int, redacted: dict[str, list[str]],
            may_redact: bool, newest: dict[str, Copy], may_approve: bool) -> str:
    row = state.row
    csrf = who.session.csrf
    reference = e(row.reference)

    def item(rid: str) -> str:
        link = ""
        if may_redact:
            link = (f' <a class=redact href="/requests/{reference}/recordings/{e(rid)}/redact">'
                    "redact</a>")
        copies = "".join(f' <a href="/requests/{reference}/redacted/{e(name)}">{e(name)}</a>'
                         for name in redacted.get(rid, []))
        decision = ""
        if rid in newest:
            decision = f" <span class=decision>{e(newest[rid].file)}: {e(newest[rid].status())}"
            if may_approve:
                decision += (f' (<a class=approve href="/requests/{reference}/recordings/'
                             f'{e(rid)}/approve">watch and decide</a>)')
            decision += "</span>"
        return (f'<li><a href="/recordings/{e(rid)}">{e(rid)}</a>{link}'
                + (f" redacted copies:{copies}" if copies else "") + decision + "</li>")

    held = "".join(item(rid) for rid in state.held)
    actions = ""
    if state.status == Status.RECEIVED:
        actions = form(f"/requests/{e(row.reference)}/status", "the matches are reviewed",
                       csrf, hidden={"status": Status.SEARCHED})
    if state.status == Status.SEARCHED:
        actions = ("<h2>Disclose</h2>"
                   + form(f"/requests/{e(row.reference)}/export", "export and disclose", csrf))
    if state.status in (Status.RECEIVED, Status.SEARCHED):
        actions += "<h2>Refuse</h2>" + form(f"/requests/{e(row.reference)}/status", "refuse",
                                            csrf, (("note", "reason", "text"),),
                                            hidden={"status": Status.REFUSED})
    note = f"<p>{e(row.status_note)}</p>" if row.status_note else ""
    return (f"<p><a href='/requests'>all requests</a></p><h1>Request {e(row.reference)}</h1>"
            f"<p>from {e(row.requester)}, received {e(shown(row.received_us, 10))}, deadline "
            f"{_deadline(state, now_us)}</p>"
            f"<p>window {e(shown(row.window_start_us))} to {e(shown(row.window_end_us))}"
            f"{', at ' + e(row.place) if row.place else ''}: {e(row.description)}</p>"
            f"<p class=status>status: <strong>{e(state.status)}</strong> "
            f"({e(row.status_by or row.recorded_by)})</p>{note}"
            f"<h2>Recordings held for it</h2><ul class=held>{held or '<li>none</li>'}</ul>"
            + actions)
