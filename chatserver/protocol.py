"""The wire frames of the visitor and agent sockets, parsed and encoded in one place.

No I/O here: ``parse_visitor_frame`` / ``parse_agent_frame`` turn the text of a
frame into a typed struct or raise ``BadFrame``; ``encode`` turns a server frame
into the text sent on every socket that should hear it (encode once, send many).

Unknown fields are ignored so that newer clients keep working against this
server (the contract is extended, never broken); unknown ``type`` values and
fields of the wrong type or size are ``bad_frame``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from chatserver.errors import BadFrame

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ClientMsgId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
ShortText = Annotated[str, msgspec.Meta(max_length=2048)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
# The body's real limit is a setting (``max_body_chars``), checked by the hub so
# that a long body gets ``too_large``; this bound only stops absurd input early.
Body = Annotated[str, msgspec.Meta(max_length=1_000_000)]


# Files one message may carry.
MAX_ATTACHMENTS = 10


class _ClientFrame(msgspec.Struct, tag_field="type", frozen=True):
    pass


class Page(msgspec.Struct, frozen=True):
    url: ShortText = ""
    title: ShortText = ""
    referrer: ShortText = ""


class ConsentIn(msgspec.Struct, frozen=True):
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Hello(_ClientFrame, tag="hello", frozen=True):
    visitor_token: Token | None = None
    identity: Token | None = None
    page: Page | None = None
    locale: Annotated[str, msgspec.Meta(max_length=35)] | None = None
    consent: ConsentIn | None = None


class Contact(msgspec.Struct, frozen=True):
    """How to reach a visitor who left a message while nobody was online."""

    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]


class Send(_ClientFrame, tag="send", frozen=True):
    client_msg_id: ClientMsgId
    body: Body
    conversation_id: Id | None = None
    kind: Literal["text", "note"] = "text"
    # Visitors only, with a new conversation: it starts as `pending` with this contact.
    contact: Contact | None = None
    # Ids of files uploaded by this sender (POST .../attachments); the body may then be empty.
    attachments: Annotated[tuple[Id, ...], msgspec.Meta(max_length=MAX_ATTACHMENTS)] = ()


class TypingIn(_ClientFrame, tag="typing", frozen=True):
    conversation_id: Id
    state: bool


class ReadIn(_ClientFrame, tag="read", frozen=True):
    conversation_id: Id
    seq: Seq


class Resume(_ClientFrame, tag="resume", frozen=True):
    conversation_id: Id
    after_seq: Seq


class Ping(_ClientFrame, tag="ping", frozen=True):
    pass


class Watch(_ClientFrame, tag="watch", frozen=True):
    conversation_id: Id


class Unwatch(_ClientFrame, tag="unwatch", frozen=True):
    conversation_id: Id


class Subscribe(_ClientFrame, tag="subscribe", frozen=True):
    inbox: Literal["unassigned", "mine", "all"]


class Unsubscribe(_ClientFrame, tag="unsubscribe", frozen=True):
    pass


class SetStatus(_ClientFrame, tag="status", frozen=True):
    """An agent says they are away (no new conversations, not counted as online) or back."""

    status: Literal["online", "away"]


class TranscriptIn(_ClientFrame, tag="transcript", frozen=True):
    """A visitor asks for a conversation's transcript by email (chatserver/mail)."""

    conversation_id: Id
    # Needed unless the visitor is verified: then the account's address is used.
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)] | None = None
    locale: Annotated[str, msgspec.Meta(max_length=35)] | None = None
    # Only so that an error can name the request in its `ref`.
    client_msg_id: ClientMsgId | None = None


class Rate(_ClientFrame, tag="rate", frozen=True):
    """A visitor rates a resolved conversation (chatserver/ratings.py)."""

    conversation_id: Id
    score: Annotated[int, msgspec.Meta(ge=1, le=5)]
    # The real limit (1000 characters, `too_large`) is checked by the session.
    comment: Annotated[str, msgspec.Meta(max_length=100_000)] | None = None
    # Only so that an error can name the rating in its `ref`.
    client_msg_id: ClientMsgId | None = None


VisitorFrame = Hello | Send | TypingIn | ReadIn | Resume | Ping | TranscriptIn | Rate
AgentFrame = (
    Hello
    | Send
    | TypingIn
    | ReadIn
    | Resume
    | Ping
    | Watch
    | Unwatch
    | Subscribe
    | Unsubscribe
    | SetStatus
)
# Any frame a session handles, from either socket.
ClientFrame = VisitorFrame | AgentFrame

_visitor_decoder = msgspec.json.Decoder(VisitorFrame)
_agent_decoder = msgspec.json.Decoder(AgentFrame)
_loose_decoder = msgspec.json.Decoder()


def _parse(decoder: msgspec.json.Decoder[Any], text: str | bytes) -> Any:
    try:
        return decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise BadFrame(_explain(str(exc))) from None
    except msgspec.DecodeError:
        raise BadFrame("frame is not a JSON object") from None


def _explain(error: str) -> str:
    """msgspec names the failing path; say plainly when it was the frame's `type`."""
    if "`$.type`" in error or "missing required field `type`" in error:
        return f"unknown or missing frame type ({error})"
    return error


def parse_visitor_frame(text: str | bytes) -> VisitorFrame:
    """A visitor socket's frame, or ``BadFrame`` (the socket stays open)."""
    return _parse(_visitor_decoder, text)  # type: ignore[no-any-return]


def parse_agent_frame(text: str | bytes) -> AgentFrame:
    """An agent socket's frame, or ``BadFrame`` (the socket stays open)."""
    return _parse(_agent_decoder, text)  # type: ignore[no-any-return]


