"""Three real server processes on one Redis and one PostgreSQL database: a node killed
mid-burst, Redis subscribers killed mid-traffic, the database cut off for a while.

Every client keeps a ``View`` of the conversation. It fails the test the moment a
client is shown a message twice (two ``message`` frames for one seq, or one seq
for two different messages); at the end every view must equal the store's
history: every acknowledged message present once, seqs gapless.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed

from tests.cluster.cluster import Node, cluster
from tests.helpers import Client

BURST = 300


class View:
    """What one client shows: seq -> message id, from acks and message frames."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.shown: dict[int, str] = {}
        self.acked: dict[str, tuple[int, str]] = {}  # client_msg_id -> (seq, message id)
        self.framed: set[int] = set()
        self.errors: dict[str, str] = {}  # ref -> code
        self._changed = asyncio.Event()

    def take(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "ack":
            seq, mid = frame["seq"], frame["message_id"]
            earlier = self.acked.get(frame["client_msg_id"])
            assert earlier in (None, (seq, mid)), f"{self.name}: one send, two messages {frame}"
            self.acked[frame["client_msg_id"]] = (seq, mid)
            self._show(seq, mid)
        elif kind == "error" and frame.get("ref"):
            self.errors[frame["ref"]] = frame["code"]
        elif kind == "message":
            seq = frame["seq"]
            assert seq not in self.framed, f"{self.name} was shown seq {seq} twice"
            self.framed.add(seq)
            self._show(seq, frame["message_id"])

    def _show(self, seq: int, mid: str) -> None:
        assert self.shown.get(seq, mid) == mid, f"{self.name}: seq {seq} is two messages"
        self.shown[seq] = mid
        self._changed.set()

    async def reaches(self, count: int, timeout: float = 20.0) -> None:
        """Wait (bounded) until this view holds ``count`` messages, fed by another task."""
        async with asyncio.timeout(timeout):
            while len(self.shown) < count:
                self._changed.clear()
                await self._changed.wait()

    @property
    def contiguous(self) -> int:
        """The last seq up to which this client has every message."""
        seq = 0
        while seq + 1 in self.shown:
            seq += 1
        return seq


async def pump(client: Client, view: View, until: Any = None) -> None:
    """Read frames into ``view`` until ``until(view)`` holds; without ``until``, until
    the socket closes. A socket closing before ``until`` holds fails the test."""
    try:
        while until is None or not until(view):
            view.take(await client.recv())
    except ConnectionClosed:
        if until is not None:
            raise AssertionError(f"{view.name}'s socket closed early: {client.seen[-3:]}") from None


async def history(node: Node, token: str, conversation_id: str) -> dict[int, str]:
    """The store's history as the API serves it, every page."""
    out: dict[int, str] = {}
    async with node.http(token) as http:
        after = 0
        while True:
            r = await http.get(
                f"/api/v1/conversations/{conversation_id}/messages",
                params={"after_seq": after, "limit": 200},
            )
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            if not items:
                return out
            for item in items:
                assert item["seq"] not in out, f"the store holds seq {item['seq']} twice"
                out[item["seq"]] = item["message_id"]
            after = items[-1]["seq"]


def assert_complete(store: dict[int, str], *views: View) -> None:
    assert sorted(store) == list(range(1, len(store) + 1)), "seqs have a gap"
    for view in views:
        for cmid, (seq, mid) in view.acked.items():
            assert store.get(seq) == mid, f"{view.name}: acknowledged {cmid} is not in the store"
        assert view.shown == store, f"{view.name} differs from the store"


async def open_conversation(visitor: Client, view: View, agent: Client, agent_view: View) -> str:
    await visitor.send(type="send", client_msg_id="v0", body="hello")
    await pump(visitor, view, lambda v: "v0" in v.acked)
    conversation_id = next(f["conversation_id"] for f in visitor.seen if f.get("type") == "ack")
    await agent.send(type="watch", conversation_id=conversation_id)
    await agent.until("watching")
    # What the console does on opening a conversation: the history so far.
    await agent.send(type="resume", conversation_id=conversation_id, after_seq=0)
    await pump(agent, agent_view, lambda v: 1 in v.shown)
    return conversation_id


async def test_a_node_killed_mid_burst_loses_nothing(tmp_path: Path) -> None:
    async with cluster(tmp_path) as cl:
        a, b, c = cl.nodes
        token = await cl.token()
        you, agent_view = View("visitor"), View("agent")
        async with a.visitor() as (visitor, welcome), b.agent(token) as agent:
            conv = await open_conversation(visitor, you, agent, agent_view)
            agent_task = asyncio.create_task(pump(agent, agent_view))

            sent = [f"v{i}" for i in range(1, BURST + 1)]
            for cmid in sent:
                await visitor.send(
                    type="send", client_msg_id=cmid, conversation_id=conv, body=f"burst {cmid}"
                )
            # The agent answers from node B meanwhile.
            for i in range(20):
                await agent.send(
                    type="send", client_msg_id=f"a{i}", conversation_id=conv, body=f"reply {i}"
                )
            await pump(visitor, you, lambda v: len(v.acked) > BURST // 3)
            a.kill()
            await pump(visitor, you)  # whatever was in flight, until the socket dies
            assert len(you.acked) < BURST + 1, "the kill came too late to test anything"

            # The widget reconnects (to another node), resumes, and sends what had no ack.
            async with b.visitor(hello={"visitor_token": welcome["visitor_token"]}) as (
                again,
                back,
            ):
                assert any(c["id"] == conv for c in back["conversations"])
                await again.send(type="resume", conversation_id=conv, after_seq=you.contiguous)
                for cmid in sent:
                    if cmid not in you.acked:
                        await again.send(
                            type="send",
                            client_msg_id=cmid,
                            conversation_id=conv,
                            body=f"burst {cmid}",
                        )
                await pump(again, you, lambda v: all(cmid in v.acked for cmid in sent))
                store = await history(c, token, conv)
                await pump(again, you, lambda v: len(v.shown) >= len(store))
                await agent_view.reaches(len(store))
            agent_task.cancel()
        # agent's own sends: acked via its frames
        store = await history(c, token, conv)
        assert len(store) == 1 + BURST + 20
        assert_complete(store, you, agent_view)


async def converse(
    visitor: Client, you: View, agent: Client, them: View, conv: str, rounds: int, tag: str
) -> None:
    """``rounds`` messages each way, the visitor's and the agent's interleaved."""
    for i in range(rounds):
        await visitor.send(
            type="send", client_msg_id=f"{tag}v{i}", conversation_id=conv, body=f"{tag} v {i}"
        )
        await agent.send(
            type="send", client_msg_id=f"{tag}a{i}", conversation_id=conv, body=f"{tag} a {i}"
        )


async def test_redis_subscribers_killed_mid_traffic_lose_nothing(tmp_path: Path) -> None:
    async with cluster(tmp_path) as cl:
        a, b, c = cl.nodes
        token = await cl.token()
        you, them = View("visitor"), View("agent")
        async with a.visitor() as (visitor, _), b.agent(token) as agent:
            conv = await open_conversation(visitor, you, agent, them)
            readers = [
                asyncio.create_task(pump(visitor, you)),
                asyncio.create_task(pump(agent, them)),
            ]
            await converse(visitor, you, agent, them, conv, 50, "before")
            killed = await cl.kill_pubsub()
            assert killed >= 2  # node A's and node B's subscriber connections at least
            await converse(visitor, you, agent, them, conv, 50, "after")
            await you.reaches(201)
            await them.reaches(201)
            for task in readers:
                task.cancel()
            store = await history(c, token, conv)
            assert len(store) == 201
            assert_complete(store, you, them)


async def test_postgresql_cut_off_answers_unavailable_then_recovers(tmp_path: Path) -> None:
    async with cluster(tmp_path, names=("a", "b")) as cl:
        a, b = cl.nodes
        token = await cl.token()
        you, them = View("visitor"), View("agent")
        async with a.visitor() as (visitor, _), b.agent(token) as agent:
            conv = await open_conversation(visitor, you, agent, them)
            await agent.send(type="send", client_msg_id="a0", conversation_id=conv, body="hi")
            await pump(agent, them, lambda v: "a0" in v.acked)

            cl.pg_proxy.cut()  # every node loses the database; new connections are refused
            await visitor.send(type="send", client_msg_id="down", conversation_id=conv, body="?")
            await pump(visitor, you, lambda v: "down" in v.errors)
            assert you.errors["down"] == "unavailable"
            async with a.http(token) as http:
                r = await http.get(f"/api/v1/conversations/{conv}")
                assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
                assert (await http.get("/readyz")).status_code == 503

            cl.pg_proxy.heal()  # nothing is restarted: the nodes reconnect by themselves
            async with a.http(token) as http:
                await _ready_again(http)
            await visitor.send(type="send", client_msg_id="down", conversation_id=conv, body="?")
            await pump(visitor, you, lambda v: "down" in v.acked)
            await pump(agent, them, lambda v: len(v.shown) >= 3)
            await pump(visitor, you, lambda v: len(v.shown) >= 3)
            store = await history(b, token, conv)
            assert len(store) == 3
            assert_complete(store, you, them)


async def _ready_again(http: Any) -> None:
    # Readiness is another process's state: polled, under the deadline.
    async with asyncio.timeout(20):
        while True:
            if (await http.get("/readyz")).status_code == 200:
                return
            await asyncio.sleep(0.1)


async def test_serve_with_several_workers_shares_one_port(tmp_path: Path) -> None:
    """`chatserver serve --workers 3`: three processes behind one port, on PostgreSQL and
    Redis, serving a conversation (which worker takes which socket is the kernel's
    choice; the three-node tests above put the two sides on different processes)."""
    import psutil

    async with cluster(tmp_path, names=()) as cl:
        node = await cl.start_node("w", "--workers", "3")
        workers = psutil.Process(node.process.pid).children(recursive=True)
        assert len([w for w in workers if "python" in w.name()]) >= 3
        token = await cl.token()
        you, them = View("visitor"), View("agent")
        async with node.visitor() as (visitor, _), node.agent(token) as agent:
            conv = await open_conversation(visitor, you, agent, them)
            readers = [
                asyncio.create_task(pump(visitor, you)),
                asyncio.create_task(pump(agent, them)),
            ]
            await converse(visitor, you, agent, them, conv, 30, "w")
            await you.reaches(61)
            await them.reaches(61)
            for task in readers:
                task.cancel()
            assert_complete(await history(node, token, conv), you, them)


async def test_an_erasure_from_the_command_line_closes_sockets_on_every_node(
    tmp_path: Path,
) -> None:
    """`chatserver erase` runs beside the nodes; through Redis they hear of it, close the
    person's socket (1008) and tell the agent watching to forget the conversation."""
    from tests.helpers import identity_token

    async with cluster(tmp_path, names=("a", "b")) as cl:
        a, b = cl.nodes
        token = await cl.token()
        you, them = View("visitor"), View("agent")
        hello = {"identity": identity_token("cli-erased", name="Ola Nordmann")}
        async with a.visitor(hello=hello) as (visitor, welcome), b.agent(token) as agent:
            subject_id = welcome["account"]["id"]
            conv = await open_conversation(visitor, you, agent, them)
            tombstone = json.loads(await cl.cli("erase", subject_id))
            assert tombstone["erased"]["messages"] == 1 and not tombstone["already_erased"]
            assert await visitor.closed() == 1008
            erased = await agent.until("erased")
            assert erased["conversation_ids"] == [conv]
