"""The rules of attachments: who may upload where, and who may download what.

An agent may attach files to any conversation; a visitor to their own (or, before
their first message, to none yet: the message that carries the file starts the
conversation). Once sent with a message, a file is for the conversation's visitor
and its agents; before that, for its uploader only. A file sent with an internal
note is for agents only. Anyone else is told the file does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec

from chatserver.attachments.storage import LocalStorage, Storage
from chatserver.attachments.upload import receive_file
from chatserver.clock import Clock, uuid7
from chatserver.config import Settings
from chatserver.errors import Forbidden, NotFound
from chatserver.store.base import Store
from chatserver.store.models import Attachment, AttachmentRef, Conversation

# Uploads one person may have waiting for a message to carry them.
MAX_UNSENT = 20


class Party(msgspec.Struct, frozen=True):
    """Who uploads or downloads: an agent, or a visitor (with their verified account)."""

    role: str  # "agent" or "visitor"
    id: str
    account_id: str | None = None


def storage_for(settings: Settings) -> Storage:
    """The attachment storage the settings name: for now, ``data_dir/attachments``."""
    return LocalStorage(Path(settings.data_dir) / "attachments")


def owns(party: Party, conversation: Conversation) -> bool:
    """Whether a visitor's conversation this is (a verified person's, from any device)."""
    return conversation.visitor_id == party.id or (
        party.account_id is not None and conversation.account_id == party.account_id
    )


def may_download(party: Party, attachment: Attachment) -> bool:
    if (attachment.uploader_role, attachment.uploader_id) == (party.role, party.id):
        return True
    if attachment.message_id is None:
        return False  # not sent yet: its uploader's alone
    if party.role == "agent":
        return True
    return attachment.message_kind != "note" and (
        attachment.visitor_id == party.id
        or (party.account_id is not None and attachment.account_id == party.account_id)
    )


class Attachments:
    def __init__(self, store: Store, storage: Storage, settings: Settings, clock: Clock) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self.clock = clock

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(self.settings.attachment_types)

    async def upload(
        self,
        party: Party,
        conversation_id: str | None,
        chunks: AsyncIterator[bytes],
        *,
        content_type: str | None,
        content_length: str | None,
    ) -> AttachmentRef:
        """Receive a file for ``conversation_id`` (None: a visitor's first message)."""
        if not self.allowed:
            raise Forbidden("attachments are turned off on this server")
        received = await receive_file(
            chunks,
            content_type=content_type,
            content_length=content_length,
            storage=self.storage,
            max_bytes=int(self.settings.attachment_max_bytes),
            allowed=self.allowed,
        )
        now = self.clock.now_us()
        attachment = Attachment(
            id=uuid7(now),
            conversation_id=conversation_id,
            message_id=None,
            uploader_role=party.role,
            uploader_id=party.id,
            name=received.name,
            size=received.size,
            type=received.type,
            sha256=received.sha256,
            storage_key=received.key,
            created_at=now,
        )
        try:
            await self.store.add_attachment(attachment, max_unsent=MAX_UNSENT)
        except BaseException:
            await self.storage.delete(received.key)
            raise
        return AttachmentRef(
            id=attachment.id, name=attachment.name, size=attachment.size, type=attachment.type
        )

    async def for_download(self, party: Party, attachment_id: str) -> Attachment:
        attachment = None
        if len(attachment_id) <= 64:
            attachment = await self.store.attachment(attachment_id)
        if attachment is None or not may_download(party, attachment):
            raise NotFound("no such attachment")
        return attachment

    async def open(self, attachment: Attachment) -> AsyncIterator[bytes]:
        try:
            return await self.storage.open(attachment.storage_key)
        except FileNotFoundError:
            # Its conversation was erased a moment ago: the row was read before.
            raise NotFound("no such attachment") from None
