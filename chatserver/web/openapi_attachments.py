"""The attachments' part of the OpenAPI document (``chatserver.web.api_attachments``).

``PATHS``, ``SCHEMAS`` and ``SECURITY_SCHEMES`` are merged into
``chatserver.web.openapi.DOCUMENT``.
"""

from __future__ import annotations

from typing import Any

from chatserver.attachments.sniff import KNOWN_TYPES
from chatserver.protocol import MAX_ATTACHMENTS
from chatserver.web.openapi_common import ID, errors, json_answer, ref

SECURITY_SCHEMES: dict[str, Any] = {
    "visitor": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Authorization: Visitor <visitor_token>`: the token the visitor "
        "socket's `welcome` gave. It reaches that visitor's own conversations and files.",
    }
}
# Agents (bearer token, or the console's cookie with X-CSRF-Token on uploads) or the visitor.
_WHO: list[dict[str, list[str]]] = [{"bearer": []}, {"visitor": []}]


def _error(code: str, text: str) -> dict[str, Any]:
    return json_answer(ref("Error"), f"{text} (`{code}`).")


_UPLOAD_ERRORS = {
    **errors(
        400,
        401,
        403,
        404,
        503,
        why={
            400: "Not multipart/form-data, no `file` field, two of them, an empty file, or a "
            "broken body",
            401: "No credentials, or an unknown bearer or visitor token",
            403: "Wrong role; a visitor who has not accepted the current privacy notice; "
            "attachments turned off",
        },
    ),
    "413": _error("too_large", "The file is over `attachment_max_bytes`"),
    "415": _error(
        "unsupported_type",
        "The file's bytes are not of a type in `attachment_types`; HTML and SVG never are",
    ),
    "429": _error("rate_limited", "Too many uploads waiting for a message to carry them"),
}

_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            },
            "encoding": {"file": {"contentType": ", ".join(KNOWN_TYPES)}},
        }
    },
}

_DOWNLOAD_HEADERS = {
    "Content-Disposition": {
        "description": "`inline` for PNG, JPEG, GIF and WebP (unless `?download`), else "
        "`attachment`; with the file's name.",
        "schema": {"type": "string"},
    },
    "X-Content-Type-Options": {"schema": {"type": "string", "const": "nosniff"}},
    "Content-Security-Policy": {
        "schema": {"type": "string", "const": "sandbox; default-src 'none'"},
    },
    "Cache-Control": {"schema": {"type": "string", "const": "private, no-store"}},
}

PATHS: dict[str, Any] = {
    "/conversations/{id}/attachments": {
        "parameters": [ID],
        "post": {
            "operationId": "uploadAttachment",
            "summary": "Attach a file to a conversation (agent, or the conversation's visitor). "
            "The body streams to disk; the type is decided from the file's bytes. The answer's "
            f"`id` goes into a message's `attachments` (at most {MAX_ATTACHMENTS}).",
            "security": _WHO,
            "requestBody": _UPLOAD_BODY,
            "responses": {
                "201": json_answer(ref("Attachment"), "Stored; not yet in any message."),
                **_UPLOAD_ERRORS,
            },
        },
    },
    "/attachments": {
        "post": {
            "operationId": "uploadFirstAttachment",
            "summary": "A visitor's file for the message that will start their conversation "
            "(extension: the contract's upload needs a conversation). Send its `id` in the "
            "first `send`; an upload no message carries is deleted after 24 hours.",
            "security": [{"visitor": []}],
            "requestBody": _UPLOAD_BODY,
            "responses": {
                "201": json_answer(ref("Attachment"), "Stored; not yet in any message."),
                **_UPLOAD_ERRORS,
            },
        },
    },
    "/attachments/{id}": {
        "parameters": [ID],
        "get": {
            "operationId": "downloadAttachment",
            "summary": "The file's bytes, for its uploader, and once sent, for the "
            "conversation's visitor (not from internal notes) and agents. Anyone else, "
            "with or without credentials, gets 404.",
            "security": _WHO,
            "parameters": [
                {
                    "name": "download",
                    "in": "query",
                    "description": "Present: `Content-Disposition: attachment` for images too.",
                    "schema": {"type": "string"},
                }
            ],
            "responses": {
                "200": {
                    "description": "The file, as the type found from its bytes.",
                    "headers": _DOWNLOAD_HEADERS,
                    "content": {
                        mime: {"schema": {"type": "string", "format": "binary"}}
                        for mime in KNOWN_TYPES
                    },
                },
                **errors(404, 503, why={404: "No such attachment, or not for this caller"}),
            },
        },
    },
}

_ATTACHMENT_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string"},
    "name": {
        "type": "string",
        "description": "The uploader's name for it, made safe: no path or control "
        "characters, an extension that matches `type`.",
    },
    "size": {"type": "integer", "minimum": 1},
    "type": {"type": "string", "enum": list(KNOWN_TYPES)},
}

SCHEMAS: dict[str, Any] = {
    "Attachment": {
        "type": "object",
        "required": ["id", "name", "size", "type"],
        "properties": _ATTACHMENT_PROPERTIES,
    },
    "ExportAttachment": {
        "type": "object",
        "required": ["id", "name", "size", "type", "sha256", "uploaded_at", "file"],
        "properties": {
            **_ATTACHMENT_PROPERTIES,
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "uploaded_at": {"type": "string", "format": "date-time"},
            "file": {
                "type": "string",
                "description": "Its path inside the export ZIP (`files/<id>-<name>`).",
            },
        },
    },
}
