"""Rows the Store hands out and takes in: plain, immutable, no I/O."""

from __future__ import annotations

from typing import Any

import msgspec


class Visitor(msgspec.Struct, frozen=True):
    id: str
    account_id: str | None
    created_at: int


class Account(msgspec.Struct, frozen=True):
    id: str
    sub: str
    name: str | None
    email: str | None
    phone: str | None
    verified_by: str | None
    verified_at: int | None
    legal_hold: bool = False
    # Fields whose value came from a verified identity: changing them needs approval.
    verified_fields: tuple[str, ...] = ()
    created_at: int = 0
    # Not a column: in ``link_identity``'s answer, the `verified` event messages it stored
    # in the conversations it merged (the hub fans them out).
    events: tuple[StoredMessage, ...] = ()


class IdentityClaims(msgspec.Struct, frozen=True):
    """What a verified identity token says about its person, as the store keeps it."""

    sub: str
    name: str | None
    email: str | None
    phone: str | None
    idp: str | None
    pid_hash: str | None


class SessionInfo(msgspec.Struct, frozen=True):
    """One visitor socket's technical data (P4): kept for security, shown with care."""

    id: str
    visitor_id: str
    started_at: int
    ip: str | None = None
    user_agent: str | None = None
    device_class: str | None = None
    browser: str | None = None
    os: str | None = None
    page_url: str | None = None
    page_title: str | None = None
    referrer: str | None = None
    locale: str | None = None
    ended_at: int | None = None


class Agent(msgspec.Struct, frozen=True):
    id: str
    email: str | None
    name: str
    role: str
    active: bool
    kind: str = "human"


class ApiToken(msgspec.Struct, frozen=True):
    id: str
    agent: Agent


class Invitation(msgspec.Struct, frozen=True):
    """An admin's invitation of a new staff member (``chatserver.invitations``, migration 14).

    Only the SHA-256 of its token is stored; ``used_at`` is set when it is accepted
    (the agent then exists), ``revoked_at`` when an admin revokes it or invites the
    same email again.
    """

    id: str
    email: str
    name: str
    role: str
    invited_by: str | None
    created_at: int
    expires_at: int
    used_at: int | None = None
    revoked_at: int | None = None


class LastMessage(msgspec.Struct, frozen=True):
    """The newest message of a conversation that is not an event (inbox listings)."""

    seq: int
    kind: str
    author_role: str
    # The body's first non-empty line, trimmed, at most 140 characters.
    preview: str
    created_at: int
    attachments: int = 0


class SnippetPart(msgspec.Struct, frozen=True, array_like=True):
    text: str
    hit: bool


class SearchMatch(msgspec.Struct, frozen=True):
    """The newest message of a conversation that matches a search, with a snippet of it."""

    seq: int
    message_id: str
    snippet: tuple[SnippetPart, ...]


class Conversation(msgspec.Struct, frozen=True):
    id: str
    visitor_id: str | None
    account_id: str | None
    status: str
    assignee_id: str | None
    assignee_name: str | None
    tags: list[str]
    last_seq: int
    created_at: int
    updated_at: int
    last_message_at: int | None
    closed_at: int | None
    legal_hold: bool
    # The email a visitor left with a message while no agent was online.
    contact_email: str | None = None
    # Where the asking agent has read up to (listings only).
    read_seq: int | None = None
    # The linked account's name and identity provider (``verified_by``), if any.
    name: str | None = None
    verified_by: str | None = None
    # Listings and ``inbox_conversation`` only (UNSET elsewhere): the newest message that
    # is not an event, and (listings with a reader) the reader's unread messages that are
    # neither events nor their own.
    last_message: LastMessage | msgspec.UnsetType | None = msgspec.UNSET
    unread: int | None = None
    # Searches only: the conversation's newest matching message.
    match: SearchMatch | msgspec.UnsetType | None = msgspec.UNSET
    # Not a column: in ``update_conversation``'s answer, the event messages the change
    # stored (`assigned`, `resolved` …; the hub fans them out).
    events: tuple[StoredMessage, ...] = ()


class NewMessage(msgspec.Struct, frozen=True):
    """A message to store. ``conversation_id=None`` starts ``new_conversation_id``."""

    message_id: str
    author_role: str
    # None for the server's own (``system``) messages.
    author_id: str | None
    kind: str
    body: str
    created_at: int
    client_msg_id: str | None = None
    conversation_id: str | None = None
    new_conversation_id: str | None = None
    # A visitor may write only into their own conversations; checked in the
    # storing transaction too, so no caller can forget it.
    visitor_id: str | None = None
    # The verified account of that visitor: its conversations from other devices are theirs too.
    account_id: str | None = None
    # With a new conversation: it starts `pending`, with this way to reach them.
    contact_email: str | None = None
    # Ids of uploaded attachments this message carries (checked and linked when stored).
    attachments: tuple[str, ...] = ()
    # A `kind: "event"` message's structured data (``chatserver.timeline``).
    event: dict[str, Any] | None = None


