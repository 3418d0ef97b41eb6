"""The data-access export (P5, GDPR Art. 15 and 20): one person's data as one document.

``shape_export`` turns the store's rows into the document that PROTOCOL.md
describes. It is a pure function, run in a worker thread for big exports.
Other people's data never enters it: a visitor message in the person's threads
that was written by someone else (which the relay does not allow, but an
export must not trust that) is listed without its author or text.
"""

from __future__ import annotations

import json
from typing import Any

from chatserver.attachments.names import export_entry
from chatserver.clock import format_ts
from chatserver.store.models import Subject

FORMAT_VERSION = 1
WITHHELD = "[withheld: written by another person]"


def _ts(value: int | None) -> str | None:
    return format_ts(value) if value is not None else None


def _rating(r: dict[str, Any] | None) -> dict[str, Any] | None:
    """The person's satisfaction rating of a conversation, with the agent it was for."""
    if r is None:
        return None
    return {
        "score": r["score"],
        "comment": r["comment"],
        "created_at": format_ts(r["created_at"]),
        "agent": {"id": r["agent_id"], "name": r["agent_name"]} if r["agent_id"] else None,
    }


def shape_export(rows: dict[str, Any], *, include_notes: bool, now: int) -> dict[str, Any]:
    subject: Subject = rows["subject"]
    account = rows["account"]
    own = set(subject.visitor_ids)
    files: dict[str | None, list[dict[str, Any]]] = {}
    for a in rows.get("attachments", ()):
        files.setdefault(a["message_id"], []).append(a)
    by_conversation: dict[str, list[dict[str, Any]]] = {}
    for m in rows["messages"]:
        if m["kind"] == "note" and not include_notes:
            continue
        if m["author_role"] == "visitor":
            mine = m["author_id"] in own
            author = {
                "role": "visitor",
                "id": m["author_id"] if mine else None,
                "name": (account or {}).get("name") if mine else None,
            }
            body = m["body"] if mine else WITHHELD
            shown = mine
        else:
            author = {"role": m["author_role"], "id": m["author_id"], "name": m["agent_name"]}
            body = m["body"]
            shown = True
        by_conversation.setdefault(m["conversation_id"], []).append(
            {
                "id": m["id"],
                "seq": m["seq"],
                "ts": format_ts(m["created_at"]),
                "kind": m["kind"],
                "author": author,
                "body": body,
                # Files are personal data like the text: withheld with it.
                "attachments": [export_entry(a) for a in files.get(m["id"], ())] if shown else [],
                # What an event message records, beside its sentence (chatserver/timeline.py).
                **({"event": json.loads(m["event"])} if m.get("event") is not None else {}),
            }
        )
    ratings = {r["conversation_id"]: r for r in rows.get("ratings", ())}
    conversations = [
        {
            "id": c["id"],
            "status": c["status"],
            "created_at": _ts(c["created_at"]),
            "closed_at": _ts(c["closed_at"]),
            "contact_email": c["contact_email"],
            "tags": json.loads(c["tags"]),
            "legal_hold": bool(c["legal_hold"]),
            "assignee": {"id": c["assignee_id"], "name": c["assignee_name"]}
            if c["assignee_id"]
            else None,
            "messages": by_conversation.get(c["id"], []),
            "rating": _rating(ratings.get(c["id"])),
        }
        for c in rows["conversations"]
    ]
    profile: dict[str, Any] = {
        "id": subject.id,
        "kind": subject.kind,
        "account_id": subject.account_id,
        "name": None,
        "email": None,
        "phone": None,
        "verification": None,
        "legal_hold": subject.legal_hold,
        "created_at": format_ts(subject.created_at),
        "visitor_ids": list(subject.visitor_ids),
    }
    if account is not None:
        profile.update(
            name=account["name"],
            email=account["email"],
            phone=account["phone"],
            verified_fields=json.loads(account["verified_fields"]),
            # The national id number is never stored, so never exported: only
            # whether the platform vouched for one (its keyed hash is on record).
            national_id_on_record=bool(account["has_pid"]),
        )
        if account["verified_at"] is not None:
            profile["verification"] = {
                "idp": account["verified_by"],
                "verified_at": format_ts(account["verified_at"]),
            }
    return {
        "format_version": FORMAT_VERSION,
        "generated_at": format_ts(now),
        "subject": profile,
        "conversations": conversations,
        "sessions": [
            {
                "id": s["id"],
                "visitor_id": s["visitor_id"],
                "ip": s["ip"],
                "ip_truncated_at": _ts(s["ip_truncated_at"]),
                "user_agent": s["user_agent"],
                "device_class": s["device_class"],
                "browser": s["browser"],
                "os": s["os"],
                "page_url": s["page_url"],
                "page_title": s["page_title"],
                "referrer": s["referrer"],
                "locale": s["locale"],
                "started_at": _ts(s["started_at"]),
                "last_seen_at": _ts(s["last_seen_at"]),
                "ended_at": _ts(s["ended_at"]),
            }
            for s in rows["sessions"]
        ],
        "consents": [
            {
                "policy_version": c["policy_version"],
                "policy_url": c["policy_url"],
                "accepted_at": format_ts(c["accepted_at"]),
            }
            for c in rows["consents"]
        ],
        "rectifications": [
            {
                "id": r["id"],
                "field": r["field"],
                "old_value": r["old_value"],
                "new_value": r["new_value"],
                "status": r["status"],
                "requested_at": format_ts(r["requested_at"]),
                "requested_by": r["requested_by"],
                "decided_at": _ts(r["decided_at"]),
                "decided_by": r["decided_by"],
            }
            for r in rows["rectifications"]
        ],
        # Files the person uploaded that no message carries (yet): theirs all the same.
        "unsent_attachments": [
            export_entry(a)
            for a in files.get(None, ())
            if a["uploader_role"] == "visitor" and a["uploader_id"] in own
        ],
    }
