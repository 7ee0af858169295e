"""The review of a redaction on the staff pages, for disclosure officers (the ``redact``
permission): from a public request's page, for each recording held for it, a page that finds
the face tracks once (recorder.station.redact.review keeps them), lists them (id, first and last
time, frames), and takes what the redacted copy should be: tracks left visible (the requester),
boxes drawn by hand with keyframes, muted or bleeped audio ranges, the mask. Rendering runs in
the background, one piece of work per recording at a time; the page shows its progress and
reloads itself (a meta refresh) until it is done. The copy and its signed report are kept with
the request (its export discloses them instead of the original) and downloaded from here.

A copy is disclosed only once a second person approves it (recorder.station.redact.approval):
anyone with the ``approve_redaction`` permission but the one who rendered it watches the newest
copy on its approval page, ``/requests/{reference}/recordings/{recording_id}/approve``, and
approves or rejects it (with a reason); ``/approvals`` lists the copies awaiting a decision.

Every page, start, decision and download is an audit entry under the account, and the
redaction itself is the ``redact`` entry of recorder.station.redact.job; a refusal is audited
by the app's handler (recorder.station.web). Forms are POSTs with the session's CSRF token.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from ...integrity.request_signing import is_safe_name
from .. import public_requests
from ..audit import Action
from ..catalogue import shown as shown_time
from ..errors import BadRequestError, StationError
from ..evidence_store import EvidenceStore
from ..export import sha256_of
from ..public_requests import RequestState, Status
from ..redact import approval
from ..redact.approval import Copy, OwnCopyError
from ..redact.plan import MASKS, AudioRange, BadPlanError, ManualBox, Plan, parse_box, \
    parse_range
from ..redact.review import BusyError, Detected, Job, Reviews, companions
from .access import Permission, may
from .auth import Visitor, check_csrf, visitor
from .html import e, page, table
from .pages import Refused
from .security import WebSettings, read_form

REFRESH_S = 2
MAX_BOXES = 50
MAX_RANGES = 50
_SPLIT = re.compile(r"[\s,]+")


class NoSuchRedactionError(StationError):
    """No redacted copy of that name for the request."""

    status = 404
    code = "no_such_redaction"


def redaction_routes(store: EvidenceStore, settings: WebSettings,
                     reviews: Reviews) -> list[Route]:
    """GET /requests/{reference}/recordings/{recording_id}/redact and its two forms, its
    approval page and form; GET /requests/{reference}/redacted/{file}; GET /approvals."""

    async def officer(request: Request, permission: str = Permission.REDACT,
                      also: str | None = None) -> tuple[Visitor, str, RequestState]:
        """The person, the request's reference and state: Refused unless the role may do
        ``permission`` (or ``also``) and the recording is held for the request."""
        who = await visitor(request, store, settings)
        recording_id = str(request.path_params.get("recording_id", ""))
        named = recording_id if is_safe_name(recording_id) else None
        if not may(who.user, permission) and not (also is not None and may(who.user, also)):
            raise Refused(who, permission, named)
        reference = str(request.path_params["reference"])
        state = await run_in_threadpool(public_requests.request_state, store, reference)
        if recording_id and recording_id not in state.held:
            raise Refused(who, permission, named,
                          {"reason": f"not held for request {reference}"})
        return who, reference, state

    async def audited(who: Visitor, action: str, recording_id: str | None,
                      detail: dict[str, Any]) -> None:
        await run_in_threadpool(store.record_access, who.name, action, recording_id,
                                dict(detail, client=who.client))

    def shown(who: Visitor, reference: str, state: RequestState, recording_id: str,
              error: str | None = None, status: int = 200,
              fields: dict[str, str] | None = None) -> Response:
        job = reviews.job(recording_id)
        busy = job is not None and not job.finished
        decided = {copy.file: copy for copy in approval.copies(store, reference)}
        body = _page(reference, state, recording_id, who.session.csrf, job,
                     reviews.detected(recording_id),
                     [path.name for path in reviews.outputs(reference, recording_id)],
                     error, fields or {}, decided)
        return page(f"redact {recording_id}", body, user=who.name, csrf=who.session.csrf,
                    status=status, refresh_s=REFRESH_S if busy and error is None else None)

    async def review(request: Request) -> Response:
        who, reference, state = await officer(request)
        recording_id = str(request.path_params["recording_id"])
        job = reviews.job(recording_id)
        await audited(who, Action.REQUEST_VIEW, recording_id,
                      {"request": reference, "page": "redact",
                       **({"work": job.kind, "percent": job.percent} if job else {})})
        return shown(who, reference, state, recording_id)

    async def started(request: Request) -> tuple[Visitor, str, RequestState, str,
                                                   dict[str, str]]:
        who, reference, state = await officer(request)
        fields = await read_form(request)
        check_csrf(who, fields)
        if state.status not in (Status.RECEIVED, Status.SEARCHED):
            raise BadRequestError(f"request {reference} is {state.status}: nothing more is "
                                  "redacted for it")
        return who, reference, state, str(request.path_params["recording_id"]), fields

    async def find_faces(request: Request) -> Response:
        who, reference, state, recording_id, _ = await started(request)
        try:
            reviews.find_faces(recording_id, who.name, reference)
        except BusyError as exc:
            return shown(who, reference, state, recording_id, str(exc), 409)
        await audited(who, Action.REQUEST_VIEW, recording_id,
                      {"request": reference, "started": "finding faces"})
        return RedirectResponse(_path(reference, recording_id), status_code=303)

    async def render(request: Request) -> Response:
        who, reference, state, recording_id, fields = await started(request)
        detected = reviews.detected(recording_id)
        try:
            if detected is None:
                raise BadPlanError("find the faces first")
            plan = _plan(recording_id, fields, detected)
            reviews.render(plan, who.name, reference, who.client)
        except (BadPlanError, BusyError) as exc:  # the plan's words name the CLI's options
            return shown(who, reference, state, recording_id, str(exc).removeprefix("--"),
                         409 if isinstance(exc, BusyError) else 400, fields)
        await audited(who, Action.REQUEST_VIEW, recording_id,
                      {"request": reference, "started": "rendering",
                       "operations": plan.operations()})
        return RedirectResponse(_path(reference, recording_id), status_code=303)

    async def still(request: Request) -> Response:
        """A track's small still, for the page (served no-store, as every answer here)."""
        await officer(request)
        recording_id = str(request.path_params["recording_id"])
        detected = reviews.detected(recording_id)
        track = str(request.path_params["track"])
        jpeg = None
        if detected is not None and track.isdigit():
            jpeg = detected.stills.get(int(track))
        if jpeg is None:
            raise NoSuchRedactionError(f"no still of track {track[:20]}")
        return Response(jpeg, media_type="image/jpeg")

    async def download(request: Request) -> Response:
        who, reference, _ = await officer(request, Permission.REDACT,
                                          Permission.APPROVE_REDACTION)
        name = str(request.path_params["file"])
        for output in reviews.outputs(reference):
            for path in companions(output):
                if path.name == name and path.is_file():
                    recording_id = output.name.rsplit("-redacted-", 1)[0]
                    digest = await run_in_threadpool(sha256_of, path)
                    await audited(who, Action.DOWNLOAD, recording_id,
                                  {"request": reference, "redacted": name, "sha256": digest})
                    kind = "video/mp4" if name.endswith(".mp4") else (
                        "application/json" if name.endswith(".json") else
                        "application/octet-stream")
                    return FileResponse(path, media_type=kind, filename=name)
        raise NoSuchRedactionError(f"no redacted copy {name} for request {reference}")

    def approval_page(who: Visitor, reference: str, state: RequestState, recording_id: str,
                      copy: Copy | None, error: str | None = None,
                      status: int = 200) -> Response:
        body = _approval(reference, state, recording_id, who, copy, error)
        return page(f"approve {recording_id}", body, user=who.name, csrf=who.session.csrf,
                    status=status)

    async def newest_copy(reference: str, recording_id: str) -> Copy | None:
        found = await run_in_threadpool(approval.newest, store, reference)
        return found.get(recording_id)

    async def to_approve(request: Request) -> Response:
        who, reference, state = await officer(request, Permission.APPROVE_REDACTION)
        recording_id = str(request.path_params["recording_id"])
        copy = await newest_copy(reference, recording_id)
        await audited(who, Action.REQUEST_VIEW, recording_id,
                      {"request": reference, "page": "approve",
                       **({"redacted": copy.file, "sha256": copy.sha256} if copy else {})})
        return approval_page(who, reference, state, recording_id, copy)

    async def decide(request: Request) -> Response:
        who, reference, state = await officer(request, Permission.APPROVE_REDACTION)
        recording_id = str(request.path_params["recording_id"])
        fields = await read_form(request)
        check_csrf(who, fields)
        if state.status not in (Status.RECEIVED, Status.SEARCHED):
            raise BadRequestError(f"request {reference} is {state.status}: nothing more is "
                                  "approved for it")
        choice = fields.get("decision", "")
        if choice not in ("approve", "reject"):
            raise BadRequestError("decision: approve or reject")
        copy = await newest_copy(reference, recording_id)
        if copy is not None and copy.rendered_by == who.name:  # four eyes: never one's own
            raise Refused(who, Permission.APPROVE_REDACTION, recording_id,
                          {"reason": f"rendered {copy.file}: a second person approves it",
                           "request": reference})
        try:
            await run_in_threadpool(lambda: approval.decide(
                store, reviews.directory(reference), reference, recording_id,
                fields.get("sha256", ""), who.name, choice == "approve",
                fields.get("reason", ""), {"client": who.client}))
        except OwnCopyError as exc:  # rendered since the check above, by this very person
            raise Refused(who, Permission.APPROVE_REDACTION, recording_id,
                          {"reason": str(exc), "request": reference}) from None
        except StationError as exc:
            if exc.status >= 500:
                raise
            return approval_page(who, reference, state, recording_id,
                                 await newest_copy(reference, recording_id), str(exc),
                                 exc.status)
        return RedirectResponse(_approve_path(reference, recording_id), status_code=303)

    async def waiting(request: Request) -> Response:
        who = await visitor(request, store, settings)
        if not may(who.user, Permission.APPROVE_REDACTION):
            raise Refused(who, Permission.APPROVE_REDACTION, None)
        found = await run_in_threadpool(approval.undecided, store)
        await audited(who, Action.REQUEST_VIEW, None, {"page": "approvals",
                                                       "shown": len(found)})
        rows = [[e(copy.reference), e(copy.recording_id),
                 f'<a href="{e(_approve_path(copy.reference, copy.recording_id))}">'
                 f"{e(copy.file)}</a>", e(copy.rendered_by),
                 e(shown_time(copy.rendered_us))] for copy in found]
        body = ("<h1>Redacted copies awaiting approval</h1><p>A copy is disclosed only once "
                "someone other than the person who rendered it has watched and approved it.</p>"
                + (table(("request", "recording", "copy", "rendered by", "rendered at"), rows)
                   if rows else "<p>None.</p>"))
        return page("approvals", body, user=who.name, csrf=who.session.csrf)

    return [Route("/approvals", waiting, methods=["GET"]),
            Route("/requests/{reference}/recordings/{recording_id}/approve", to_approve,
                  methods=["GET"]),
            Route("/requests/{reference}/recordings/{recording_id}/approve", decide,
                  methods=["POST"]),
            Route("/requests/{reference}/recordings/{recording_id}/redact", review,
                  methods=["GET"]),
            Route("/requests/{reference}/recordings/{recording_id}/redact/faces", find_faces,
                  methods=["POST"]),
            Route("/requests/{reference}/recordings/{recording_id}/redact/render", render,
                  methods=["POST"]),
            Route("/requests/{reference}/recordings/{recording_id}/redact/tracks/{track}.jpg",
                  still, methods=["GET"]),
            Route("/requests/{reference}/redacted/{file}", download, methods=["GET"])]