class AttachmentRef(msgspec.Struct, frozen=True):
    """What a message says of a file it carries: the ``attachments`` items of its frames."""

    id: str
    name: str
    size: int
    type: str


class Attachment(msgspec.Struct, frozen=True):
    """One uploaded file as stored (``chatserver.attachments``)."""

    id: str
    conversation_id: str | None
    message_id: str | None
    uploader_role: str
    uploader_id: str
    name: str
    size: int
    type: str
    sha256: str
    storage_key: str
    created_at: int
    # Filled by ``Store.attachment`` for the access check: where it was sent, and to whom.
    message_kind: str | None = None
    visitor_id: str | None = None
    account_id: str | None = None


class StoredMessage(msgspec.Struct, frozen=True):
    id: str
    conversation_id: str
    seq: int
    author_role: str
    author_id: str | None
    author_name: str | None
    kind: str
    body: str
    created_at: int
    client_msg_id: str | None = None
    # True when this client_msg_id had been stored before: nothing new was written.
    duplicate: bool = False
    # True when storing it started the conversation, and the status it started in.
    created_conversation: bool = False
    conversation_status: str = "open"
    # True when this (visitor's) message reopened a resolved conversation.
    reopened: bool = False
    attachments: tuple[AttachmentRef, ...] = ()
    # A `kind: "event"` message's structured data: ``{"type": …, …}`` (chatserver.timeline).
    event: dict[str, Any] | None = None
    # Not a column: the event messages storing this one caused, stored right after it in
    # the same transaction (a visitor's message reopening a resolved conversation).
    events: tuple[StoredMessage, ...] = ()


class CannedResponse(msgspec.Struct, frozen=True):
    id: str
    shortcut: str
    body: str
    updated_at: int


class Policy(msgspec.Struct, frozen=True):
    version: str
    url: str | None
    published_at: int


class ConversationPage(msgspec.Struct, frozen=True):
    items: list[Conversation]
    next_cursor: str | None


class ConversationCounts(msgspec.Struct, frozen=True):
    """The inbox's counters for one agent (``Store.conversation_counts``)."""

    # Conversations by status.
    status: dict[str, int]
    # Open or pending conversations: all, unassigned, assigned to the agent.
    all: int
    unassigned: int
    mine: int
    # The agent's unread messages in open or pending conversations that are theirs or
    # unassigned (as ``Conversation.unread``).
    unread: int


class Subject(msgspec.Struct, frozen=True):
    """A person whose data the privacy operations act on.

    ``kind`` is ``account`` (a verified person; ``id`` is the account's id) or
    ``visitor`` (someone never verified; ``id`` is the visitor's id).
    """

    id: str
    kind: str
    account_id: str | None  # the platform's ``sub``
    created_at: int
    legal_hold: bool
    visitor_ids: tuple[str, ...]


class AuditRecord(msgspec.Struct, frozen=True):
    """An audit entry to append; the store chains it to the one before."""

    id: str
    at: int
    action: str
    actor_role: str | None = None
    actor_id: str | None = None
    subject_id: str | None = None
    details: dict[str, object] = {}


class AuditEntry(msgspec.Struct, frozen=True):
    seq: int
    id: str
    at: int
    actor_role: str | None
    actor_id: str | None
    action: str
    subject_id: str | None
    details: str  # canonical JSON, exactly as hashed
    prev_hash: str
    hash: str


class Rectification(msgspec.Struct, frozen=True):
    id: str
    account_id: str
    field: str
    old_value: str | None
    new_value: str | None
    status: str
    requested_at: int
    requested_by: str | None
    decided_at: int | None
    decided_by: str | None


class Tombstone(msgspec.Struct, frozen=True):
    id: str
    erased_at: int
    ordered_by: str | None
    counts: dict[str, int]


class Rating(msgspec.Struct, frozen=True):
    """A visitor's satisfaction rating of a resolved conversation (one per conversation)."""

    conversation_id: str
    visitor_id: str | None
    # The conversation's assignee when it was rated.
    agent_id: str | None
    score: int
    comment: str | None
    created_at: int
    # Not a column: in ``save_rating``'s answer, the `rated` event message it stored.
    events: tuple[StoredMessage, ...] = ()
