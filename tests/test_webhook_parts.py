"""The webhook parts on their own: the signature receivers verify, which URLs and addresses
are allowed, what an event of a kind without its own shaper carries, the backoff."""

from __future__ import annotations

import pytest

from chatserver.errors import BadRequest
from chatserver.store.models import StoredMessage
from chatserver.webhooks.dispatcher import MAX_DELAY, backoff
from chatserver.webhooks.events import shape
from chatserver.webhooks.signing import InvalidSignature, sign, verify_signature
from chatserver.webhooks.urls import Refused, check_url, resolve

SECRET = "whsec_test"
BODY = b'{"id":"d1","type":"message.created","created_at":"x","data":{}}'
NOW = 1_800_000_000


def test_a_signature_verifies_and_answers_its_time() -> None:
    """What ``sign`` makes, ``verify_signature`` accepts within the tolerance either way."""
    header = sign(SECRET, NOW, BODY)
    assert header.startswith(f"t={NOW},v1=") and len(header.split("v1=")[1]) == 64
    assert verify_signature(SECRET, header, BODY, NOW) == NOW
    assert verify_signature(SECRET, header, BODY, NOW + 300) == NOW
    assert verify_signature(SECRET, header, BODY, NOW - 300) == NOW
    # Another v1 (say, signed with a retired secret) beside the right one is fine.
    other = sign("whsec_old", NOW, BODY).split(",")[1]
    assert verify_signature(SECRET, f"{header}, {other}", BODY, NOW) == NOW


@pytest.mark.parametrize(
    ("secret", "header", "body", "now", "why"),
    [
        (SECRET, sign(SECRET, NOW, BODY), BODY + b" ", NOW, "does not match"),
        ("whsec_other", sign(SECRET, NOW, BODY), BODY, NOW, "does not match"),
        (SECRET, sign(SECRET, NOW, BODY), BODY, NOW + 301, "tolerance"),
        (SECRET, sign(SECRET, NOW, BODY), BODY, NOW - 301, "tolerance"),
        (SECRET, sign(SECRET, NOW, BODY).replace(f"t={NOW}", f"t={NOW + 1}"), BODY, NOW, "match"),
        (SECRET, "", BODY, NOW, "malformed"),
        (SECRET, "garbage", BODY, NOW, "malformed"),
        (SECRET, f"t={NOW}", BODY, NOW, "needs t= and v1="),
        (SECRET, "v1=" + "0" * 64, BODY, NOW, "needs t= and v1="),
        (SECRET, f"t=-{NOW},v1=00", BODY, NOW, "malformed timestamp"),
        (SECRET, f"t={'9' * 40},v1=00", BODY, NOW, "malformed timestamp"),
        (SECRET, "t=١٢٣,v1=00", BODY, NOW, "malformed timestamp"),
        (SECRET, f"t={NOW},v1=zz", BODY, NOW, "does not match"),
        (SECRET, f"t={NOW},v1=ü", BODY, NOW, "does not match"),
    ],
)
def test_a_bad_signature_is_refused(
    secret: str, header: str, body: bytes, now: int, why: str
) -> None:
    """A changed body, another secret, an old or future time, or a malformed header fail."""
    with pytest.raises(InvalidSignature, match=why):
        verify_signature(secret, header, body, now)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/in",
        "http://hooks.example.com:8080/in?x=1",
        "https://8.8.8.8/in",
        "https://[2001:4860:4860::8888]/in",
        "https://xn--exmple-cua.com/",
    ],
)
def test_good_urls_are_kept_as_written(url: str) -> None:
    """Public http(s) URLs pass unchanged."""
    assert check_url(url, allow_private=False) == url


def test_private_literals_pass_only_when_allowed() -> None:
    """Loopback and documentation addresses pass only with ``webhook_allow_private``."""
    for url in ("http://127.0.0.1:9/", "https://203.0.113.9/in", "http://[fe80::1]/"):
        with pytest.raises(BadRequest, match="webhook_allow_private"):
            check_url(url, allow_private=False)
        assert check_url(url, allow_private=True) == url


