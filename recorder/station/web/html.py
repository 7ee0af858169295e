"""The staff pages' HTML: one page frame, escaping, forms with their CSRF token, error pages.

Every value from the catalogue, a manifest or a request is escaped with ``e`` before it is put
in a page; the pages carry no inline script or style (the Content-Security-Policy forbids both:
recorder.station.web.security), only /static/station.css and /static/player.js.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping

from starlette.responses import HTMLResponse

from ..catalogue import shown


def e(value: object) -> str:
    """``value`` as text safe inside an element or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def date(value: int | None, width: int | None = None) -> str:
    return e(shown(value) if width is None else shown(value, width))


def page(title: str, body: str, *, user: str | None = None, csrf: str | None = None,
         status: int = 200, refresh_s: int | None = None) -> HTMLResponse:
    """A whole page; with ``user`` and ``csrf``, the bar naming who is logged in, with logout;
    with ``refresh_s``, reloaded by the browser that often (work under way: no script)."""
    bar = ""
    if user is not None and csrf is not None:
        bar = (f'<nav><a href="/">recordings</a> <span class=who>{e(user)}</span> '
               + form("/logout", "log out", csrf) + "</nav>")
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        + (f'<meta http-equiv=refresh content="{int(refresh_s)}">' if refresh_s else "") +
        f"<title>{e(title)} · bwv station</title>"
        '<link rel=stylesheet href="/static/station.css"></head>'
        f"<body>{bar}<main>{body}</main></body></html>", status_code=status)


def form(action: str, button: str, csrf: str, fields: Iterable[tuple[str, str, str]] = (),
         hidden: Mapping[str, str] | None = None) -> str:
    """A POST form with its CSRF token; ``fields`` are (name, label, input type) rows."""
    inputs = "".join(f'<label>{e(label)} <input name="{e(name)}" type="{e(kind)}" required>'
                     "</label> " for name, label, kind in fields)
    extra = "".join(f'<input type=hidden name="{e(name)}" value="{e(value)}">'
                    for name, value in (hidden or {}).items())
    return (f'<form method=post action="{e(action)}">'
            f'<input type=hidden name=csrf value="{e(csrf)}">{extra}{inputs}'
            f"<button>{e(button)}</button></form>")


def table(headings: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table; the cells are HTML already (escape them first)."""
    head = "".join(f"<th>{e(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def error_page(status: int, message: str) -> HTMLResponse:
    """The page a browser gets for a refusal or an error (never JSON, never a traceback)."""
    titles = {400: "Bad request", 401: "Not logged in", 403: "Not allowed", 404: "Not found",
              405: "Not allowed", 409: "Conflict", 410: "Deleted", 413: "Too large"}
    title = titles.get(status, "Error")
    return page(title, f"<h1>{e(title)}</h1><p>{e(message)}</p><p><a href='/'>recordings</a></p>",
                status=status)
