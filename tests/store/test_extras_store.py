"""The store's extras on both backends: attachments, ratings and CSAT, business hours,
the webhook outbox and the mail outbox. The same tests run against SQLite and
PostgreSQL; background work (webhook deliveries, emails) is claimed by several stores
on one database at once, as several nodes would, and nothing is taken twice."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from chatserver.business_hours import Interval, Schedule, Week
from chatserver.clock import Clock, uuid7
from chatserver.errors import BadRequest, Conflict, NotFound, RateLimited
from chatserver.mail.service import mail_store_for
from chatserver.mail.store import Confirmation, MailDb, OutboxRow
from chatserver.store.models import Attachment, AuditRecord, NewMessage
from chatserver.store.sqlite import SQLiteStore
from chatserver.webhooks.dispatcher import Dispatcher
from chatserver.webhooks.service import webhook_store_for
from chatserver.webhooks.store import Attempt, Endpoint, NewDelivery, WebhookOutbox
from tests.helpers import make_settings
from tests.web.webhook_receiver import Receiver

NOW = 1_800_000_000_000_000
SECOND = 1_000_000
DAY = 86_400 * SECOND

Opener = Callable[[], Any]


@pytest.fixture(params=["sqlite", "postgresql"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens stores on one database: each call is another node (or process) on it."""
    opened: list[Any] = []
    if request.param == "sqlite":

        def make() -> Any:
            return SQLiteStore(tmp_path / "chat.db")

    else:
        url = request.getfixturevalue("pg_url")
        from chatserver.store import store_from_url

        def make() -> Any:
            return store_from_url(url)

    async def open_one() -> Any:
        s = make()
        await s.open()
        opened.append(s)
        return s

    yield open_one
    for s in reversed(opened):
        await s.close()


@pytest.fixture
async def store(opener: Opener) -> Any:
    return await opener()


def is_pg(store: Any) -> bool:
    return not isinstance(store, SQLiteStore)


def dialect(store: Any, sql: str) -> str:
    """``?`` placeholders as the store's database wants them."""
    if not is_pg(store):
        return sql
    n = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(n)}", sql)


async def rows(store: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await store._rows(dialect(store, sql), params)]


async def execute(store: Any, sql: str, *params: Any) -> None:
    """A write outside the store's API (what another part of the server would do)."""
    text = dialect(store, sql)
    if is_pg(store):

        async def op(conn: Any, tx: Any) -> None:
            await conn.execute(text, *params)

        await store.writer.run(op)
    else:
        await store.writer.run(lambda conn, tx: conn.execute(text, params))


async def visitor(store: Any, visitor_id: str = "v1") -> str:
    await store.create_visitor(visitor_id, "hash-" + visitor_id, NOW)
    return visitor_id


def message(
    visitor_id: str,
    *,
    conversation: str | None = None,
    attachments: tuple[str, ...] = (),
    body: str = "hi",
) -> NewMessage:
    return NewMessage(
        message_id=uuid7(),
        author_role="visitor",
        author_id=visitor_id,
        kind="text",
        body=body,
        created_at=NOW,
        client_msg_id=uuid7(),
        conversation_id=conversation,
        new_conversation_id=None if conversation else uuid7(),
        visitor_id=visitor_id,
        attachments=attachments,
    )


async def conversation(store: Any, visitor_id: str = "v1") -> str:
    stored = await store.append_message(message(visitor_id))
    return str(stored.conversation_id)


def upload(
    uploader: str, *, conversation: str | None = None, at: int = NOW, role: str = "visitor"
) -> Attachment:
    attachment_id = uuid7()
    return Attachment(
        id=attachment_id,
        conversation_id=conversation,
        message_id=None,
        uploader_role=role,
        uploader_id=uploader,
        name=f"{attachment_id}.png",
        size=1234,
        type="image/png",
        sha256="ab" * 32,
        storage_key="key-" + attachment_id,
        created_at=at,
    )


def audit(action: str) -> AuditRecord:
    return AuditRecord(id=uuid7(), at=NOW, action=action, actor_role="agent", actor_id="admin")


# ---------------------------------------------------------------- attachments