def _path(reference: str, recording_id: str) -> str:
    from urllib.parse import quote

    return f"/requests/{quote(reference, safe='')}/recordings/{recording_id}/redact"


def _approve_path(reference: str, recording_id: str) -> str:
    return _path(reference, recording_id).removesuffix("/redact") + "/approve"


def _ranges(text: str, what: str) -> tuple[AudioRange, ...]:
    parts = [part for part in _SPLIT.split(text.strip()) if part]
    if len(parts) > MAX_RANGES:
        raise BadPlanError(f"{what}: at most {MAX_RANGES} ranges")
    try:
        return tuple(parse_range(part) for part in parts)
    except ValueError as exc:
        raise BadPlanError(f"{what}: {exc}") from None


def _boxes(text: str) -> tuple[ManualBox, ...]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_BOXES:
        raise BadPlanError(f"boxes: at most {MAX_BOXES}")
    boxes = []
    for number, line in enumerate(lines, 1):
        try:
            boxes.append(parse_box(line))
        except ValueError as exc:
            raise BadPlanError(f"box {number}: {exc}") from None
    return tuple(boxes)


def _plan(recording_id: str, fields: dict[str, str], detected: Detected) -> Plan:
    """The plan the form asks for (BadPlanError, one line, when it cannot be applied)."""
    mask = fields.get("mask", "")
    if mask not in MASKS:
        raise BadPlanError(f"mask: one of {', '.join(MASKS)}")
    keep = tuple(track.id for track in detected.tracks if fields.get(f"keep-{track.id}") == "on")
    unknown = [name for name in fields if name.startswith("keep-")
               and name.removeprefix("keep-") not in {str(t.id) for t in detected.tracks}]
    if unknown:
        raise BadPlanError(f"{unknown[0]}: no such face track")
    plan = Plan(recording_id, mask=mask, exclude_tracks=keep,
                mute=_ranges(fields.get("mute", ""), "mute"),
                bleep=_ranges(fields.get("bleep", ""), "bleep"),
                boxes=_boxes(fields.get("boxes", "")))
    plan.check(detected.duration_s, {track.id for track in detected.tracks},
               (detected.width, detected.height))
    return plan


