"""Finding recordings in the catalogue: the filters of the staff pages' list, as one SQL query
(a force holds hundreds of thousands of recordings: nothing is filtered in Python), limited to
the recordings a person may see.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, exists, false, func, or_, select, true

from .catalogue import holds, markers, recordings
from .errors import BadRequestError

PAGE_SIZE = 50
STATUSES = ("receiving", "verified", "failed", "deleted")
SORTS = {"recorded": recordings.c.recorded_us, "received": recordings.c.received_us,
         "officer": recordings.c.officer_id, "device": recordings.c.device_id}


@dataclass(frozen=True)
class Filters:
    """What a search asks for; empty strings mean "any"."""

    officer: str = ""
    device: str = ""
    status: str = ""
    date_from: str = ""  # YYYY-MM-DD, UTC, inclusive
    date_to: str = ""  # YYYY-MM-DD, UTC, inclusive
    held: str = ""  # "yes" or "no"
    case: str = ""  # a hold's case reference
    markers: str = ""  # "yes": only recordings with markers
    sort: str = "recorded"
    descending: bool = True
    page: int = 1

    @classmethod
    def from_query(cls, query: dict[str, str]) -> Filters:
        """Filters from a request's query; BadRequestError for a value none could mean."""
        text = {name: query.get(name, "")[:128].strip() for name in (
            "officer", "device", "status", "from", "to", "held", "case", "markers", "sort")}
        page = query.get("page", "1")
        if not page.isdigit() or not 1 <= int(page) <= 100_000:
            raise BadRequestError("page must be a number from 1")
        if text["status"] and text["status"] not in STATUSES:
            raise BadRequestError(f"status must be one of {', '.join(STATUSES)}")
        for name in ("held", "markers"):
            if text[name] not in ("", "yes", "no"):
                raise BadRequestError(f"{name} must be yes or no")
        if text["sort"] and text["sort"] not in SORTS:
            raise BadRequestError(f"sort must be one of {', '.join(SORTS)}")
        for name in ("from", "to"):
            if text[name]:
                _day_us(text[name], name)
        return cls(officer=text["officer"], device=text["device"], status=text["status"],
                   date_from=text["from"], date_to=text["to"], held=text["held"],
                   case=text["case"], markers=text["markers"], sort=text["sort"] or "recorded",
                   descending=query.get("order", "desc") != "asc", page=int(page))

    def audit_detail(self) -> dict[str, Any]:
        """The filters for the audit log (those given)."""
        return {name: value for name, value in vars(self).items()
                if value not in ("", None) and name not in ("descending",)}


def _day_us(text: str, name: str) -> int:
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError as exc:
        raise BadRequestError(f"{name} must be a date, YYYY-MM-DD") from exc
    start = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc)
    return int(start.timestamp()) * 1_000_000


DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    total: int
    page: int
    pages: int


def search(engine: Engine, filters: Filters, officers: Collection[str] | None) -> Page:
    """One page of the recordings matching ``filters``; ``officers``: only those of these
    officers (by the station's assignment, else the camera's word), or all when None."""
    owner = func.coalesce(recordings.c.station_officer_id, recordings.c.officer_id)
    held = exists().where(and_(holds.c.recording_id == recordings.c.recording_id,
                               holds.c.released_us.is_(None)))
    conditions: list[Any] = []
    if officers is not None:
        conditions.append(owner.in_(sorted(officers)) if officers else false())
    if filters.officer:
        conditions.append(or_(recordings.c.officer_id == filters.officer,
                              recordings.c.station_officer_id == filters.officer))
    if filters.device:
        conditions.append(recordings.c.device_id == filters.device)
    if filters.status:
        conditions.append(recordings.c.status == filters.status)
    if filters.date_from:
        conditions.append(recordings.c.recorded_us >= _day_us(filters.date_from, "from"))
    if filters.date_to:
        conditions.append(recordings.c.recorded_us < _day_us(filters.date_to, "to") + DAY_US)
    if filters.held == "yes":
        conditions.append(held)
    elif filters.held == "no":
        conditions.append(~held)
    if filters.case:
        conditions.append(exists().where(and_(holds.c.recording_id == recordings.c.recording_id,
                                              holds.c.case_ref == filters.case)))
    if filters.markers == "yes":
        conditions.append(exists().where(markers.c.recording_id == recordings.c.recording_id))
    elif filters.markers == "no":
        conditions.append(~exists().where(markers.c.recording_id == recordings.c.recording_id))
    where = and_(true(), *conditions)
    column = SORTS[filters.sort]
    order = column.desc().nulls_last() if filters.descending else column.asc().nulls_last()
    with engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(recordings).where(where))
                    .scalar_one())
        pages = max(1, -(-total // PAGE_SIZE))
        rows = list(conn.execute(select(recordings).where(where)
                                 .order_by(order, recordings.c.recording_id)
                                 .limit(PAGE_SIZE).offset((filters.page - 1) * PAGE_SIZE)))
    return Page(rows, total, filters.page, pages)