async def test_an_attachment_is_claimed_by_the_message_that_carries_it(store: Any) -> None:
    """A visitor's upload before their first message is linked to it and its new
    conversation; messages read back list it; it cannot be sent again."""
    vid = await visitor(store)
    first = upload(vid)
    await store.add_attachment(first, max_unsent=5)
    assert await store.attachment(first.id) == first
    stored = await store.append_message(message(vid, attachments=(first.id,)))
    assert [(r.id, r.name, r.size, r.type) for r in stored.attachments] == [
        (first.id, first.name, 1234, "image/png")
    ]
    cid = stored.conversation_id
    got = await store.attachment(first.id)
    assert got is not None
    assert (got.message_id, got.conversation_id, got.message_kind, got.visitor_id) == (
        stored.id,
        cid,
        "text",
        vid,
    )
    [read] = await store.messages_after(cid, 0, 10, include_notes=False)
    assert read.attachments == stored.attachments

    with pytest.raises(Conflict, match="another message"):
        await store.append_message(message(vid, conversation=cid, attachments=(first.id,)))
    # Two in one message, in any order: answered sorted by id.
    a, b = upload(vid, conversation=cid), upload(vid, conversation=cid)
    for x in (a, b):
        await store.add_attachment(x, max_unsent=5)
    two = await store.append_message(message(vid, conversation=cid, attachments=(b.id, a.id)))
    assert [r.id for r in two.attachments] == sorted([a.id, b.id])
    assert await store.attachment_keys([a.id, b.id, "nope"]) == {
        a.id: a.storage_key,
        b.id: b.storage_key,
    }


async def test_attachments_that_may_not_be_sent_are_refused(store: Any) -> None:
    """Someone else's or a missing one is not found; one listed twice, or uploaded to
    another conversation, is a bad request; nothing is linked by a refused message."""
    v1, v2 = await visitor(store, "v1"), await visitor(store, "v2")
    c1, c2 = await conversation(store, v1), await conversation(store, v1)
    mine = upload(v1, conversation=c1)
    theirs = upload(v2)
    for x in (mine, theirs):
        await store.add_attachment(x, max_unsent=5)
    with pytest.raises(NotFound, match="no such attachment"):
        await store.append_message(message(v1, conversation=c1, attachments=(theirs.id,)))
    with pytest.raises(NotFound, match="no such attachment"):
        await store.append_message(message(v1, conversation=c1, attachments=("missing",)))
    with pytest.raises(BadRequest, match="twice"):
        await store.append_message(message(v1, conversation=c1, attachments=(mine.id, mine.id)))
    with pytest.raises(BadRequest, match="another conversation"):
        await store.append_message(message(v1, conversation=c2, attachments=(mine.id,)))
    got = await store.attachment(mine.id)
    assert got is not None and got.message_id is None


async def test_one_attachment_in_two_messages_at_once_goes_with_one(opener: Opener) -> None:
    """Two messages carrying the same file, through two stores (nodes) at the same time,
    and twice in one store's batch: exactly one of each pair is stored."""
    node_a, node_b = await opener(), await opener()
    vid = await visitor(node_a)
    cid = await conversation(node_a, vid)
    for pair in ((node_a, node_b), (node_a, node_a)):
        shared = upload(vid, conversation=cid)
        await node_a.add_attachment(shared, max_unsent=50)
        outcomes = await asyncio.gather(
            *(
                s.append_message(message(vid, conversation=cid, attachments=(shared.id,)))
                for s in pair
            ),
            return_exceptions=True,
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "StoredMessage"]
        got = await node_b.attachment(shared.id)
        stored = next(o for o in outcomes if not isinstance(o, BaseException))
        assert got is not None and got.message_id == stored.id


async def test_unsent_uploads_are_limited_per_uploader(opener: Opener) -> None:
    """At ``max_unsent`` files waiting, the next upload is refused, also when the uploads
    come through two stores at once; a sent file no longer counts; a gone conversation
    is not found."""
    node_a, node_b = await opener(), await opener()
    vid = await visitor(node_a)
    cid = await conversation(node_a, vid)
    outcomes = await asyncio.gather(
        *(s.add_attachment(upload(vid), max_unsent=3) for s in (node_a, node_b) * 4),
        return_exceptions=True,
    )
    assert sum(o is None for o in outcomes) == 3
    assert all(isinstance(o, RateLimited) for o in outcomes if o is not None)
    waiting = await rows(node_a, "SELECT id FROM attachments WHERE message_id IS NULL")
    assert len(waiting) == 3
    # An agent's uploads count apart from the visitor's.
    await node_a.add_attachment(upload("agent-1", conversation=cid, role="agent"), max_unsent=3)
    await node_a.append_message(message(vid, conversation=cid, attachments=(waiting[0][0],)))
    await node_b.add_attachment(upload(vid), max_unsent=3)
    with pytest.raises(RateLimited):
        await node_b.add_attachment(upload(vid), max_unsent=3)
    with pytest.raises(NotFound, match="no such conversation"):
        await node_a.add_attachment(upload(vid, conversation="gone"), max_unsent=30)


