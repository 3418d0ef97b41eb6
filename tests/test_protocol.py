"""Frames parsed and encoded in one place, with no socket."""

from __future__ import annotations

import json

import pytest

from chatserver import protocol as p
from chatserver.errors import BadFrame


def assert_bad(text: str, *, agent: bool = False, mentions: str = "") -> None:
    parse = p.parse_agent_frame if agent else p.parse_visitor_frame
    with pytest.raises(BadFrame) as raised:
        parse(text)
    assert raised.value.code == "bad_frame"
    assert mentions in raised.value.message


def test_hello_takes_every_optional_field() -> None:
    """A hello may carry token, identity, page, locale and consent, all optional."""
    frame = p.parse_visitor_frame(
        json.dumps(
            {
                "type": "hello",
                "visitor_token": "vt_x",
                "identity": "a.b.c",
                "page": {"url": "https://x/y", "title": "Y", "referrer": ""},
                "locale": "nb-NO",
                "consent": {"version": "2019-06-01"},
            }
        )
    )
    assert isinstance(frame, p.Hello)
    assert frame.page == p.Page(url="https://x/y", title="Y", referrer="")
    assert frame.consent == p.ConsentIn(version="2019-06-01")
    assert p.parse_visitor_frame('{"type":"hello"}') == p.Hello()


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    """A newer client's extra fields do not break parsing."""
    frame = p.parse_visitor_frame('{"type":"ping","future":true}')
    assert isinstance(frame, p.Ping)


def test_send_defaults_to_text_in_a_new_conversation() -> None:
    """A send without conversation_id or kind starts a conversation with a text message."""
    frame = p.parse_visitor_frame('{"type":"send","client_msg_id":"c","body":"hi"}')
    assert frame == p.Send(client_msg_id="c", body="hi", conversation_id=None, kind="text")


def test_agent_only_frames_are_unknown_to_visitors() -> None:
    """watch, unwatch, subscribe and unsubscribe exist only on the agent socket."""
    for text in (
        '{"type":"watch","conversation_id":"c"}',
        '{"type":"unwatch","conversation_id":"c"}',
        '{"type":"subscribe","inbox":"all"}',
        '{"type":"unsubscribe"}',
    ):
        assert_bad(text, mentions="frame type")
        p.parse_agent_frame(text)


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("", "JSON"),
        ("{", "JSON"),
        ("null", "object"),
        ("[1]", "object"),
        ('{"type":"send","client_msg_id":"c"}', "body"),
        ('{"type":"send","client_msg_id":"","body":"x"}', "client_msg_id"),
        ('{"type":"typing","conversation_id":"c","state":1}', "state"),
        ('{"type":"read","conversation_id":"c","seq":1.5}', "seq"),
        ('{"type":"resume","conversation_id":"c","after_seq":-1}', "after_seq"),
        ('{"type":"hello","page":"x"}', "page"),
        ('{"type":"hello","consent":{}}', "version"),
        ('{"type":"hello","locale":"' + "x" * 36 + '"}', "locale"),
        ('{"type":"send","client_msg_id":"c","body":"x","kind":"note "}', "kind"),
    ],
)
def test_bad_frames_name_what_is_wrong(text: str, mentions: str) -> None:
    """Each malformed frame raises bad_frame with a message naming the problem."""
    assert_bad(text, mentions=mentions)


def test_client_msg_id_is_recovered_for_the_error_ref() -> None:
    """An unparseable send still names its client_msg_id, so the client can match the error."""
    assert p.client_msg_id_of('{"type":"send","client_msg_id":"abc","body":5}') == "abc"
    assert p.client_msg_id_of('{"client_msg_id":5}') is None
    assert p.client_msg_id_of("nonsense") is None
    assert p.client_msg_id_of('{"client_msg_id":"' + "x" * 101 + '"}') is None


def test_server_frames_encode_with_type_first_and_nulls_kept() -> None:
    """Server frames are compact JSON with `type` first and null fields present."""
    text = p.encode(p.ErrorOut(code="bad_frame", message="m"))
    assert text == '{"type":"error","code":"bad_frame","message":"m","ref":null}'
    message = json.loads(
        p.encode(
            p.MessageOut(
                conversation_id="c",
                message_id="m",
                seq=1,
                ts="2026-11-25T10:04:05.123456Z",
                author=p.Author(role="agent", id="a", name=None),
                body="hi",
                kind="text",
            )
        )
    )
    assert list(message) == [
        "type",
        "conversation_id",
        "message_id",
        "seq",
        "ts",
        "author",
        "body",
        "kind",
        "attachments",
    ]
    assert message["attachments"] == []  # always present: clients need not test for it
    assert p.PONG == '{"type":"pong"}'
