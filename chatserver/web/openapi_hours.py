"""The OpenAPI part for business hours, ratings and the stats' CSAT section
(``chatserver.web.api_hours``, ``chatserver.web.api_stats``).

``PATHS`` and ``SCHEMAS`` are merged into ``chatserver.web.openapi.DOCUMENT``.
"""

from __future__ import annotations

from typing import Any

from chatserver.business_hours import (
    DEFAULT_TIME_ZONE,
    MAX_CLOSED_DATES,
    MAX_INTERVALS_PER_DAY,
    WEEKDAYS,
)
from chatserver.ratings import MAX_COMMENT
from chatserver.web.openapi_common import AUTH, ID, errors, json_answer, ref, request_body

_NULLABLE_COUNT = {"type": ["integer", "null"], "minimum": 0}
_CLOCK = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"}
_FIGURES = {
    "ratings": {
        **_NULLABLE_COUNT,
        "description": "How many; null when under `suppressed_below`.",
    },
    "average": {
        "type": ["number", "null"],
        "minimum": 1,
        "maximum": 5,
        "description": "Mean score; null over too few ratings.",
    },
    "satisfied_share": {
        "type": ["number", "null"],
        "minimum": 0,
        "maximum": 1,
        "description": "Share of 4s and 5s; null over too few ratings.",
    },
}


def _object(properties: dict[str, Any], *, strict: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "required": list(properties),
        "properties": properties,
    }
    if strict:
        schema["additionalProperties"] = False
    return schema


_WEEK = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        day: {
            "type": "array",
            "maxItems": MAX_INTERVALS_PER_DAY,
            "items": ref("BusinessHoursInterval"),
        }
        for day in WEEKDAYS
    },
}

PATHS: dict[str, Any] = {
    "/business-hours": {
        "get": {
            "operationId": "getBusinessHours",
            "summary": "The business hours, whether it is open now and when that next changes "
            "(agent: every agent reads them, only admins change them). Without a saved "
            "schedule: not enabled, always open.",
            "responses": {
                "200": json_answer(ref("BusinessHours"), "The schedule."),
                **errors(*AUTH),
            },
        },
        "put": {
            "operationId": "putBusinessHours",
            "summary": "Replace the business hours (admin). Outside them the widget offers the "
            "offline form and a new conversation gets an automatic reply saying when someone "
            "will answer; visitors' sockets get `presence` at each opening and closing.",
            "requestBody": request_body(ref("BusinessHoursIn")),
            "responses": {
                "200": json_answer(ref("BusinessHours"), "The schedule as saved."),
                **errors(
                    400,
                    413,
                    *AUTH,
                    why={
                        400: "Bad shape, unknown time zone, a date that does not exist, an "
                        "interval without length or starting at 24:00, overlapping intervals"
                    },
                ),
            },
        },
    },
    "/conversations/{id}/rating": {
        "parameters": [ID],
        "get": {
            "operationId": "getConversationRating",
            "summary": "The visitor's satisfaction rating of this conversation (agent).",
            "responses": {
                "200": json_answer(ref("Rating"), "The rating."),
                **errors(404, *AUTH, why={404: "No such conversation, or it is not rated"}),
            },
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "BusinessHoursInterval": _object({"start": _CLOCK, "end": _CLOCK}, strict=True)
    | {
        "description": "Local wall-clock times. `end` may be `24:00`; an `end` at or before "
        "`start` runs past midnight into the next day."
    },
    "BusinessHoursIn": {
        "type": "object",
        "additionalProperties": False,
        "required": ["enabled"],
        "properties": {
            "enabled": {
                "type": "boolean",
                "description": "False: always open (the schedule is kept, not applied).",
            },
            "time_zone": {
                "type": "string",
                "maxLength": 64,
                "default": DEFAULT_TIME_ZONE,
                "description": "An IANA time zone name.",
            },
            "weekly": {**_WEEK, "description": "Missing days are closed."},
            "closed_dates": {
                "type": "array",
                "maxItems": MAX_CLOSED_DATES,
                "items": {"type": "string", "format": "date"},
                "description": "Local dates with no open time at all.",
            },
        },
    },
    "BusinessHours": _object(
        {
            "enabled": {"type": "boolean"},
            "time_zone": {"type": "string"},
            "weekly": {**_WEEK, "required": list(WEEKDAYS)},
            "closed_dates": {"type": "array", "items": {"type": "string", "format": "date"}},
            "open_now": {"type": "boolean"},
            "next_change": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "The next opening or closing; null when none within a year.",
            },
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
        }
    ),
    "Rating": _object(
        {
            "conversation_id": {"type": "string"},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "comment": {"type": ["string", "null"], "maxLength": MAX_COMMENT},
            "agent_id": {
                "type": ["string", "null"],
                "description": "The conversation's assignee when it was rated.",
            },
            "created_at": {"type": "string", "format": "date-time"},
        }
    ),
    "ExportRating": _object(
        {
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "comment": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "agent": ref("Assignee"),
        }
    )
    | {"type": ["object", "null"]},
    "Csat": _object(
        {
            **_FIGURES,
            "distribution": {
                "type": "array",
                "minItems": 5,
                "maxItems": 5,
                "items": _object(
                    {
                        "score": {"type": "integer", "minimum": 1, "maximum": 5},
                        "ratings": {
                            **_NULLABLE_COUNT,
                            "description": "0 when nobody gave it; null when under "
                            "`suppressed_below`.",
                        },
                    }
                ),
            },
            "per_agent": {
                "type": "array",
                "items": _object({"agent": ref("Assignee"), **_FIGURES}),
            },
            "per_day": {
                "type": "array",
                "items": _object({"day": {"type": "string", "format": "date"}, **_FIGURES}),
            },
        }
    )
    | {
        "description": "Satisfaction ratings given in the period (UTC days), aggregates only "
        "(P10): per agent rated and per day with ratings."
    },
}
