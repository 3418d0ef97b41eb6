"""The webhooks part of the OpenAPI document (``chatserver.web.api_webhooks``).

``PATHS`` and ``SCHEMAS`` are merged into ``chatserver.web.openapi.DOCUMENT``.
Every operation needs the admin role. What is POSTed to the endpoints
themselves is described in ``docs/webhooks.md``.
"""

from __future__ import annotations

from typing import Any

from chatserver.web.openapi_common import (
    AUTH,
    ID,
    errors,
    json_answer,
    page,
    query,
    ref,
    request_body,
)
from chatserver.webhooks.events import EVENT_TYPES, TEST_EVENT
from chatserver.webhooks.store import STATUSES
from chatserver.webhooks.urls import MAX_URL_CHARS

_DATE_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_DATE_TIME = {"type": ["string", "null"], "format": "date-time"}
_URL = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_URL_CHARS,
    "description": "http or https; no user name or password, no fragment. Unless "
    "`webhook_allow_private` is on, a literal non-public address is refused here and a "
    "host name resolving to one is refused at each delivery.",
}
_EVENTS = {
    "type": "array",
    "minItems": 1,
    "maxItems": 20,
    "items": {"type": "string", "enum": list(EVENT_TYPES)},
    "description": "The events this endpoint receives (duplicates are dropped).",
}
_DESCRIPTION = {"type": "string", "maxLength": 200}
_FLAGS = {
    "include_message_body": {
        "type": "boolean",
        "description": "`message.created` carries the message `body`, and `rating.created` "
        "its `comment` (default false: ids, kinds and times only).",
    },
    "include_notes": {
        "type": "boolean",
        "description": "Agents' internal notes are sent as `message.created` too (default "
        "false: they never leave).",
    },
    "active": {
        "type": "boolean",
        "description": "An inactive endpoint gets no new events; its pending deliveries wait.",
    },
}
_NO_WEBHOOK = {404: "No such webhook"}

SCHEMAS: dict[str, Any] = {
    "Webhook": {
        "type": "object",
        "required": [
            "id",
            "url",
            "events",
            "description",
            "include_message_body",
            "include_notes",
            "active",
            "created_at",
            "updated_at",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string", "enum": list(EVENT_TYPES)}},
            "description": {"type": "string"},
            **_FLAGS,
            "created_at": _DATE_TIME,
            "updated_at": _DATE_TIME,
            "secret": {
                "type": "string",
                "pattern": "^whsec_",
                "description": "Only in the answer that creates the endpoint or rotates its "
                "secret: the key of the HMAC in `Chatserver-Signature`. Copy it then.",
            },
        },
    },
    "NewWebhook": {
        "type": "object",
        "required": ["url", "events"],
        "additionalProperties": False,
        "properties": {"url": _URL, "events": _EVENTS, "description": _DESCRIPTION, **_FLAGS},
    },
    "WebhookChange": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "url": _URL,
            "events": _EVENTS,
            "description": _DESCRIPTION,
            **_FLAGS,
            "rotate_secret": {
                "type": "boolean",
                "description": "Make a new secret (shown once in the answer); the old one "
                "stops signing at once.",
            },
        },
    },
    "WebhookDelivery": {
        "type": "object",
        "required": [
            "id",
            "type",
            "status",
            "attempts",
            "created_at",
            "next_attempt_at",
            "finished_at",
            "log",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "description": "The `id` of the body, the same on retries."},
            "type": {"type": "string", "enum": [*EVENT_TYPES, TEST_EVENT]},
            "status": {"type": "string", "enum": list(STATUSES)},
            "attempts": {"type": "integer", "minimum": 0},
            "created_at": _DATE_TIME,
            "next_attempt_at": _NULLABLE_DATE_TIME,
            "finished_at": _NULLABLE_DATE_TIME,
            "log": {
                "type": "array",
                "description": "The attempts, oldest first (the last 50).",
                "items": {
                    "type": "object",
                    "required": ["at", "status_code", "error", "duration_ms"],
                    "additionalProperties": False,
                    "properties": {
                        "at": _DATE_TIME,
                        "status_code": {"type": ["integer", "null"]},
                        "error": {
                            "type": ["string", "null"],
                            "description": "Why there was no 2xx answer (timeout, refused "
                            "address, connection error, redirect); the answer's body is "
                            "never read.",
                        },
                        "duration_ms": {"type": "integer", "minimum": 0},
                    },
                },
            },
        },
    },
}

PATHS: dict[str, Any] = {
    "/webhooks": {
        "get": {
            "operationId": "listWebhooks",
            "summary": "The registered webhook endpoints (never their secrets).",
            "responses": {
                "200": json_answer(page(ref("Webhook"), paged=False), "Every endpoint."),
                **errors(*AUTH),
            },
        },
        "post": {
            "operationId": "addWebhook",
            "summary": "Register an endpoint; the answer shows its new secret, once.",
            "requestBody": request_body(ref("NewWebhook")),
            "responses": {
                "201": json_answer(ref("Webhook"), "Registered; `secret` is included."),
                **errors(400, 413, *AUTH),
            },
        },
    },
    "/webhooks/{id}": {
        "parameters": [ID],
        "get": {
            "operationId": "getWebhook",
            "summary": "One endpoint.",
            "responses": {
                "200": json_answer(ref("Webhook"), "The endpoint."),
                **errors(404, *AUTH, why=_NO_WEBHOOK),
            },
        },
        "patch": {
            "operationId": "changeWebhook",
            "summary": "Change the URL, events, flags or description, or rotate the secret.",
            "requestBody": request_body(ref("WebhookChange")),
            "responses": {
                "200": json_answer(
                    ref("Webhook"), "The changed endpoint; `secret` only if rotated."
                ),
                **errors(400, 404, 413, *AUTH, why=_NO_WEBHOOK),
            },
        },
        "delete": {
            "operationId": "deleteWebhook",
            "summary": "Remove the endpoint with its pending deliveries and delivery log.",
            "responses": {
                "204": {"description": "Removed."},
                **errors(404, *AUTH, why=_NO_WEBHOOK),
            },
        },
    },
    "/webhooks/{id}/deliveries": {
        "parameters": [ID],
        "get": {
            "operationId": "listWebhookDeliveries",
            "summary": "The delivery log, newest first: attempts, status codes and errors, "
            "never the payload.",
            "parameters": [
                query("status", {"type": "string", "enum": list(STATUSES)}),
                query("cursor", {"type": "string", "maxLength": 200}),
                query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
            ],
            "responses": {
                "200": json_answer(page(ref("WebhookDelivery"), paged=True), "One page."),
                **errors(400, 404, *AUTH, why=_NO_WEBHOOK),
            },
        },
    },
    "/webhooks/{id}/test": {
        "parameters": [ID],
        "post": {
            "operationId": "testWebhook",
            "summary": f"Queue a `{TEST_EVENT}` delivery (data: `webhook_id`) to this endpoint.",
            "responses": {
                "202": json_answer(
                    {
                        "type": "object",
                        "required": ["delivery_id"],
                        "additionalProperties": False,
                        "properties": {"delivery_id": {"type": "string"}},
                    },
                    "Queued; follow it in the delivery log.",
                ),
                **errors(404, 409, *AUTH, why={**_NO_WEBHOOK, 409: "The webhook is not active"}),
            },
        },
    },
}
