"""The compliance part of the OpenAPI document (``chatserver.web.api_privacy``).

``PATHS``, ``SCHEMAS`` and ``SECURITY_SCHEMES`` are merged into
``chatserver.web.openapi.DOCUMENT``. Every operation here needs the compliance
role, except deciding a rectification (admin or compliance) and ``/me/export``
(the person themself, with their identity token).
"""

from __future__ import annotations

from typing import Any

from chatserver.privacy.audit import ACTIONS
from chatserver.privacy.export import FORMAT_VERSION
from chatserver.store.sqlite_privacy import PROFILE_FIELDS, RETENTION_CATEGORIES
from chatserver.web.api_privacy import MAX_KEY_CHARS
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

STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
DATE_TIME = {"type": "string", "format": "date-time"}
NULLABLE_DATE_TIME = {"type": ["string", "null"], "format": "date-time"}
COUNT = {"type": "integer", "minimum": 0}
HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
ACTOR_ROLES = ["agent", "admin", "compliance", "subject", "operator", "system"]
RECTIFICATION_STATUSES = ["pending", "applied", "rejected"]
# What a retention run counts, per category (see chatserver.privacy.retention).
RETENTION_COUNTS = [
    "conversations",
    "messages",
    "sessions",
    "visitors",
    "ip_addresses",
    "export_files",
    "audit_entries",
    "webhook_deliveries",
    "invitations",
]