def client_msg_id_of(text: str | bytes) -> str | None:
    """Best-effort ``client_msg_id`` of an unparseable frame, for the error's ``ref``."""
    try:
        data = _loose_decoder.decode(text)
    except msgspec.DecodeError:
        return None
    if isinstance(data, dict):
        ref = data.get("client_msg_id")
        if isinstance(ref, str) and len(ref) <= 100:
            return ref
    return None


# ----------------------------------------------------------------- server frames


class _ServerFrame(msgspec.Struct, tag_field="type", frozen=True):
    pass


class Author(msgspec.Struct, frozen=True):
    role: Literal["visitor", "agent", "system"]
    id: str | None
    name: str | None


class AccountOut(msgspec.Struct, frozen=True):
    id: str
    name: str | None
    verified_by: str | None


class ConversationSummary(msgspec.Struct, frozen=True):
    id: str
    status: str
    last_seq: int
    # How far agents have read: the widget shows "Seen" without waiting for a new read.
    agent_read_seq: int = 0


class Policy(msgspec.Struct, frozen=True):
    version: str | None
    url: str | None
    accepted: bool


class AgentOut(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str = "agent"


class Welcome(_ServerFrame, tag="welcome", frozen=True):
    visitor_id: str
    visitor_token: str
    account: AccountOut | None
    conversations: list[ConversationSummary]
    policy: Policy
    agents_online: bool = False
    open_now: bool = True
    session_id: str | None = None
    # Anonymous conversations of this browser just merged into the verified account.
    merged: int = 0
    # The server can email a conversation's transcript (`transcript` frame).
    email_transcripts: bool = False


class AgentWelcome(_ServerFrame, tag="welcome", frozen=True):
    agent: AgentOut


class Ack(_ServerFrame, tag="ack", frozen=True):
    client_msg_id: str
    conversation_id: str
    message_id: str
    seq: int
    ts: str


class AttachmentOut(msgspec.Struct, frozen=True):
    """A file a message carries; its bytes are at ``GET /api/v1/attachments/{id}``."""

    id: str
    name: str
    size: int
    type: str


class MessageOut(_ServerFrame, tag="message", frozen=True):
    conversation_id: str
    message_id: str
    seq: int
    ts: str
    author: Author
    body: str
    kind: Literal["text", "note", "event"]
    attachments: list[AttachmentOut] = msgspec.field(default_factory=list)
    # An event message's data, ``{type, …}`` (chatserver/timeline.py); omitted otherwise.
    # Event messages go to agents only.
    event: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class TypingOut(_ServerFrame, tag="typing", frozen=True):
    conversation_id: str
    state: bool
    author: Author


class ReadOut(_ServerFrame, tag="read", frozen=True):
    conversation_id: str
    seq: int
    author: Author


class Resumed(_ServerFrame, tag="resumed", frozen=True):
    conversation_id: str
    last_seq: int


class Assignee(msgspec.Struct, frozen=True):
    id: str
    name: str


class RatingOut(msgspec.Struct, frozen=True):
    score: int


class ConversationOut(_ServerFrame, tag="conversation", frozen=True):
    id: str
    status: str
    assignee: Assignee | None
    last_seq: int = 0
    tags: list[str] = msgspec.field(default_factory=list)
    # Agents only (omitted from visitors' copies): the verified account's name and
    # identity provider, and the visitor's rating; each null when there is none.
    name: str | msgspec.UnsetType | None = msgspec.UNSET
    verified_by: str | msgspec.UnsetType | None = msgspec.UNSET
    rating: RatingOut | msgspec.UnsetType | None = msgspec.UNSET


class Watching(_ServerFrame, tag="watching", frozen=True):
    conversation_id: str
    last_seq: int


class Subscribed(_ServerFrame, tag="subscribed", frozen=True):
    inbox: str


class PresenceAgent(_ServerFrame, tag="presence", frozen=True):
    agent: Assignee
    status: Literal["online", "away", "offline"]


class Availability(_ServerFrame, tag="presence", frozen=True):
    """To visitors: whether anyone can answer now (the widget offers a form if not)."""

    agents_online: bool
    open_now: bool


class ErasedOut(_ServerFrame, tag="erased", frozen=True):
    """To agents: these conversations were erased with their person (P7); forget them."""

    conversation_ids: list[str]


class TranscriptRequested(_ServerFrame, tag="transcript_requested", frozen=True):
    """Answer to `transcript`: emailed (`sent`, queued for the SMTP server), or a link to
    confirm the address was emailed first (`confirmation_sent`)."""

    conversation_id: str
    status: Literal["sent", "confirmation_sent"]


class Rated(_ServerFrame, tag="rated", frozen=True):
    """Answer to `rate`: the rating is stored (and replaced any earlier one)."""

    conversation_id: str
    score: int


class Pong(_ServerFrame, tag="pong", frozen=True):
    pass


class ErrorOut(_ServerFrame, tag="error", frozen=True):
    code: str
    message: str
    ref: str | None = None


ServerFrame = (
    Welcome
    | AgentWelcome
    | Ack
    | MessageOut
    | TypingOut
    | ReadOut
    | Resumed
    | ConversationOut
    | Watching
    | Subscribed
    | PresenceAgent
    | Availability
    | ErasedOut
    | TranscriptRequested
    | Rated
    | Pong
    | ErrorOut
)

_encoder = msgspec.json.Encoder()


def encode(frame: ServerFrame) -> str:
    """The text of a server frame: encode once, then send the same string everywhere."""
    return _encoder.encode(frame).decode()


PONG = encode(Pong())
