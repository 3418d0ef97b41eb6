"""Building blocks of the hand-written OpenAPI document (``chatserver.web.openapi``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# What each error status means, and the wire code it carries (chatserver.errors).
ERROR_ANSWERS = {
    400: ("bad_request", "Bad input"),
    401: ("unauthorized", "No or unknown bearer token"),
    403: ("forbidden", "The token's role does not allow this"),
    404: ("not_found", "No such item"),
    409: ("conflict", "Conflicts with stored data"),
    413: ("too_large", "Body too large"),
    503: ("unavailable", "The store cannot be reached"),
}

ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
AUTH = (401, 403, 503)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*statuses: int, why: Mapping[int, str] | None = None) -> dict[str, Any]:
    """Error answers by status; ``why`` replaces the generic text of some of them."""
    answers = {}
    for status in statuses:
        code, text = ERROR_ANSWERS[status]
        text = (why or {}).get(status, text)
        answers[str(status)] = json_answer(ref("Error"), f"{text} (`{code}`).")
    return answers


def request_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def page(item: dict[str, Any], *, paged: bool) -> dict[str, Any]:
    """A list answer; ``paged`` lists may have a next page, the others never do."""
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": item},
            "next_cursor": {"type": ["string", "null"] if paged else "null"},
        },
    }


def query(name: str, schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    """An optional query parameter."""
    param: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
    if description is not None:
        param["description"] = description
    return param