def _approval(reference: str, state: RequestState, recording_id: str, who: Visitor,
              copy: Copy | None, error: str | None) -> str:
    """The newest copy in a player, its report, who rendered it, and the two forms."""
    target = e(_approve_path(reference, recording_id))
    token = f'<input type=hidden name=csrf value="{e(who.session.csrf)}">'
    parts = ["<p><a href='/approvals'>copies awaiting approval</a></p>",
             f"<h1>Approve the redacted copy of {e(recording_id)}</h1>",
             f"<p>for request {e(reference)} ({e(state.status)})</p>"]
    if error is not None:
        parts.append(f"<p class=failed role=alert>{e(error)}</p>")
    if copy is None:
        parts.append("<p>No redacted copy has been rendered yet.</p>")
        return "".join(parts)
    files = f"/requests/{e(reference)}/redacted/{e(copy.file)}"
    parts.append(f'<video controls preload=metadata src="{files}"></video>'
                 f"<p>{e(copy.file)}, SHA-256 <code>{e(copy.sha256)}</code>, rendered by "
                 f"{e(copy.rendered_by)} at {e(shown_time(copy.rendered_us))} (<a href='{files}"
                 f".report.json'>signed report</a>)</p>"
                 f"<p class=decision>{e(copy.status())}</p>")
    if copy.decision is None and state.status in (Status.RECEIVED, Status.SEARCHED):
        if copy.rendered_by == who.name:
            parts.append("<p>You rendered this copy: someone else approves it.</p>")
        else:
            hidden = f'{token}<input type=hidden name=sha256 value="{e(copy.sha256)}">'
            parts.append(
                "<p>Watch the whole copy: approve it only if no one but the requester can be "
                "seen or heard.</p>"
                f'<form method=post action="{target}">{hidden}'
                "<input type=hidden name=decision value=approve>"
                "<button>approve this copy for disclosure</button></form>"
                f'<form method=post action="{target}">{hidden}'
                "<input type=hidden name=decision value=reject>"
                "<label>reason <input name=reason required maxlength=2000></label>"
                "<button>reject this copy</button></form>")
    elif copy.approved:
        parts.append(f"<p>approval record: <a href='{files}.approval.json'>signed</a>, "
                     f"<a href='{files}.approval.json.sig'>signature</a></p>")
    return "".join(parts)