async def test_deleted_attachments_go_to_the_trash_until_forgotten(store: Any) -> None:
    """Rows gone however they went (a conversation deleted, cascading through its
    messages; an unsent upload expired) leave their storage keys in the trash."""
    vid = await visitor(store)
    sent = upload(vid)
    await store.add_attachment(sent, max_unsent=5)
    cid = (await store.append_message(message(vid, attachments=(sent.id,)))).conversation_id
    old, fresh = upload(vid, at=NOW - 2 * DAY), upload(vid, at=NOW)
    other = upload(vid, conversation=cid, at=NOW - 2 * DAY)
    for x in (old, fresh, other):
        await store.add_attachment(x, max_unsent=5)
    assert await store.trashed_attachment_keys(10) == []

    assert await store.expire_unsent_attachments(NOW - DAY, limit=1) == 1
    assert await store.expire_unsent_attachments(NOW - DAY) == 1
    assert await store.expire_unsent_attachments(NOW - DAY) == 0
    assert await store.attachment(fresh.id) is not None
    assert sorted(await store.trashed_attachment_keys(10)) == sorted(
        [old.storage_key, other.storage_key]
    )

    await execute(store, "DELETE FROM conversations WHERE id = ?", cid)
    assert await store.attachment(sent.id) is None
    trashed = await store.trashed_attachment_keys(10)
    assert sorted(trashed) == sorted([old.storage_key, other.storage_key, sent.storage_key])
    [oldest] = await store.trashed_attachment_keys(1)
    assert oldest in (old.storage_key, other.storage_key)
    keys = [sent.storage_key, fresh.storage_key, old.storage_key, "key-unknown"]
    assert await store.known_storage_keys(keys) == set(keys[:3])

    await store.forget_trashed_attachments([sent.storage_key, old.storage_key])
    assert await store.trashed_attachment_keys(10) == [other.storage_key]
    assert await store.known_storage_keys(keys) == {fresh.storage_key}


async def test_a_persons_attachments_are_exported_and_erased(store: Any) -> None:
    """The export lists the files sent in their conversations and those uploaded and never
    sent; the erasure deletes both rows, and the trash names both files."""
    vid = await visitor(store)
    other = await visitor(store, "v-other")
    sent, loose, someone_elses = upload(vid), upload(vid), upload(other)
    for x in (sent, loose, someone_elses):
        await store.add_attachment(x, max_unsent=5)
    await store.append_message(message(vid, attachments=(sent.id,)))
    exported = await store.export_rows(vid)
    assert exported is not None
    assert sorted(a["id"] for a in exported["attachments"]) == sorted([sent.id, loose.id])
    assert {a["name"] for a in exported["attachments"]} == {sent.name, loose.name}
    await store.erase_subject(
        vid,
        tombstone_id=uuid7(),
        subject_ref="ref-" + vid,
        ordered_by="compliance:x",
        now=NOW,
        audit=AuditRecord(id=uuid7(), at=NOW, action="subject.erasure", subject_id=vid),
    )
    assert await store.attachment(sent.id) is None and await store.attachment(loose.id) is None
    assert await store.attachment(someone_elses.id) is not None
    assert sorted(await store.trashed_attachment_keys(10)) == sorted(
        [sent.storage_key, loose.storage_key]
    )


# ---------------------------------------------------------------- ratings, business hours


