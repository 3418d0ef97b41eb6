"""The OpenAPI 3.1 document of ``/api/v1``, served at ``/api/v1/openapi.json``.

Written by hand next to the routes it describes; ``tests/web/test_openapi.py``
fails when a route and this document disagree.
"""

from __future__ import annotations

from typing import Any

from chatserver import __version__
from chatserver.errors import ALL_CODES, REASONS
from chatserver.web import (
    openapi_attachments,
    openapi_hours,
    openapi_invitations,
    openapi_privacy,
    openapi_webhooks,
)
from chatserver.web.openapi_common import AUTH, ID, errors, json_answer, page, ref, request_body

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
                        "description": "One status, or several separated by commas "
                        "(`open,pending`). Without it (and with `q`), every status.",
                        "schema": {
                            "type": "string",
                            "pattern": "^(open|pending|resolved)(,(open|pending|resolved))*$",
                        },
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
                        "description": "Text that a message of the conversation contains "
                        "(every word in one message, notes included, events never). Each item "
                        "then has `match`: the newest matching message and a snippet of it.",
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
                    "200": json_answer(ref("ConversationPage"), "One page of conversations."),
                    **errors(400, *AUTH),
                },
            }
        },
        "/conversations/counts": {
            "get": {
                "operationId": "countConversations",
                "summary": "The inbox's counters for the calling agent: conversations by status, "
                "the open or pending ones by view, and the agent's unread messages in the open or "
                "pending conversations that are theirs or unassigned. Cheap enough to poll.",
                "parameters": [
                    {
                        "name": "tag",
                        "in": "query",
                        "description": "Only conversations carrying this tag.",
                        "schema": {"type": "string", "maxLength": 50},
                    },
                ],
                "responses": {
                    "200": json_answer(ref("ConversationCounts"), "The counters."),
                    **errors(400, *AUTH),
                },
            }
        },
        "/conversations/{id}": {
            "parameters": [ID],
            "get": {
                "operationId": "getConversation",
                "summary": "One conversation.",
                "responses": {
                    "200": json_answer(ref("Conversation"), "The conversation."),
                    **errors(404, *AUTH),
                },
            },
            "patch": {
                "operationId": "updateConversation",
                "summary": "Change status, assignee (null unassigns) or tags.",
                "requestBody": request_body(ref("ConversationChange")),
                "responses": {
                    "200": json_answer(ref("Conversation"), "The changed conversation."),
                    **errors(400, 404, 413, *AUTH),
                },
            },
        },
        "/conversations/{id}/messages": {
            "parameters": [ID],
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
                    "200": json_answer(ref("MessagePage"), "One page of messages."),
                    **errors(400, 404, *AUTH),
                },
            },
            "post": {
                "operationId": "postMessage",
                "summary": "Reply (or add a note); idempotent by client_msg_id.",
                "requestBody": request_body(ref("NewMessage")),
                "responses": {
                    "201": json_answer(ref("Ack"), "Stored."),
                    "200": json_answer(ref("Ack"), "Stored before with this client_msg_id."),
                    **errors(400, 404, 409, 413, *AUTH),
                },
            },
        },
        "/conversations/{id}/visitor": {
            "parameters": [ID],
            "get": {
                "operationId": "getConversationVisitor",
                "summary": "The visitor panel: account, sessions (device, browser, pages), "
                "other conversations. `ip` only for admin and compliance (P4).",
                "responses": {
                    "200": json_answer(ref("VisitorPanel"), "The visitor."),
                    **errors(404, *AUTH),
                },
            },
        },
        "/stats": {
            "get": {
                "operationId": "getStats",
                "summary": "Aggregates only (P10): conversations per UTC day, first response "
                "and resolution times, device mix, satisfaction ratings (`csat`). Counts under "
                "5 and durations or averages over fewer than 5 samples are null (admin).",
                "parameters": [
                    {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}},
                    {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"}},
                ],
                "responses": {
                    "200": json_answer(ref("Stats"), "The aggregates."),
                    **errors(400, *AUTH),
                },
            },
        },
        "/canned-responses": {
            "get": {
                "operationId": "listCannedResponses",
                "summary": "Canned responses, by shortcut (agents use them with `/`).",
                "responses": {
                    "200": json_answer(ref("CannedResponsePage"), "All canned responses."),
                    **errors(*AUTH),
                },
            },
            "post": {
                "operationId": "addCannedResponse",
                "summary": "Add a canned response (admin).",
                "requestBody": request_body(ref("CannedResponseIn")),
                "responses": {
                    "201": json_answer(ref("CannedResponse"), "Added."),
                    **errors(400, 409, 413, *AUTH),
                },
            },
        },
        "/canned-responses/{id}": {
            "parameters": [ID],
            "put": {
                "operationId": "changeCannedResponse",
                "summary": "Replace a canned response's shortcut and text (admin).",
                "requestBody": request_body(ref("CannedResponseIn")),
                "responses": {
                    "200": json_answer(ref("CannedResponse"), "Changed."),
                    **errors(400, 404, 409, 413, *AUTH),
                },
            },
            "delete": {
                "operationId": "deleteCannedResponse",
                "summary": "Delete a canned response (admin).",
                "responses": {"204": {"description": "Deleted."}, **errors(404, *AUTH)},
            },
        },
        "/policies": {
            "get": {
                "operationId": "listPolicies",
                "summary": "Published privacy policy versions, newest (current) first (admin).",
                "responses": {
                    "200": json_answer(ref("PolicyPage"), "All versions."),
                    **errors(*AUTH),
                },
            },
            "post": {
                "operationId": "publishPolicy",
                "summary": "Publish a new privacy policy version; visitors are asked to "
                "accept it once (P9). Audited as `policy.publish` (admin).",
                "requestBody": request_body(ref("PolicyIn")),
                "responses": {
                    "201": json_answer(ref("Policy"), "Published: now the current version."),
                    **errors(400, 409, 413, *AUTH),
                },
            },
        },
        "/origins": {
            "get": {
                "operationId": "listOrigins",
                "summary": "Origins allowed to open the visitor socket: from the settings "
                "(fixed) and added by admins (admin).",
                "responses": {
                    "200": json_answer(ref("OriginPage"), "All allowed origins."),
                    **errors(*AUTH),
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
                    "201": json_answer(ref("Origin"), "Allowed."),
                    **errors(400, 413, *AUTH),
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
                "responses": {"204": {"description": "Removed."}, **errors(400, 404, *AUTH)},
            },
        },
        "/tokens": {
            "get": {
                "operationId": "listTokens",
                "summary": "API tokens, newest first, never the secret itself (admin).",
                "responses": {
                    "200": json_answer(ref("TokenPage"), "All tokens."),
                    **errors(*AUTH),
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
                    "201": json_answer(ref("NewToken"), "Created."),
                    **errors(400, 413, *AUTH),
                },
            },
        },
        "/tokens/{id}": {
            "parameters": [ID],
            "delete": {
                "operationId": "revokeToken",
                "summary": "Revoke a token; its bot's sockets are closed at once (admin).",
                "responses": {"204": {"description": "Revoked."}, **errors(404, *AUTH)},
            },
        },
        "/agents": {
            "get": {
                "operationId": "listAgents",
                "summary": "Every agent and bot, with whether they are online (agent; "
                "`email` is null unless the caller is an admin).",
                "responses": {
                    "200": json_answer(ref("AgentPage"), "All agents."),
                    **errors(*AUTH),
                },
            },
            "post": {
                "operationId": "addAgent",
                "summary": "Add an agent with a password (admin).",
                "requestBody": request_body(ref("NewAgent")),
                "responses": {
                    "201": json_answer(ref("Agent"), "Added."),
                    **errors(
                        400,
                        409,
                        413,
                        *AUTH,
                        why={
                            400: "A password that is too short or too easy to guess "
                            "(`weak_password`, field `password`), or other bad input",
                            409: "An agent has this email (`field`: `email`)",
                        },
                    ),
                },
            },
        },
        "/agents/{id}": {
            "parameters": [ID],
            "patch": {
                "operationId": "changeAgent",
                "summary": "Rename, change role, or (de)activate an agent (admin).",
                "requestBody": request_body(ref("AgentChange")),
                "responses": {
                    "200": json_answer(ref("Agent"), "The changed agent."),
                    **errors(400, 404, 409, 413, *AUTH),
                },
            },
        },
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            **openapi_privacy.SECURITY_SCHEMES,
            **openapi_attachments.SECURITY_SCHEMES,
        },
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
                            "message": {
                                "type": "string",
                                "description": "A sentence for people, in English.",
                            },
                            "field": {
                                "type": "string",
                                "description": "When one input field is at fault: its path "
                                "in the body (`email`, `notify.sound`; list items are their "
                                "list's path: `tags`), or the query parameter's name.",
                            },
                            "reason": {
                                "type": "string",
                                "enum": list(REASONS),
                                "description": "With `field`: what is wrong with it, in a "
                                "stable name a client can translate.",
                            },
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
                    "assignee": ref("Assignee"),
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
                        "description": "In listings: the messages after the calling agent's "
                        "read position that are neither events nor their own (notes included).",
                    },
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "last_message_at": {"type": ["string", "null"], "format": "date-time"},
                    "closed_at": {"type": ["string", "null"], "format": "date-time"},
                    "name": {
                        "type": ["string", "null"],
                        "description": "The linked verified account's name.",
                    },
                    "verified_by": {
                        "type": ["string", "null"],
                        "description": "The linked account's identity provider (`bankid` …).",
                    },
                    "last_message": {
                        "oneOf": [ref("LastMessage"), {"type": "null"}],
                        "description": "In listings and `GET /conversations/{id}`: the newest "
                        "message that is not an event; null when there is none.",
                    },
                    "match": {
                        "oneOf": [ref("SearchMatch"), {"type": "null"}],
                        "description": "In listings with `q`: the newest matching message.",
                    },
                    "visitor_read_seq": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "In `GET /conversations/{id}`: the last seq the "
                        "visitor has read (0: none), for showing Seen under agents' replies.",
                    },
                },
            },
            "LastMessage": {
                "type": "object",
                "required": ["seq", "kind", "role", "preview", "ts", "attachments"],
                "properties": {
                    "seq": {"type": "integer"},
                    "kind": {"type": "string", "enum": ["text", "note"]},
                    "role": {"type": "string", "enum": ["visitor", "agent", "system"]},
                    "preview": {
                        "type": "string",
                        "maxLength": 140,
                        "description": "The body's first non-empty line, trimmed, cut to 140 "
                        "characters with `…`; empty for a message of attachments only.",
                    },
                    "ts": {"type": "string", "format": "date-time"},
                    "attachments": {"type": "integer", "minimum": 0},
                },
            },
            "SearchMatch": {
                "type": "object",
                "required": ["seq", "message_id", "snippet"],
                "properties": {
                    "seq": {"type": "integer"},
                    "message_id": {"type": "string"},
                    "snippet": {
                        "type": "array",
                        "description": "About 16 words around the hits, as plain text parts; "
                        "`hit` marks the matched words. `…` where the message was cut.",
                        "items": {
                            "type": "object",
                            "required": ["text", "hit"],
                            "properties": {"text": {"type": "string"}, "hit": {"type": "boolean"}},
                        },
                    },
                },
            },
            "ConversationCounts": {
                "type": "object",
                "required": ["status", "views", "unread"],
                "properties": {
                    "status": {
                        "type": "object",
                        "required": ["open", "pending", "resolved"],
                        "properties": {
                            s: {"type": "integer", "minimum": 0}
                            for s in ("open", "pending", "resolved")
                        },
                    },
                    "views": {
                        "type": "object",
                        "description": "Open or pending conversations: all of them, the "
                        "unassigned ones, those assigned to the calling agent.",
                        "required": ["all", "unassigned", "mine"],
                        "properties": {
                            v: {"type": "integer", "minimum": 0}
                            for v in ("all", "unassigned", "mine")
                        },
                    },
                    "unread": {"type": "integer", "minimum": 0},
                },
            },
            "ConversationPage": page(ref("Conversation"), paged=True),
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
                    "author": ref("Author"),
                    "body": {"type": "string"},
                    "kind": {"type": "string", "enum": ["text", "note", "event"]},
                    "attachments": {
                        "type": "array",
                        "items": ref("Attachment"),
                        "description": "Files the message carries (GET /attachments/{id}).",
                    },
                    "event": {
                        "oneOf": [ref("TimelineEvent"), {"type": "null"}],
                        "description": (
                            "What an event message (`kind: event`, author `system`) records; "
                            "null for every other message. Its `body` says it in English."
                        ),
                    },
                },
            },
            "TimelineEvent": {
                "type": "object",
                "required": ["type"],
                "description": (
                    "`assigned {to, by}`, `transferred {from, to, by}`, `unassigned {from, by}`, "
                    "`resolved {by}`, `reopened {by}`, `status {status, by}`, "
                    "`rated {score, comment_given}`, `verified {idp, name}`. `to`, `from` and "
                    "`by` are agents; `by` is null when no agent did it (round-robin "
                    "assignment, a visitor's message reopening the conversation)."
                ),
                "properties": {
                    "type": {
                        "type": "string",
                        "enum": [
                            "assigned",
                            "transferred",
                            "unassigned",
                            "resolved",
                            "reopened",
                            "status",
                            "rated",
                            "verified",
                        ],
                    },
                    "to": ref("AgentRef"),
                    "from": ref("AgentRef"),
                    "by": {"oneOf": [ref("AgentRef"), {"type": "null"}]},
                    "status": {"type": "string", "enum": ["open", "pending"]},
                    "score": {"type": "integer", "minimum": 1, "maximum": 5},
                    "comment_given": {"type": "boolean"},
                    "idp": {"type": ["string", "null"]},
                    "name": {"type": ["string", "null"]},
                },
            },
            "AgentRef": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
            },
            "MessagePage": page(ref("Message"), paged=True),
            "NewMessage": {
                "type": "object",
                "additionalProperties": False,
                "required": ["client_msg_id", "body"],
                "properties": {
                    "client_msg_id": {"type": "string", "minLength": 1, "maxLength": 100},
                    "body": {
                        "type": "string",
                        "description": "Not blank, unless the message carries attachments.",
                    },
                    "kind": {"type": "string", "enum": ["text", "note"], "default": "text"},
                    "attachments": {
                        "type": "array",
                        "maxItems": 10,
                        "items": {"type": "string", "minLength": 1, "maxLength": 64},
                        "description": "Ids of files this agent uploaded to the conversation.",
                    },
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
                    "sessions": {"type": "array", "items": ref("VisitorSession")},
                    "conversations": {"type": "array", "items": ref("Conversation")},
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
                    "csat",
                ],
                "properties": {
                    "from": {"type": "string", "format": "date"},
                    "to": {"type": "string", "format": "date"},
                    "suppressed_below": {"type": "integer"},
                    "csat": ref("Csat"),
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
            "CannedResponsePage": page(ref("CannedResponse"), paged=False),
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
            "PolicyPage": page(ref("Policy"), paged=False),
            "Origin": {
                "type": "object",
                "required": ["origin", "source"],
                "properties": {
                    "origin": {"type": "string"},
                    "source": {"type": "string", "enum": ["settings", "admin"]},
                },
            },
            "OriginPage": page(ref("Origin"), paged=False),
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
                    ref("Token"),
                    {
                        "type": "object",
                        "required": ["token"],
                        "properties": {"token": {"type": "string"}},
                    },
                ]
            },
            "TokenPage": page(ref("Token"), paged=False),
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
            "AgentPage": page(ref("Agent"), paged=False),
            "NewAgent": {
                "type": "object",
                "additionalProperties": False,
                "required": ["email", "name", "password"],
                "properties": {
                    "email": {"type": "string", "maxLength": 254},
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "password": {
                        "type": "string",
                        "minLength": 10,
                        "maxLength": 1024,
                        "description": "Hard to guess (zxcvbn score 3 or more, with the "
                        "email and name as known words): `weak_password` otherwise.",
                    },
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


def _merge(into: dict[str, Any], more: dict[str, Any]) -> None:
    clash = sorted(into.keys() & more.keys())
    if clash:
        raise ValueError(f"defined twice in the OpenAPI document: {', '.join(clash)}")
    into.update(more)


_merge(DOCUMENT["paths"], openapi_privacy.PATHS)
_merge(DOCUMENT["components"]["schemas"], openapi_privacy.SCHEMAS)
_merge(DOCUMENT["paths"], openapi_hours.PATHS)
_merge(DOCUMENT["components"]["schemas"], openapi_hours.SCHEMAS)
_merge(DOCUMENT["paths"], openapi_webhooks.PATHS)
_merge(DOCUMENT["components"]["schemas"], openapi_webhooks.SCHEMAS)
_merge(DOCUMENT["paths"], openapi_attachments.PATHS)
_merge(DOCUMENT["components"]["schemas"], openapi_attachments.SCHEMAS)
_merge(DOCUMENT["paths"], openapi_invitations.PATHS)
_merge(DOCUMENT["components"]["schemas"], openapi_invitations.SCHEMAS)