def _page(reference: str, state: RequestState, recording_id: str, csrf: str, job: Job | None,
          detected: Detected | None, outputs: list[str], error: str | None,
          fields: dict[str, str], decided: dict[str, Copy]) -> str:
    back = f"/requests/{e(reference)}"
    action = e(_path(reference, recording_id))
    token = f'<input type=hidden name=csrf value="{e(csrf)}">'
    parts = [f"<p><a href='{back}'>request {e(reference)}</a></p>",
             f"<h1>Redact {e(recording_id)}</h1>",
             f"<p>for request {e(reference)} ({e(state.status)})</p>"]
    if error is not None:
        parts.append(f"<p class=failed role=alert>{e(error)}</p>")
    busy = job is not None and not job.finished
    if job is not None:
        if busy:
            parts.append(f"<p class=progress>{e(job.kind)}: <progress max=100 "
                         f"value={job.percent}></progress> <strong>{job.percent}%</strong> "
                         f"({e(job.by)}; this page reloads itself)</p>")
        elif job.error is not None:
            parts.append(f"<p class=failed role=alert>{e(job.kind)} failed: "
                         f"{e(job.error)}</p>")
        elif job.output is not None:
            parts.append(f"<p class=done>rendered {e(job.output.name)} (100%)</p>")
    if detected is None:
        if not busy:
            parts.append("<h2>Faces</h2><p>The face detector has not been run on this "
                         "recording yet.</p>"
                         f'<form method=post action="{action}/faces">{token}'
                         "<button>find the faces</button></form>")
    else:
        parts.append(_render_form(action, token, detected, fields, busy,
                                  _path(reference, recording_id)))
    if outputs:
        links = "".join(
            f"<li><a href='/requests/{e(reference)}/redacted/{e(name)}'>{e(name)}</a> "
            f"(<a href='/requests/{e(reference)}/redacted/{e(name)}.report.json'>signed "
            f"report</a>, <a href='/requests/{e(reference)}/redacted/{e(name)}.report.json"
            f".sig'>signature</a>)"
            + (f" <span class=decision>{e(decided[name].status())}</span>" if name in decided
               else "") + "</li>" for name in outputs)
        approve = e(_approve_path(reference, recording_id))
        parts.append(f"<h2>Redacted copies</h2><ul class=redacted>{links}</ul><p>The "
                     "request's export discloses the newest copy instead of the original, "
                     "once someone other than the person who rendered it has watched and "
                     f"<a href='{approve}'>approved</a> it (a new render needs a new "
                     "approval).</p>")
    return "".join(parts)