async def test_a_resolved_conversation_is_rated_once_and_rated_again(store: Any) -> None:
    vid = await visitor(store)
    await store.add_agent(
        agent_id="a1", email="a1@example.com", name="Ann", role="agent", password_hash=None, now=NOW
    )
    cid = await conversation(store, vid)
    with pytest.raises(NotFound):
        await store.save_rating("gone", visitor_id=vid, score=5, comment=None, now=NOW)
    with pytest.raises(Conflict, match="resolved"):
        await store.save_rating(cid, visitor_id=vid, score=5, comment=None, now=NOW)
    await store.update_conversation(cid, now=NOW, status="resolved", assignee_id="a1")
    rating, replaced = await store.save_rating(
        cid, visitor_id=vid, score=2, comment="slow", now=NOW + 1
    )
    assert not replaced and (rating.agent_id, rating.score, rating.comment) == ("a1", 2, "slow")
    # Stored with its `rated` event line, which is not part of the rating itself.
    (line,) = rating.events
    assert (line.kind, line.author_role, line.body) == ("event", "system", "Rated 2/5 with a comment")
    assert line.event == {"type": "rated", "score": 2, "comment_given": True}
    assert await store.rating(cid) == msgspec.structs.replace(rating, events=())
    again, replaced = await store.save_rating(
        cid, visitor_id=vid, score=5, comment=None, now=NOW + 2
    )
    assert again.events[0].event == {"type": "rated", "score": 5, "comment_given": False}
    assert again.events[0].seq == line.seq + 1
    assert replaced and await store.rating(cid) == msgspec.structs.replace(again, events=())
    assert await store.rating("gone") is None


