"""The OpenAPI 3.1 document of ``/api/v1``, served at ``/api/v1/openapi.json``.

Written by hand next to the routes it describes; ``tests/web/test_openapi.py``
fails when a route and this document disagree.
"""

from __future__ import annotations

from typing import Any

from chatserver import __version__
from chatserver.errors import ALL_CODES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    names = {
        400: "Bad input (`bad_request`).",
        401: "No or unknown bearer token (`unauthorized`).",
        403: "The token's role does not allow this (`forbidden`).",
        404: "No such item (`not_found`).",
        409: "Conflicts with stored data (`conflict`).",
        413: "Body too large (`too_large`).",
        503: "The store cannot be reached (`unavailable`).",
    }
    return {str(s): _json(_ref("Error"), names[s]) for s in statuses}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _page(item: dict[str, Any], *, paged: bool) -> dict[str, Any]:
    """A list answer; ``paged`` lists may have a next page, the others never do."""
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": item},
            "next_cursor": {"type": ["string", "null"] if paged else "null"},
        },
    }


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_AUTH = (401, 403, 503)

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "chatserver API",
        "version": __version__,
        "description": "Contract v1 of chatserver (see docs/protocol.md).",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "paths": {
        "/conversations": {
            "get": {
                "operationId": "listConversations",
                "summary": "Inbox listing and search, newest activity first.",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["open", "pending", "resolved"]},
                    },
                    {
                        "name": "assignee",
                        "in": "query",
                        "description": "An agent id, `me`, or `none` for unassigned.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "tag",
                        "in": "query",
                        "description": "Only conversations carrying this tag.",
                        "schema": {"type": "string", "maxLength": 50},
                    },
                    {
                        "name": "q",
                        "in": "query",
                        "description": "Text that a message of the conversation contains.",
                        "schema": {"type": "string", "maxLength": 200},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    },
                ],
                "responses": {
                    "200": _json(_ref("ConversationPage"), "One page of conversations."),
                    **_errors(400, *_AUTH),
                },
            }
        },
        "/conversations/{id}": {
            "parameters": [_ID],
            "get": {
                "operationId": "getConversation",
                "summary": "One conversation.",
                "responses": {
                    "200": _json(_ref("Conversation"), "The conversation."),
                    **_errors(404, *_AUTH),
                },
            },
            "patch": {
                "operationId": "updateConversation",
                "summary": "Change status, assignee (null unassigns) or tags.",
                "requestBody": _body(_ref("ConversationChange")),
                "responses": {
                    "200": _json(_ref("Conversation"), "The changed conversation."),
                    **_errors(400, 404, 413, *_AUTH),
                },
            },
        },
        "/conversations/{id}/messages": {
            "parameters": [_ID],
            "get": {
                "operationId": "listMessages",
                "summary": "The thread in seq order, internal notes included.",
                "parameters": [
                    {
                        "name": "after_seq",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "default": 0},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                    },
                ],
                "responses": {
                    "200": _json(_ref("MessagePage"), "One page of messages."),
                    **_errors(400, 404, *_AUTH),
                },
            },
            "post": {
                "operationId": "postMessage",
                "summary": "Reply (or add a note); idempotent by client_msg_id.",
                "requestBody": _body(_ref("NewMessage")),
                "responses": {
                    "201": _json(_ref("Ack"), "Stored."),
                    "200": _json(_ref("Ack"), "Stored before with this client_msg_id."),
                    **_errors(400, 404, 409, 413, *_AUTH),
                },
            },
        },
        "/conversations/{id}/visitor": {
            "parameters": [_ID],
            "get": {
                "operationId": "getConversationVisitor",
                "summary": "The visitor panel: account, sessions (device, browser, pages), "
                "other conversations. `ip` only for admin and compliance (P4).",
                "responses": {
                    "200": _json(_ref("VisitorPanel"), "The visitor."),
                    **_errors(404, *_AUTH),
                },
            },
        },
        "/stats": {
            "get": {
                "operationId": "getStats",
                "summary": "Aggregates only (P10): conversations per UTC day, first response "
                "and resolution times, device mix. Counts under 5 and durations over fewer "
                "than 5 samples are null (admin).",
                "parameters": [
                    {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}},
                    {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"}},
                ],
                "responses": {
                    "200": _json(_ref("Stats"), "The aggregates."),
                    **_errors(400, *_AUTH),
                },
            },
        },
        "/canned-responses": {
            "get": {
                "operationId": "listCannedResponses",
                "summary": "Canned responses, by shortcut (agents use them with `/`).",
                "responses": {
                    "200": _json(_ref("CannedResponsePage"), "All canned responses."),
                    **_errors(*_AUTH),
                },
            },
            "post": {
                "operationId": "addCannedResponse",
                "summary": "Add a canned response (admin).",
                "requestBody": _body(_ref("CannedResponseIn")),
                "responses": {
                    "201": _json(_ref("CannedResponse"), "Added."),
                    **_errors(400, 409, 413, *_AUTH),
                },
            },
        },
        "/canned-responses/{id}": {
            "parameters": [_ID],
            "put": {
                "operationId": "changeCannedResponse",
                "summary": "Replace a canned response's shortcut and text (admin).",
                "requestBody": _body(_ref("CannedResponseIn")),
                "responses": {
                    "200": _json(_ref("CannedResponse"), "Changed."),
                    **_errors(400, 404, 409, 413, *_AUTH),
                },
            },
            "delete": {
                "operationId": "deleteCannedResponse",
                "summary": "Delete a canned response (admin).",
                "responses": {"204": {"description": "Deleted."}, **_errors(404, *_AUTH)},
            },
        },
        "/policies": {
            "get": {
                "operationId": "listPolicies",
                "summary": "Published privacy policy versions, newest (current) first (admin).",
                "responses": {
                    "200": _json(_ref("PolicyPage"), "All versions."),
                    **_errors(*_AUTH),
                },
            },
            "post": {
                "operationId": "publishPolicy",
                "summary": "Publish a new privacy policy version; visitors are asked to "
                "accept it once (P9) (admin).",
                "requestBody": _body(_ref("PolicyIn")),
                "responses": {
                    "201": _json(_ref("Policy"), "Published: now the current version."),
                    **_errors(400, 409, 413, *_AUTH),
                },
            },
        },
        "/origins": {
            "get": {
                "operationId": "listOrigins",
                "summary": "Origins allowed to open the visitor socket: from the settings "
                "(fixed) and added by admins (admin).",
                "responses": {
                    "200": _json(_ref("OriginPage"), "All allowed origins."),
                    **_errors(*_AUTH),
                },
            },
            "post": {
                "operationId": "addOrigin",
                "summary": "Allow an origin (`https://host[:port]`); every node applies it at "
                "once (admin).",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["origin"],
                                "properties": {"origin": {"type": "string", "maxLength": 2048}},
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(_ref("Origin"), "Allowed."),
                    **_errors(400, 413, *_AUTH),
                },
            },
            "delete": {
                "operationId": "removeOrigin",
                "summary": "Stop allowing an origin an admin added (admin).",
                "parameters": [
                    {
                        "name": "origin",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"204": {"description": "Removed."}, **_errors(400, 404, *_AUTH)},
            },
        },
        "/tokens": {
            "get": {
                "operationId": "listTokens",
                "summary": "API tokens, newest first, never the secret itself (admin).",
                "responses": {
                    "200": _json(_ref("TokenPage"), "All tokens."),
                    **_errors(*_AUTH),
                },
            },
            "post": {
                "operationId": "createToken",
                "summary": "A bot agent of this name and role and its bearer token, shown "
                "only in this answer (admin).",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                                    "role": {
                                        "type": "string",
                                        "enum": ["agent", "admin", "compliance"],
                                        "default": "agent",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(_ref("NewToken"), "Created."),
                    **_errors(400, 413, *_AUTH),
                },
            },
        },
        "/tokens/{id}": {
            "parameters": [_ID],
            "delete": {
                "operationId": "revokeToken",
                "summary": "Revoke a token; its bot's sockets are closed at once (admin).",
                "responses": {"204": {"description": "Revoked."}, **_errors(404, *_AUTH)},
            },
        },
        "/agents": {
            "get": {
                "operationId": "listAgents",
                "summary": "Every agent and bot, with whether they are online (agent; "
                "`email` is null unless the caller is an admin).",
                "responses": {
                    "200": _json(_ref("AgentPage"), "All agents."),
                    **_errors(*_AUTH),
                },
            },
            "post": {
                "operationId": "addAgent",
                "summary": "Add an agent with a password (admin).",
                "requestBody": _body(_ref("NewAgent")),
                "responses": {
                    "201": _json(_ref("Agent"), "Added."),
                    **_errors(400, 409, 413, *_AUTH),
                },
            },
        },
        "/agents/{id}": {
            "parameters": [_ID],
            "patch": {
                "operationId": "changeAgent",
                "summary": "Rename, change role, or (de)activate an agent (admin).",
                "requestBody": _body(_ref("AgentChange")),
                "responses": {
                    "200": _json(_ref("Agent"), "The changed agent."),
                    **_errors(400, 404, 409, 413, *_AUTH),
                },
            },
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "enum": sorted(set(ALL_CODES))},
                            "message": {"type": "string"},
                        },
                    }
                },
            },
            "Assignee": {
                "type": ["object", "null"],
                "required": ["id", "name"],
                "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
            },
            "Conversation": {
                "type": "object",
                "required": ["id", "status", "assignee", "created_at", "last_seq"],
                "properties": {
                    "id": {"type": "string"},
                    "status": {"type": "string", "enum": ["open", "pending", "resolved"]},
                    "assignee": _ref("Assignee"),
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visitor_id": {"type": ["string", "null"]},
                    "account_id": {"type": ["string", "null"]},
                    "contact_email": {
                        "type": ["string", "null"],
                        "description": "Left by the visitor with a message while no agent "
                        "was online.",
                    },
                    "last_seq": {"type": "integer"},
                    "unread": {
                        "type": "integer",
                        "description": "In listings: messages (notes included) after the "
                        "calling agent's read position.",
                    },
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "last_message_at": {"type": ["string", "null"], "format": "date-time"},
                    "closed_at": {"type": ["string", "null"], "format": "date-time"},
                },
            },
            "ConversationPage": _page(_ref("Conversation"), paged=True),
            "ConversationChange": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "status": {"type": "string", "enum": ["open", "pending", "resolved"]},
                    "assignee_id": {"type": ["string", "null"], "maxLength": 64},
                    "tags": {
                        "type": "array",
                        "maxItems": 20,
                        "items": {"type": "string", "minLength": 1, "maxLength": 50},
                    },
                },
            },
            "Author": {
                "type": "object",
                "required": ["role", "id", "name"],
                "properties": {
                    "role": {"type": "string", "enum": ["visitor", "agent", "system"]},
                    "id": {"type": ["string", "null"]},
                    "name": {"type": ["string", "null"]},
                },
            },
            "Message": {
                "type": "object",
                "required": [
                    "conversation_id",
                    "message_id",
                    "seq",
                    "ts",
                    "author",
                    "body",
                    "kind",
                ],
                "properties": {
                    "conversation_id": {"type": "string"},
                    "message_id": {"type": "string"},
                    "seq": {"type": "integer", "minimum": 1},
                    "ts": {"type": "string", "format": "date-time"},
                    "author": _ref("Author"),
                    "body": {"type": "string"},
                    "kind": {"type": "string", "enum": ["text", "note", "event"]},
                },
            },
            "MessagePage": _page(_ref("Message"), paged=True),
            "NewMessage": {
                "type": "object",
                "additionalProperties": False,
                "required": ["client_msg_id", "body"],
                "properties": {
                    "client_msg_id": {"type": "string", "minLength": 1, "maxLength": 100},
                    "body": {"type": "string", "minLength": 1},
                    "kind": {"type": "string", "enum": ["text", "note"], "default": "text"},
                },
            },
            "VisitorSession": {
                "type": "object",
                "required": ["id", "started_at", "device_class", "browser", "os", "page_url"],
                "properties": {
                    "id": {"type": "string"},
                    "started_at": {"type": "string", "format": "date-time"},
                    "ended_at": {"type": ["string", "null"], "format": "date-time"},
                    "device_class": {"type": ["string", "null"]},
                    "browser": {"type": ["string", "null"]},
                    "os": {"type": ["string", "null"]},
                    "page_url": {"type": ["string", "null"]},
                    "page_title": {"type": ["string", "null"]},
                    "referrer": {"type": ["string", "null"]},
                    "locale": {"type": ["string", "null"]},
                    "ip": {
                        "type": ["string", "null"],
                        "description": "Present only for admin and compliance callers.",
                    },
                },
            },
            "VisitorPanel": {
                "type": "object",
                "required": ["visitor_id", "account", "sessions", "conversations"],
                "properties": {
                    "visitor_id": {"type": "string"},
                    "account": {
                        "type": ["object", "null"],
                        "properties": {
                            "id": {"type": "string"},
                            "name": {"type": ["string", "null"]},
                            "email": {"type": ["string", "null"]},
                            "phone": {"type": ["string", "null"]},
                            "verified_by": {"type": ["string", "null"]},
                            "verified_at": {"type": ["string", "null"]},
                        },
                    },
                    "sessions": {"type": "array", "items": _ref("VisitorSession")},
                    "conversations": {"type": "array", "items": _ref("Conversation")},
                },
            },
            "Stats": {
                "type": "object",
                "required": [
                    "from",
                    "to",
                    "suppressed_below",
                    "conversations_per_day",
                    "conversations",
                    "first_response_seconds",
                    "resolution_seconds",
                    "device_mix",
                ],
                "properties": {
                    "from": {"type": "string", "format": "date"},
                    "to": {"type": "string", "format": "date"},
                    "suppressed_below": {"type": "integer"},
                    "conversations": {"type": ["integer", "null"]},
                    "conversations_per_day": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["day", "conversations"],
                            "properties": {
                                "day": {"type": "string", "format": "date"},
                                "conversations": {"type": ["integer", "null"]},
                            },
                        },
                    },
                    "first_response_seconds": {
                        "type": "object",
                        "required": ["count", "median", "p90"],
                        "properties": {
                            "count": {"type": ["integer", "null"]},
                            "median": {"type": ["number", "null"]},
                            "p90": {"type": ["number", "null"]},
                        },
                    },
                    "resolution_seconds": {
                        "type": "object",
                        "required": ["count", "median"],
                        "properties": {
                            "count": {"type": ["integer", "null"]},
                            "median": {"type": ["number", "null"]},
                        },
                    },
                    "device_mix": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["device_class", "sessions"],
                            "properties": {
                                "device_class": {"type": "string"},
                                "sessions": {"type": ["integer", "null"]},
                            },
                        },
                    },
                },
            },
            "CannedResponseIn": {
                "type": "object",
                "additionalProperties": False,
                "required": ["shortcut", "body"],
                "properties": {
                    "shortcut": {"type": "string", "pattern": "^[a-z0-9_-]+$", "maxLength": 32},
                    "body": {"type": "string", "minLength": 1, "maxLength": 5000},
                },
            },
            "CannedResponse": {
                "type": "object",
                "required": ["id", "shortcut", "body", "updated_at"],
                "properties": {
                    "id": {"type": "string"},
                    "shortcut": {"type": "string"},
                    "body": {"type": "string"},
                    "updated_at": {"type": "string", "format": "date-time"},
                },
            },
            "CannedResponsePage": _page(_ref("CannedResponse"), paged=False),
            "PolicyIn": {
                "type": "object",
                "additionalProperties": False,
                "required": ["version", "url"],
                "properties": {
                    "version": {"type": "string", "minLength": 1, "maxLength": 64},
                    "url": {"type": "string", "minLength": 1, "maxLength": 2048},
                },
            },
            "Policy": {
                "type": "object",
                "required": ["version", "url", "published_at", "current"],
                "properties": {
                    "version": {"type": "string"},
                    "url": {"type": ["string", "null"]},
                    "published_at": {"type": "string", "format": "date-time"},
                    "current": {"type": "boolean"},
                },
            },
            "PolicyPage": _page(_ref("Policy"), paged=False),
            "Origin": {
                "type": "object",
                "required": ["origin", "source"],
                "properties": {
                    "origin": {"type": "string"},
                    "source": {"type": "string", "enum": ["settings", "admin"]},
                },
            },
            "OriginPage": _page(_ref("Origin"), paged=False),
            "Token": {
                "type": "object",
                "required": ["id", "agent", "created_at", "revoked_at"],
                "properties": {
                    "id": {"type": "string"},
                    "agent": {
                        "type": "object",
                        "required": ["id", "name", "role", "kind"],
                        "properties": {
                            "id": {"type": "string"},
                            "name": {"type": "string"},
                            "role": {"type": "string"},
                            "kind": {"type": "string"},
                        },
                    },
                    "created_at": {"type": "string", "format": "date-time"},
                    "revoked_at": {"type": ["string", "null"], "format": "date-time"},
                },
            },
            "NewToken": {
                "allOf": [
                    _ref("Token"),
                    {
                        "type": "object",
                        "required": ["token"],
                        "properties": {"token": {"type": "string"}},
                    },
                ]
            },
            "TokenPage": _page(_ref("Token"), paged=False),
            "Agent": {
                "type": "object",
                "required": ["id", "email", "name", "role", "kind", "active", "online"],
                "properties": {
                    "id": {"type": "string"},
                    "email": {"type": ["string", "null"]},
                    "name": {"type": "string"},
                    "role": {"type": "string", "enum": ["agent", "admin", "compliance"]},
                    "kind": {"type": "string", "enum": ["human", "bot"]},
                    "active": {"type": "boolean"},
                    "online": {"type": "boolean"},
                },
            },
            "AgentPage": _page(_ref("Agent"), paged=False),
            "NewAgent": {
                "type": "object",
                "additionalProperties": False,
                "required": ["email", "name", "password"],
                "properties": {
                    "email": {"type": "string", "maxLength": 254},
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "password": {"type": "string", "minLength": 8, "maxLength": 1024},
                    "role": {
                        "type": "string",
                        "enum": ["agent", "admin", "compliance"],
                        "default": "agent",
                    },
                },
            },
            "AgentChange": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "role": {"type": "string", "enum": ["agent", "admin", "compliance"]},
                    "active": {
                        "type": "boolean",
                        "description": "false closes the agent's open sockets at once.",
                    },
                },
            },
            "Ack": {
                "type": "object",
                "required": ["client_msg_id", "conversation_id", "message_id", "seq", "ts"],
                "properties": {
                    "client_msg_id": {"type": "string"},
                    "conversation_id": {"type": "string"},
                    "message_id": {"type": "string"},
                    "seq": {"type": "integer"},
                    "ts": {"type": "string", "format": "date-time"},
                    "duplicate": {"type": "boolean"},
                },
            },
        },
    },
}