def _render_form(action: str, token: str, detected: Detected, fields: dict[str, str],
                 busy: bool, path: str) -> str:
    fps = detected.fps
    rows = [[e(track.id),
             f'<img src="{e(path)}/tracks/{track.id}.jpg" alt="track {track.id}" height=96>'
             if track.id in detected.stills else "",
             f"{track.first / fps:.2f} s", f"{track.last / fps:.2f} s",
             e(track.last - track.first + 1), e(len(track.detections)),
             f'<label><input type=checkbox name="keep-{track.id}"'
             f'{" checked" if fields.get(f"keep-{track.id}") == "on" else ""}> '
             "leave visible</label>"] for track in detected.tracks]
    tracks = (table(("track", "face", "first seen", "last seen", "frames", "detections",
                     "keep"), rows)
              if rows else "<p>No face was found: only boxes drawn by hand are masked.</p>")
    chosen = fields.get("mask", MASKS[0])
    masks = "".join(f'<option value="{e(mask)}"{" selected" if mask == chosen else ""}>'
                    f"{e(mask)}</option>" for mask in MASKS)
    button = ("<p>Rendering is under way: wait for it to end.</p>" if busy
              else "<button>render the redacted copy</button>")
    return (f"<h2>Faces</h2><p>{len(detected.tracks)} face tracks in {detected.frames} frames "
            f"({detected.duration_s:.2f} s, {detected.width}x{detected.height}). Every track "
            "is masked unless it is left visible (the requester).</p>"
            f'<form method=post action="{action}/render">{token}{tracks}'
            f"<label>mask <select name=mask>{masks}</select></label>"
            "<label>boxes drawn by hand, one a line: keyframes T:X,Y,W,H separated by ; (T in "
            "seconds, X, Y, W, H in pixels of the footage; e.g. 1:20,30,80,40;3:200,30,80,40)"
            f'<textarea name=boxes rows=4>{e(fields.get("boxes", ""))}</textarea></label>'
            "<label>mute (seconds, START-END, separated by commas) <input name=mute "
            f'value="{e(fields.get("mute", ""))}"></label>'
            "<label>bleep (the same) <input name=bleep "
            f'value="{e(fields.get("bleep", ""))}"></label>{button}</form>')