async def test_csat_rows_are_the_same_on_every_store(store: Any) -> None:
    """Grouped by score, agent and UTC day, as plain ints and ``YYYY-MM-DD`` days."""
    for agent_id, name in (("a1", "Ann"), ("a2", "Bob")):
        await store.add_agent(
            agent_id=agent_id, email=None, name=name, role="agent", password_hash=None, now=NOW
        )
    day0 = (NOW // DAY) * DAY  # midnight UTC
    given = [
        ("a1", 5, day0 + 10),
        ("a1", 3, day0 + DAY - 1),
        ("a2", 4, day0 + DAY),
        (None, 1, day0),
    ]
    for n, (agent, score, at) in enumerate(given):
        vid = await visitor(store, f"v{n}")
        cid = await conversation(store, vid)
        if agent:
            await store.update_conversation(cid, now=NOW, status="resolved", assignee_id=agent)
        else:
            await store.update_conversation(cid, now=NOW, status="resolved")
        await store.save_rating(cid, visitor_id=vid, score=score, comment=None, now=at)
    outside = await conversation(store, "v0")
    await store.update_conversation(outside, now=NOW, status="resolved")
    await store.save_rating(outside, visitor_id="v0", score=2, comment=None, now=day0 + 2 * DAY)

    got = await store.csat_rows(day0, day0 + 2 * DAY)
    assert got == {
        "by_score": [(1, 1), (3, 1), (4, 1), (5, 1)],
        "by_agent": [("a1", "Ann", 2, 8, 1), ("a2", "Bob", 1, 4, 1)],
        "by_day": [("2027-01-15", 3, 9, 1), ("2027-01-16", 1, 4, 1)],
    }
    for group in got.values():
        for row in group:
            assert all(type(v) in (int, str) for v in row)
    assert await store.csat_rows(day0 + 3 * DAY, day0 + 4 * DAY) == {
        "by_score": [],
        "by_agent": [],
        "by_day": [],
    }


async def test_business_hours_are_saved_and_replaced(store: Any) -> None:
    assert await store.business_hours() is None
    schedule = Schedule(
        enabled=True,
        time_zone="Europe/Oslo",
        weekly=Week(monday=[Interval("09:00", "12:00"), Interval("13:00", "17:00")]),
        closed_dates=["2027-12-24"],
    )
    await store.save_business_hours(schedule, NOW)
    assert await store.business_hours() == (schedule, NOW)
    off = Schedule(enabled=False)
    await store.save_business_hours(off, NOW + 1)
    assert await store.business_hours() == (off, NOW + 1)


# ---------------------------------------------------------------- webhooks


def endpoint(url: str = "https://hooks.example.com/in", **changes: Any) -> Endpoint:
    fields: dict[str, Any] = {
        "id": uuid7(),
        "url": url,
        "secret": "whsec_x",
        "events": ("message.created", "conversation.created"),
        "description": "",
        "include_message_body": False,
        "include_notes": False,
        "active": True,
        "created_by": "admin",
        "created_at": NOW,
        "updated_at": NOW,
        **changes,
    }
    return Endpoint(**fields)


def delivery(webhook_id: str, at: int, conversation: str | None = None) -> NewDelivery:
    delivery_id = uuid7()
    return NewDelivery(
        id=delivery_id,
        webhook_id=webhook_id,
        event_type="message.created",
        conversation_id=conversation,
        payload=b'{"id":"' + delivery_id.encode() + b'"}',
        created_at=at,
    )


def outbox(store: Any) -> WebhookOutbox:
    found = webhook_store_for(store)
    assert found is not None
    return found


async def test_webhook_endpoints_are_added_changed_and_deleted_on_the_record(store: Any) -> None:
    hooks = outbox(store)
    first = await hooks.add_endpoint(endpoint(), audit("webhook.create"))
    second = await hooks.add_endpoint(endpoint(created_at=NOW + 1), audit("webhook.create"))
    assert await hooks.endpoints() == [first, second]
    changed = await hooks.change_endpoint(
        first.id,
        {"events": ["message.created"], "active": False, "updated_at": NOW + 5},
        audit("webhook.change"),
    )
    assert (changed.events, changed.active, changed.updated_at) == (
        ("message.created",),
        False,
        NOW + 5,
    )
    assert await hooks.endpoint(first.id) == changed
    with pytest.raises(NotFound):
        await hooks.change_endpoint("gone", {"active": True}, audit("webhook.change"))
    await hooks.delete_endpoint(second.id, audit("webhook.delete"))
    with pytest.raises(NotFound):
        await hooks.delete_endpoint(second.id, audit("webhook.delete"))
    assert await hooks.endpoints() == [changed]
    assert await hooks.endpoint(second.id) is None
    actions = [a for (a,) in await rows(store, "SELECT action FROM audit_log ORDER BY seq")]
    assert actions == ["webhook.create", "webhook.create", "webhook.change", "webhook.delete"]


async def test_deliveries_are_claimed_with_a_lease_and_logged(store: Any) -> None:
    """A claimed delivery is not due again until its lease runs out (its node died), or
    it is given back; an attempt logged sets its next time; the log pages newest first."""
    hooks = outbox(store)
    hook = await hooks.add_endpoint(endpoint(), audit("webhook.create"))
    vid = await visitor(store)
    cid = await conversation(store, vid)
    batch = [delivery(hook.id, NOW + i, cid if i == 0 else None) for i in range(3)]
    # Rows for a missing endpoint or conversation are skipped, never an error.
    strays = [delivery("gone", NOW), delivery(hook.id, NOW, "gone")]
    assert await hooks.add_deliveries(batch + strays) == 3
    assert await hooks.due(NOW - 1, skip=set(), limit=10) == []
    assert await hooks.next_due(skip=set()) == NOW

    lease = NOW + 100 * SECOND
    claimed = await hooks.due(NOW + 10, skip={batch[0].id}, limit=1, lease_until=lease)
    assert [(d.id, d.payload, d.url, d.secret, d.lease_until) for d in claimed] == [
        (batch[1].id, batch[1].payload, hook.url, hook.secret, lease)
    ]
    rest = await hooks.due(NOW + 10, skip=set(), limit=10, lease_until=lease)
    assert [d.id for d in rest] == [batch[0].id, batch[2].id]
    assert await hooks.due(NOW + 10, skip=set(), limit=10) == []
    assert await hooks.next_due(skip=set()) == lease
    # The lease ran out: taken again, with the same body.
    [again] = await hooks.due(lease, skip={batch[0].id, batch[2].id}, limit=10)
    assert again.id == batch[1].id and again.payload == batch[1].payload

    # Given back (a shutdown): due again at once. A stale claim gives back nothing.
    await hooks.release(rest, NOW + 20)
    await hooks.release(claimed, NOW + 20)  # ``again`` holds it now, with a later lease
    back = await hooks.due(NOW + 20, skip=set(), limit=10)
    assert [d.id for d in back] == [batch[0].id, batch[2].id]

    attempt = Attempt(at=NOW + 30, status_code=500, error=None, duration_ms=12)
    await hooks.record_attempt(batch[0].id, attempt, status="pending", next_attempt_at=NOW + 40)
    await hooks.record_attempt(batch[0].id, attempt, status="delivered", next_attempt_at=None)
    await hooks.record_attempt("gone", attempt, status="delivered", next_attempt_at=None)
    page, cursor = await hooks.deliveries(hook.id, limit=2)
    assert [d.id for d in page] == [batch[2].id, batch[1].id] and cursor is not None
    [last], end = await hooks.deliveries(hook.id, cursor=cursor, limit=2)
    assert end is None and last.id == batch[0].id
    assert (last.status, last.attempts, last.next_attempt_at, last.finished_at) == (
        "delivered",
        2,
        None,
        NOW + 30,
    )
    assert last.log == [attempt, attempt]
    delivered, _ = await hooks.deliveries(hook.id, status="delivered")
    assert [d.id for d in delivered] == [batch[0].id]
    assert await rows(
        store, "SELECT payload, conversation_id FROM webhook_deliveries WHERE id = ?", batch[0].id
    ) == [(None, None)]
    # Inactive endpoints' deliveries are not due.
    await hooks.change_endpoint(hook.id, {"active": False}, audit("webhook.change"))
    assert await hooks.due(NOW + DAY, skip=set(), limit=10) == []
    assert await hooks.next_due(skip=set()) is None


async def test_nodes_claiming_at_once_never_take_the_same_delivery(opener: Opener) -> None:
    """Three stores on one database claim over and over at the same moment: every
    delivery is taken exactly once."""
    nodes = [await opener() for _ in range(3)]
    hooks = [outbox(n) for n in nodes]
    hook = await hooks[0].add_endpoint(endpoint(), audit("webhook.create"))
    made = [delivery(hook.id, NOW + i) for i in range(60)]
    await hooks[0].add_deliveries(made)
    taken: list[list[str]] = [[], [], []]

    async def claim(n: int) -> None:
        while True:
            got = await hooks[n].due(NOW + DAY, skip=set(), limit=4, lease_until=NOW + 2 * DAY)
            if not got:
                return
            taken[n] += [d.id for d in got]
            await asyncio.sleep(0)

    await asyncio.gather(*(claim(n) for n in range(3)))
    everything = [i for t in taken for i in t]
    assert sorted(everything) == sorted(d.id for d in made)  # each once, none lost


async def test_dispatchers_of_three_nodes_send_each_delivery_once(
    opener: Opener, tmp_path: Path
) -> None:
    """Three nodes' dispatchers over one outbox: every delivery reaches the receiver
    exactly once (no replays refused)."""
    nodes = [await opener() for _ in range(3)]
    settings = make_settings(tmp_path, webhook_allow_private=True, webhook_timeout=5)
    async with Receiver() as receiver:
        hooks = [outbox(n) for n in nodes]
        hook = await hooks[0].add_endpoint(
            endpoint(receiver.url, secret="whsec_r", events=("webhook.test",)),
            audit("webhook.create"),
        )
        receiver.secret = hook.secret
        past = Clock().now_us() - SECOND  # due now
        made = [delivery(hook.id, past + i) for i in range(30)]
        await hooks[0].add_deliveries(made)
        dispatchers = [Dispatcher(h, settings, Clock()) for h in hooks]
        tasks = [asyncio.create_task(d.run()) for d in dispatchers]
        try:
            await receiver.until(lambda seen: len(seen) >= len(made))
            await asyncio.sleep(0.2)  # room for a duplicate to show up
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for d in dispatchers:
                await d.close()
    assert sorted(r.id or "" for r in receiver.requests) == sorted(d.id for d in made)
    assert {r.verdict for r in receiver.requests} == {"accepted"}


async def test_a_node_stopping_mid_attempt_gives_the_delivery_back(
    opener: Opener, tmp_path: Path
) -> None:
    """A dispatcher stopped while its endpoint has not answered gives the delivery back:
    another node takes it at once, not only when the lease runs out."""
    node_a, node_b = await opener(), await opener()
    settings = make_settings(tmp_path, webhook_allow_private=True, webhook_timeout=30)
    arrived, hung_up = asyncio.Event(), asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrived.set()
        try:
            await reader.read()  # never answers: reads until the client hangs up
        finally:
            writer.close()
            hung_up.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        hooks_a, hooks_b = outbox(node_a), outbox(node_b)
        hook = await hooks_a.add_endpoint(
            endpoint(f"http://127.0.0.1:{port}/hook"), audit("webhook.create")
        )
        made = delivery(hook.id, Clock().now_us() - SECOND)
        await hooks_a.add_deliveries([made])
        dispatcher = Dispatcher(hooks_a, settings, Clock())
        task = asyncio.create_task(dispatcher.run())
        await asyncio.wait_for(arrived.wait(), 10)
        now = Clock().now_us()
        assert await hooks_b.due(now, skip=set(), limit=5) == []  # held by node A
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await dispatcher.close()
        [taken] = await hooks_b.due(Clock().now_us(), skip=set(), limit=5)
        assert taken.id == made.id and taken.attempts == 0
        await asyncio.wait_for(hung_up.wait(), 10)
    finally:
        server.close()
        await server.wait_closed()


# ---------------------------------------------------------------- mail


def mail_db(store: Any) -> MailDb:
    found = mail_store_for(store)
    assert found is not None
    return found


def email(at: int, conversation: str | None = None, visitor_id: str | None = None) -> OutboxRow:
    return OutboxRow(
        id=uuid7(),
        kind="transcript",
        recipient="someone@example.com",
        message="Subject: hi\r\n\r\nhello",
        created_at=at,
        conversation_id=conversation,
        visitor_id=visitor_id,
    )


async def test_emails_are_claimed_with_a_lease_and_retried(store: Any) -> None:
    db = mail_db(store)
    vid = await visitor(store)
    cid = await conversation(store, vid)
    queued = [email(NOW + i, cid, vid) for i in range(3)]
    await db.enqueue(queued)
    with pytest.raises(Conflict):
        await db.enqueue([email(NOW, "gone")])
    assert await db.next_due() == NOW
    assert await db.claim_due(NOW - 1, NOW + DAY, 10) == []

    first = await db.claim_due(NOW + 10, NOW + 100, 2)
    assert [(d.id, d.attempts, d.recipient, d.message) for d in first] == [
        (r.id, 1, r.recipient, r.message) for r in queued[:2]
    ]
    [third] = await db.claim_due(NOW + 10, NOW + 100, 10)
    assert third.id == queued[2].id
    assert await db.claim_due(NOW + 10, NOW + 100, 10) == []
    assert await db.next_due() == NOW + 100
    await db.retry_later(queued[0].id, NOW + 50, "boom " * 200)
    await db.remove(queued[1].id)
    [retried] = await db.claim_due(NOW + 60, NOW + 200, 10)
    assert (retried.id, retried.attempts) == (queued[0].id, 2)
    assert await rows(store, "SELECT last_error FROM mail_outbox WHERE id = ?", queued[0].id) == [
        (("boom " * 200)[:500],)
    ]
    # The lease ran out (the node died while sending): taken again.
    [lost] = await db.claim_due(NOW + 100, NOW + 300, 10)
    assert (lost.id, lost.attempts) == (queued[2].id, 2)


async def test_nodes_claiming_at_once_never_send_the_same_email(opener: Opener) -> None:
    nodes = [await opener() for _ in range(3)]
    dbs = [mail_db(n) for n in nodes]
    queued = [email(NOW + i) for i in range(60)]
    await dbs[0].enqueue(queued)
    taken: list[str] = []

    async def claim(n: int) -> None:
        while got := await dbs[n].claim_due(NOW + DAY, NOW + 2 * DAY, 4):
            taken.extend(d.id for d in got)
            await asyncio.sleep(0)

    await asyncio.gather(*(claim(n) for n in range(3)))
    assert sorted(taken) == sorted(r.id for r in queued)


async def test_a_confirmation_is_used_once_and_expires(store: Any) -> None:
    db = mail_db(store)
    vid = await visitor(store)
    cid = await conversation(store, vid)
    pending = Confirmation(
        token_hash="t1",
        visitor_id=vid,
        conversation_id=cid,
        email="x@example.com",
        locale="en",
        created_at=NOW,
        expires_at=NOW + 100,
    )
    await db.add_confirmation(pending, email(NOW, cid, vid))
    assert await db.confirmation("t1") == pending
    assert await db.confirmation("t2") is None
    assert not await db.consume("t1", NOW + 100, email(NOW, cid, vid))  # expired by then
    assert await db.consume("t1", NOW + 10, email(NOW, cid, vid))
    assert not await db.consume("t1", NOW + 11, email(NOW, cid, vid))
    used = await db.confirmation("t1")
    assert used is not None and (used.used_at, used.email) == (NOW + 10, None)
    assert len(await rows(store, "SELECT id FROM mail_outbox")) == 2

    await db.add_confirmation(
        Confirmation(
            token_hash="t2",
            visitor_id=vid,
            conversation_id=cid,
            email="y@example.com",
            locale="nb",
            created_at=NOW,
            expires_at=NOW + 100,
        ),
        email(NOW, cid, vid),
    )
    assert await db.purge_expired(NOW + 100, keep_us=50) == 0
    kept = await db.confirmation("t2")
    assert kept is not None and kept.email is None  # its address went at expiry
    assert await db.purge_expired(NOW + 150, keep_us=50) == 2
    assert await db.confirmation("t2") is None
