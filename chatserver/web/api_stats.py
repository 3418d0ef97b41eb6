"""``/api/v1/stats``: aggregates only, for admins (P10)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatserver.errors import BadRequest
from chatserver.stats import summarise, summarise_csat
from chatserver.web.api import state_of
from chatserver.web.principal import require

MAX_DAYS = 366


def _day(request: Request, name: str, default: date) -> date:
    raw = request.query_params.get(name)
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a date like 2026-11-25") from None


async def stats(request: Request) -> Response:
    """Conversations per day, first response and resolution times, device mix, and
    satisfaction ratings given in the period (``csat``).

    ``from`` and ``to`` are UTC days, both included; the default is the last 30 days.
    """
    state = state_of(request)
    await require(request, "admin")
    today = datetime.fromtimestamp(state.hub.clock.now_us() / 1e6, UTC).date()
    last = _day(request, "to", today)
    first = _day(request, "from", last - timedelta(days=29))
    if first > last:
        raise BadRequest("from is after to")
    if (last - first).days >= MAX_DAYS:
        raise BadRequest(f"at most {MAX_DAYS} days at a time")
    start = int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp()) * 10**6
    end = int(datetime(last.year, last.month, last.day, tzinfo=UTC).timestamp() + 86400) * 10**6
    rows = await state.store.stats_rows(start, end)
    body = summarise(rows["per_day"], rows["first_responses"], rows["resolutions"], rows["devices"])
    body["csat"] = summarise_csat(await state.store.csat_rows(start, end))
    return JSONResponse({"from": first.isoformat(), "to": last.isoformat(), **body})


routes = [Route("/stats", stats, methods=["GET"])]
