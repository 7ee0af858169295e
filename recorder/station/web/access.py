"""Who may do what on the staff pages: each role's permissions, and which recordings a person
sees. Checked on the server for every request (recorder.station.web.pages), never only by
hiding a link.

| role | recordings seen | may |
|---|---|---|
| officer | their own | list, view, play, note |
| supervisor | their team's | list, view, play, note, hold (flag as evidence), approve a redacted copy |
| disclosure | all | list, view, play, note, download, export, public requests, redact, approve a redacted copy |
| custodian | all | list, view (no footage), note, hold, release |
| auditor | none | read the audit log |
| admin | none | staff accounts |

A recording is an officer's when the station assigned them the camera that made it
(``station_officer_id``, recorder.station.devices); only where the station had no assignment is
the officer id the camera signed believed. Approving a redacted copy (a second person, never
the one who rendered it: recorder.station.redact.approval) shows only that redacted copy, of
any team's recording held for a public request. A supervisor's team is every officer account with
the same team as theirs.
"""

from __future__ import annotations

from typing import Any

from ..accounts import User


class Permission:
    """What a request asks to do (plain strings: they go into the audit log)."""

    LIST = "list"
    VIEW = "view"
    PLAY = "play"  # footage in the page's player
    DOWNLOAD = "download"  # a segment file fetched outside a playback
    EXPORT = "export"
    NOTE = "note"  # add a note to a recording (recorder.station.notes)
    HOLD = "hold"
    RELEASE = "release"
    REQUESTS = "requests"  # public (subject access) requests
    REDACT = "redact"  # review and render a redacted copy for a public request
    APPROVE_REDACTION = "approve_redaction"  # watch another's redacted copy, approve or reject
    AUDIT = "audit"
    USERS = "users"


_P = Permission
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "officer": frozenset({_P.LIST, _P.VIEW, _P.PLAY, _P.NOTE}),
    "supervisor": frozenset({_P.LIST, _P.VIEW, _P.PLAY, _P.NOTE, _P.HOLD,
                             _P.APPROVE_REDACTION}),
    "disclosure": frozenset({_P.LIST, _P.VIEW, _P.PLAY, _P.NOTE, _P.DOWNLOAD, _P.EXPORT,
                             _P.REQUESTS, _P.REDACT, _P.APPROVE_REDACTION}),
    "custodian": frozenset({_P.LIST, _P.VIEW, _P.NOTE, _P.HOLD, _P.RELEASE}),
    "auditor": frozenset({_P.AUDIT}),
    "admin": frozenset({_P.USERS}),
}


def may(user: User, permission: str) -> bool:
    """Whether ``user``'s role allows ``permission`` at all (on some recording)."""
    return permission in ROLE_PERMISSIONS.get(user.role, frozenset())


def recording_officer(row: Any) -> str | None:
    """The officer a recording belongs to: the station's assignment, else the camera's word."""
    assigned: str | None = row.station_officer_id
    return assigned if assigned is not None else row.officer_id


def sees(user: User, row: Any, team_officers: frozenset[str]) -> bool:
    """Whether ``user`` may see recording ``row`` at all (listed, viewed). ``team_officers``:
    the officer ids of ``user``'s team (recorder.station.accounts), for a supervisor."""
    if not may(user, Permission.LIST):
        return False
    owner = recording_officer(row)
    if user.role == "officer":
        return user.officer_id is not None and owner == user.officer_id
    if user.role == "supervisor":
        return owner is not None and (owner in team_officers or owner == user.officer_id)
    return True


def allowed(user: User, permission: str, row: Any, team_officers: frozenset[str]) -> bool:
    """Whether ``user`` may do ``permission`` on recording ``row``."""
    return may(user, permission) and sees(user, row, team_officers)
