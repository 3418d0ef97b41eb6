"""``/api/v1/business-hours`` (admin) and a conversation's rating (agents).

The schedule is one document: ``PUT`` replaces it whole. Visitors hear of an
opening or closing it causes at once (``presence``), like any later one.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatserver.business_hours import Schedule
from chatserver.clock import format_ts
from chatserver.errors import NotFound, Unavailable
from chatserver.opening_hours import OpeningHours
from chatserver.store.models import Rating
from chatserver.web.api import json_body, state_of
from chatserver.web.principal import require


def _hours(request: Request) -> OpeningHours:
    hours = state_of(request).hub.hours
    if hours is None:
        raise Unavailable("business hours are not running on this server")
    return hours


def hours_json(hours: OpeningHours) -> dict[str, Any]:
    schedule = hours.schedule
    now = hours.now()
    change = hours.hours.next_change(now)
    return {
        "enabled": schedule.enabled,
        "time_zone": schedule.time_zone,
        "weekly": {
            day: [{"start": i.start, "end": i.end} for i in getattr(schedule.weekly, day)]
            for day in schedule.weekly.__struct_fields__
        },
        "closed_dates": list(schedule.closed_dates),
        "open_now": hours.hours.is_open(now),
        "next_change": format_ts(int(change.timestamp() * 1_000_000)) if change else None,
        "updated_at": format_ts(hours.updated_at) if hours.updated_at is not None else None,
    }


async def get_hours(request: Request) -> Response:
    # Any agent reads them: the console says when the chat is closed and when it opens.
    await require(request, "agent")
    return JSONResponse(hours_json(_hours(request)))


async def put_hours(request: Request) -> Response:
    await require(request, "admin")
    hours = _hours(request)
    schedule: Schedule = await json_body(request, Schedule)
    await hours.save(schedule)
    return JSONResponse(hours_json(hours))


def rating_json(rating: Rating) -> dict[str, Any]:
    return {
        "conversation_id": rating.conversation_id,
        "score": rating.score,
        "comment": rating.comment,
        "agent_id": rating.agent_id,
        "created_at": format_ts(rating.created_at),
    }


async def get_rating(request: Request) -> Response:
    """The visitor's rating of one conversation, for the agents who read the conversation."""
    state = state_of(request)
    await require(request, "agent")
    rating = await state.store.rating(request.path_params["id"])
    if rating is None:
        raise NotFound("this conversation has no rating")
    return JSONResponse(rating_json(rating))


routes = [
    Route("/business-hours", get_hours, methods=["GET"]),
    Route("/business-hours", put_hours, methods=["PUT"]),
    Route("/conversations/{id}/rating", get_rating, methods=["GET"]),
]