async def test_resolve_pins_the_address_and_keeps_the_name() -> None:
    """A delivery connects to the checked address, sending the registered name as Host
    (and as TLS server name for https); private ones are refused unless allowed."""
    target = await resolve("http://localhost:8123/a?b=1", allow_private=True)
    assert target.url in ("http://127.0.0.1:8123/a?b=1", "http://[::1]:8123/a?b=1")
    assert target.host_header == "localhost:8123" and target.sni is None
    secure = await resolve("https://localhost/a", allow_private=True)
    assert secure.host_header == "localhost" and secure.sni == "localhost"
    v6 = await resolve("http://[::1]:81/", allow_private=True)
    assert v6.url == "http://[::1]:81/" and v6.host_header == "[::1]:81"
    with pytest.raises(Refused, match="non-public"):
        await resolve("http://localhost:8123/", allow_private=False)
    with pytest.raises(Refused, match="non-public"):
        await resolve("http://[::ffff:10.0.0.1]/", allow_private=False)
    with pytest.raises(Refused, match="cannot resolve"):
        await resolve("http://no-such-host.invalid/", allow_private=True)


def test_an_event_without_a_shaper_carries_ids_states_and_times_only() -> None:
    """``rating.created`` (or any later event) keeps ids, score, status and times; the
    comment only for endpoints with message bodies; anything else is left out."""
    data = {
        "rating": {
            "conversation_id": "c1",
            "score": 4,
            "comment": "Kari was great",
            "visitor_id": "v1",
            "name": "Kari",
            "created_at": 1_800_000_000_000_000,
        }
    }
    plain = shape("rating.created", data, include_body=False, include_notes=False)
    assert plain is not None and plain.conversation_id == "c1"
    assert plain.data == {
        "rating": {
            "conversation_id": "c1",
            "score": 4,
            "created_at": "2027-01-15T08:00:00.000000Z",
        }
    }
    with_text = shape("rating.created", data, include_body=True, include_notes=False)
    assert with_text is not None and with_text.data["rating"]["comment"] == "Kari was great"


def test_a_note_goes_only_to_endpoints_that_asked_for_notes() -> None:
    """``message.created`` for an internal note shapes to nothing without ``include_notes``."""
    note = StoredMessage(
        id="m", conversation_id="c", seq=3, author_role="agent", author_id="a",
        author_name="Agent", kind="note", body="VIP", created_at=1,
    )  # fmt: skip
    assert (
        shape("message.created", {"message": note}, include_body=True, include_notes=False) is None
    )
    shaped = shape("message.created", {"message": note}, include_body=False, include_notes=True)
    assert shaped is not None and "body" not in shaped.data["message"]


def test_each_wait_is_longer_than_the_last_up_to_the_cap() -> None:
    """Whatever the jitter, the n-th wait lies in [base·2ⁿ⁻¹, 1.5·base·2ⁿ⁻¹], capped."""
    for attempts in range(1, 8):
        low = backoff(attempts, 1.0, 0.0)
        high = backoff(attempts, 1.0, 0.999)
        assert low == 2 ** (attempts - 1) and high < 1.5 * low
        assert backoff(attempts + 1, 1.0, 0.0) > high
    assert backoff(40, 15.0, 0.0) == MAX_DELAY


def test_the_documented_verify_function_is_the_one_the_server_signs_for() -> None:
    """The copy of ``verify_signature`` in docs/webhooks.md runs as it is, accepts what the
    server signs and refuses a changed body or an old time."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "webhooks.md").read_text()
    [code] = [c for c in re.findall(r"```python\n(.*?)```", doc, re.S) if "def verify" in c]
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)
    verify = namespace["verify_signature"]
    refused = namespace["InvalidSignature"]
    assert callable(verify) and isinstance(refused, type)
    header = sign(SECRET, NOW, BODY)
    assert verify(SECRET, header, BODY, NOW) == NOW
    with pytest.raises(refused, match="does not match"):
        verify(SECRET, header, BODY + b"x", NOW)
    with pytest.raises(refused, match="tolerance"):
        verify(SECRET, header, BODY, NOW + 301)