SECURITY_SCHEMES: dict[str, Any] = {
    "identity": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Authorization: Identity <identity token>`: the identity token the "
        "operator's platform signs for a person (the same token the widget sends as "
        "`identity` in `hello`). It lets that person, and nobody else, read their own data.",
    }
}

_NO_SUBJECT = {404: "No such subject"}
_DECIDE = {
    403: "Neither admin nor compliance, or the caller asked for this rectification (four eyes)",
    404: "No such rectification",
    409: "The rectification was decided already",
}
_ACTION_LIST = ", ".join(f"`{a}`" for a in ACTIONS)


def _key_param(name: str, description: str) -> dict[str, Any]:
    schema = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS}
    return query(name, schema, description)


_EXPORT_PARAMS = [
    query(
        "format",
        {"type": "string", "enum": ["json", "zip"], "default": "json"},
        "`json`: the export document; `zip`: an archive of `export.json` (the same "
        "document), `transcript.html` (a page for the person to read) and `manifest.json` "
        "(name, size and SHA-256 of every other member).",
    ),
    query(
        "locale",
        {"type": "string", "enum": ["en", "nb"], "default": "en"},
        "Language of `transcript.html` (with `format=zip`).",
    ),
]


def _export_answer(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "Content-Disposition": {
                "description": "`attachment`, with a file name.",
                "schema": STRING,
            }
        },
        "content": {
            "application/json": {"schema": ref("ExportDocument")},
            # Binary: OpenAPI 3.1 describes it by its media type alone.
            "application/zip": {},
        },
    }


PATHS: dict[str, Any] = {
    "/subjects": {
        "get": {
            "operationId": "findSubjects",
            "summary": "Find a person by platform account id (`sub`), email or national id "
            "number; an email also finds never-verified visitors who left it with a "
            "message. Give at least one key. Audited as `subject.search`, naming the kinds "
            "of key used, never their values (compliance).",
            "parameters": [
                _key_param("account_id", "The platform's account id (`sub` of the identity)."),
                _key_param("email", "An email address, compared without case."),
                _key_param(
                    "pid",
                    "A national identity number, looked up by its keyed hash (needs "
                    "`CHATSERVER_PID_PEPPER`; it is never stored).",
                ),
            ],
            "responses": {
                "200": json_answer(ref("SubjectPage"), "Every person found, maybe none."),
                **errors(400, *AUTH, why={400: "No key given, a key too long, or `pid` unusable"}),
            },
        }
    },
    "/subjects/{id}/export": {
        "parameters": [ID],
        "get": {
            "operationId": "exportSubject",
            "summary": "Everything stored about a person (GDPR Art. 15 and 20), as JSON or "
            "as a ZIP. Audited as `subject.export` (compliance).",
            "parameters": _EXPORT_PARAMS,
            "responses": {
                "200": _export_answer("The export."),
                **errors(400, 404, *AUTH, why={400: "Unknown `format` or `locale`", **_NO_SUBJECT}),
            },
        },
    },
    "/subjects/{id}/erasure": {
        "parameters": [ID],
        "post": {
            "operationId": "eraseSubject",
            "summary": "Erase a person (GDPR Art. 17): their conversations, messages, "
            "sessions, visitors, consents, rectifications, export archives and account, "
            "leaving a tombstone without personal data. Idempotent: erasing again answers "
            "the same tombstone. Their open sockets are closed. Audited as "
            "`subject.erasure` (compliance).",
            "responses": {
                "200": json_answer(ref("Erasure"), "Erased, now or before."),
                **errors(
                    404,
                    409,
                    *AUTH,
                    why={
                        404: "No such subject, and none erased by this id",
                        409: "The person or one of their conversations is on legal hold",
                    },
                ),
            },
        },
    },
    "/subjects/{id}/rectifications": {
        "parameters": [ID],
        "post": {
            "operationId": "requestRectification",
            "summary": "Correct a verified person's profile field (GDPR Art. 16). A field "
            "that came from the verified identity stays `pending` until someone else "
            "approves it; any other field is `applied` at once. Audited as "
            "`rectification.request` (compliance).",
            "requestBody": request_body(ref("RectificationIn")),
            "responses": {
                "201": json_answer(ref("Rectification"), "Filed (and maybe applied)."),
                **errors(
                    400,
                    404,
                    409,
                    413,
                    *AUTH,
                    why={
                        **_NO_SUBJECT,
                        409: "The person was never verified and has no profile to correct",
                    },
                ),
            },
        },
        "get": {
            "operationId": "listRectifications",
            "summary": "A person's rectifications, oldest first (compliance).",
            "responses": {
                "200": json_answer(ref("RectificationPage"), "All of them."),
                **errors(404, *AUTH, why=_NO_SUBJECT),
            },
        },
    },
    "/subjects/{id}/legal-hold": {
        "parameters": [ID],
        "put": {
            "operationId": "holdSubject",
            "summary": "Put a person on legal hold, or release them: retention removes "
            "nothing of a held person. Audited as `subject.legal_hold` (compliance).",
            "requestBody": request_body(ref("HoldIn")),
            "responses": {
                "200": json_answer(ref("SubjectHold"), "The hold as it is now."),
                **errors(400, 404, 413, *AUTH, why=_NO_SUBJECT),
            },
        },
    },
    "/conversations/{id}/legal-hold": {
        "parameters": [ID],
        "put": {
            "operationId": "holdConversation",
            "summary": "Put one conversation on legal hold, or release it: retention "
            "removes nothing of a held conversation. Audited as `conversation.legal_hold` "
            "(compliance).",
            "requestBody": request_body(ref("HoldIn")),
            "responses": {
                "200": json_answer(ref("ConversationHold"), "The hold as it is now."),
                **errors(400, 404, 413, *AUTH, why={404: "No such conversation"}),
            },
        },
    },
    "/rectifications/{id}/approve": {
        "parameters": [ID],
        "post": {
            "operationId": "approveRectification",
            "summary": "Approve a pending rectification: the field is changed and no "
            "longer counts as verified. Four eyes: not by who asked for it. Audited as "
            "`rectification.approve` (admin or compliance).",
            "responses": {
                "200": json_answer(ref("Rectification"), "Applied."),
                **errors(404, 409, *AUTH, why=_DECIDE),
            },
        },
    },
    "/rectifications/{id}/reject": {
        "parameters": [ID],
        "post": {
            "operationId": "rejectRectification",
            "summary": "Reject a pending rectification: nothing changes. Four eyes: not by "
            "who asked for it. Audited as `rectification.reject` (admin or compliance).",
            "responses": {
                "200": json_answer(ref("Rectification"), "Rejected."),
                **errors(404, 409, *AUTH, why=_DECIDE),
            },
        },
    },
    "/me/export": {
        "get": {
            "operationId": "exportMe",
            "summary": "A person's own export, with their identity token instead of a bearer "
            "token (self-service, GDPR Art. 15 and 20). Audited as `subject.export` by the "
            "subject.",
            "security": [{"identity": []}],
            "parameters": _EXPORT_PARAMS,
            "responses": {
                "200": _export_answer("The export."),
                **errors(
                    400,
                    401,
                    404,
                    503,
                    why={
                        400: "Unknown `format` or `locale`",
                        401: "No `Authorization: Identity` header, or the identity token is "
                        "not accepted",
                        404: "No data about this person here",
                    },
                ),
            },
        },
    },
    "/audit": {
        "get": {
            "operationId": "listAudit",
            "summary": "The audit log, oldest first: who did what to whose data, by ids and "
            "counts only (compliance).",
            "parameters": [
                query("cursor", {"type": "string", "pattern": "^[0-9]{1,18}$"}),
                query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                ),
                _key_param("subject_id", "Only entries about this person."),
                _key_param("action", f"Only entries of this action: one of {_ACTION_LIST}."),
            ],
            "responses": {
                "200": json_answer(ref("AuditPage"), "One page of entries."),
                **errors(400, *AUTH),
            },
        }
    },
    "/audit/verify": {
        "get": {
            "operationId": "verifyAudit",
            "summary": "Check the audit log's hash chain from its start (or the anchor that "
            "retention left) to its newest entry (compliance).",
            "responses": {
                "200": json_answer(ref("AuditVerification"), "Whether the chain is whole."),
                **errors(*AUTH),
            },
        }
    },
    "/retention/runs": {
        "post": {
            "operationId": "runRetention",
            "summary": "Run retention now: per category, remove what is older than its rule, "
            "except held data. A dry run (the default) only counts. Recorded, and audited as "
            "`retention.run` (compliance).",
            "requestBody": request_body(ref("RetentionIn")),
            "responses": {
                "201": json_answer(ref("RetentionReport"), "The run, done."),
                **errors(400, 413, *AUTH),
            },
        },
        "get": {
            "operationId": "listRetentionRuns",
            "summary": "The 20 latest retention runs, newest first: by the API, the command "
            "line and the server's sweeper (compliance).",
            "responses": {
                "200": json_answer(ref("RetentionRunPage"), "The latest runs."),
                **errors(*AUTH),
            },
        },
    },
}


def _object(properties: dict[str, Any], *optional: str) -> dict[str, Any]:
    """An object schema in which every property but ``optional`` ones is required."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
    }


def _strict_body(properties: dict[str, Any], *optional: str) -> dict[str, Any]:
    return {**_object(properties, *optional), "additionalProperties": False}


_COUNTS = {
    "type": "object",
    "propertyNames": {"enum": RETENTION_COUNTS},
    "additionalProperties": COUNT,
}

SCHEMAS: dict[str, Any] = {
    "Subject": _object(
        {
            "id": {
                "type": "string",
                "description": "The account's id for a verified person, else the visitor's.",
            },
            "kind": {"type": "string", "enum": ["account", "visitor"]},
            "account_id": {
                "type": ["string", "null"],
                "description": "The platform's account id (`sub`); null for a visitor.",
            },
            "created_at": DATE_TIME,
            "legal_hold": {"type": "boolean"},
            "visitor_ids": {"type": "array", "items": STRING},
        }
    ),
    "SubjectPage": page(ref("Subject"), paged=False),
    "ExportDocument": _object(
        {
            "format_version": {"type": "integer", "const": FORMAT_VERSION},
            "generated_at": DATE_TIME,
            "subject": ref("ExportSubject"),
            "conversations": {"type": "array", "items": ref("ExportConversation")},
            "sessions": {"type": "array", "items": ref("ExportSession")},
            "consents": {"type": "array", "items": ref("ExportConsent")},
            "rectifications": {"type": "array", "items": ref("ExportRectification")},
            "unsent_attachments": {
                "type": "array",
                "items": ref("ExportAttachment"),
                "description": "Files the person uploaded that no message carries.",
            },
        }
    ),
    "ExportSubject": {
        **_object(
            {
                "id": STRING,
                "kind": {"type": "string", "enum": ["account", "visitor"]},
                "account_id": NULLABLE_STRING,
                "name": NULLABLE_STRING,
                "email": NULLABLE_STRING,
                "phone": NULLABLE_STRING,
                "verification": {
                    "type": ["object", "null"],
                    "required": ["idp", "verified_at"],
                    "properties": {
                        "idp": {
                            "type": ["string", "null"],
                            "description": "The identity provider the platform named.",
                        },
                        "verified_at": DATE_TIME,
                    },
                },
                "legal_hold": {"type": "boolean"},
                "created_at": DATE_TIME,
                "visitor_ids": {"type": "array", "items": STRING},
                "verified_fields": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(PROFILE_FIELDS)},
                    "description": "Accounts only: the fields the verified identity gave.",
                },
                "national_id_on_record": {
                    "type": "boolean",
                    "const": False,
                    "description": "Accounts only: a national id number is never stored.",
                },
            },
            "verified_fields",
            "national_id_on_record",
        ),
        "if": {"properties": {"kind": {"const": "account"}}},
        "then": {"required": ["verified_fields", "national_id_on_record"]},
    },
    "ExportConversation": _object(
        {
            "id": STRING,
            "status": {"type": "string", "enum": ["open", "pending", "resolved"]},
            "created_at": DATE_TIME,
            "closed_at": NULLABLE_DATE_TIME,
            "contact_email": NULLABLE_STRING,
            "tags": {"type": "array", "items": STRING},
            "legal_hold": {"type": "boolean"},
            "assignee": ref("Assignee"),
            "messages": {"type": "array", "items": ref("ExportMessage")},
            "rating": ref("ExportRating"),
        }
    ),
    "ExportMessage": _object(
        {
            "id": STRING,
            "seq": {"type": "integer", "minimum": 1},
            "ts": DATE_TIME,
            "kind": {
                "type": "string",
                "enum": ["text", "note", "event"],
                "description": "Internal notes only when the server exports them.",
            },
            "author": ref("Author"),
            "body": {
                "type": "string",
                "description": "Text a visitor other than this person wrote is withheld.",
            },
            "attachments": {
                "type": "array",
                "items": ref("ExportAttachment"),
                "description": "Files the message carries (withheld with a withheld body).",
            },
        }
    ),
    "ExportSession": _object(
        {
            "id": STRING,
            "visitor_id": STRING,
            "ip": {
                "type": ["string", "null"],
                "description": "Truncated once `ip_truncated_at` is set.",
            },
            "ip_truncated_at": NULLABLE_DATE_TIME,
            "user_agent": NULLABLE_STRING,
            "device_class": NULLABLE_STRING,
            "browser": NULLABLE_STRING,
            "os": NULLABLE_STRING,
            "page_url": NULLABLE_STRING,
            "page_title": NULLABLE_STRING,
            "referrer": NULLABLE_STRING,
            "locale": NULLABLE_STRING,
            "started_at": DATE_TIME,
            "last_seen_at": DATE_TIME,
            "ended_at": NULLABLE_DATE_TIME,
        }
    ),
    "ExportConsent": _object(
        {"policy_version": STRING, "policy_url": NULLABLE_STRING, "accepted_at": DATE_TIME}
    ),
    "ExportRectification": _object(
        {
            "id": STRING,
            "field": {"type": "string", "enum": list(PROFILE_FIELDS)},
            "old_value": NULLABLE_STRING,
            "new_value": NULLABLE_STRING,
            "status": {"type": "string", "enum": RECTIFICATION_STATUSES},
            "requested_at": DATE_TIME,
            "requested_by": NULLABLE_STRING,
            "decided_at": NULLABLE_DATE_TIME,
            "decided_by": NULLABLE_STRING,
        }
    ),
    "Erasure": _object(
        {
            "tombstone_id": STRING,
            "erased_at": DATE_TIME,
            "already_erased": {
                "type": "boolean",
                "description": "True when an earlier erasure removed this person.",
            },
            "erased": {
                **_object(
                    {
                        "conversations": COUNT,
                        "messages": COUNT,
                        "sessions": COUNT,
                        "visitors": COUNT,
                        "consents": COUNT,
                        "rectifications": COUNT,
                        "export_files": COUNT,
                        "accounts": {**COUNT, "description": "Verified persons only."},
                        "ratings": {**COUNT, "description": "With their conversations."},
                    },
                    "accounts",
                    "ratings",
                ),
                "additionalProperties": False,
                "description": "What the erasure removed.",
            },
        }
    ),
    "RectificationIn": _strict_body(
        {
            "field": {"type": "string", "enum": list(PROFILE_FIELDS)},
            "value": {
                "type": ["string", "null"],
                "maxLength": MAX_KEY_CHARS,
                "description": "The corrected value; null or blank clears the field.",
            },
        }
    ),
    "Rectification": _object(
        {
            "id": STRING,
            "subject_id": STRING,
            "field": {"type": "string", "enum": list(PROFILE_FIELDS)},
            "old_value": NULLABLE_STRING,
            "new_value": NULLABLE_STRING,
            "status": {"type": "string", "enum": RECTIFICATION_STATUSES},
            "requested_at": DATE_TIME,
            "requested_by": {
                "type": ["string", "null"],
                "description": "`role:agent id` of who asked.",
            },
            "decided_at": NULLABLE_DATE_TIME,
            "decided_by": NULLABLE_STRING,
        }
    ),
    "RectificationPage": page(ref("Rectification"), paged=False),
    "HoldIn": _strict_body({"hold": {"type": "boolean"}}),
    "SubjectHold": _object({"subject_id": STRING, "legal_hold": {"type": "boolean"}}),
    "ConversationHold": _object({"conversation_id": STRING, "legal_hold": {"type": "boolean"}}),
    "AuditEntry": _object(
        {
            "seq": {"type": "integer", "minimum": 1},
            "id": STRING,
            "at": DATE_TIME,
            "actor": _object(
                {
                    "role": {"type": ["string", "null"], "enum": [*ACTOR_ROLES, None]},
                    "id": NULLABLE_STRING,
                }
            ),
            "action": {"type": "string", "enum": list(ACTIONS)},
            "subject_id": NULLABLE_STRING,
            "details": {
                "type": "object",
                "description": "What happened, by ids and counts: never personal data.",
            },
            "prev_hash": HASH,
            "hash": HASH,
        }
    ),
    "AuditPage": page(ref("AuditEntry"), paged=True),
    "AuditVerification": _object(
        {
            "ok": {"type": "boolean"},
            "entries": {**COUNT, "description": "Entries checked."},
            "broken_at": {
                "type": ["integer", "null"],
                "description": "The seq of the first entry where the chain breaks.",
            },
            "problem": {"type": ["string", "null"], "description": "Why it breaks there."},
        }
    ),
    "RetentionIn": _strict_body({"dry_run": {"type": "boolean", "default": True}}, "dry_run"),
    "RetentionReport": _object(
        {
            "id": STRING,
            "dry_run": {"type": "boolean"},
            "started_at": DATE_TIME,
            "finished_at": DATE_TIME,
            "categories": {
                "type": "array",
                "items": _object(
                    {
                        "category": {"type": "string", "enum": list(RETENTION_CATEGORIES)},
                        "keep_seconds": {
                            **COUNT,
                            "description": "The rule; 0: kept forever, nothing removed.",
                        },
                        "cutoff": {
                            **NULLABLE_DATE_TIME,
                            "description": "What is older than this goes; null when kept.",
                        },
                        "counts": {
                            **_COUNTS,
                            "description": "Removed, or what a real run would remove.",
                        },
                    }
                ),
            },
        }
    ),
    "RetentionRun": _object(
        {
            "id": STRING,
            "started_at": DATE_TIME,
            "finished_at": DATE_TIME,
            "dry_run": {"type": "boolean"},
            "ordered_by": {
                "type": ["string", "null"],
                "description": "`role:id` or `role` of who ran it (`system`: the sweeper).",
            },
            "counts": {
                "type": "object",
                "propertyNames": {"enum": list(RETENTION_CATEGORIES)},
                "additionalProperties": _COUNTS,
                "description": "Per category: removed, or what a real run would remove.",
            },
        }
    ),
    "RetentionRunPage": page(ref("RetentionRun"), paged=False),
}
