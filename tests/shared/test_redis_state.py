"""Shared state in a real Redis at 127.0.0.1:6379: two ``RedisState`` objects are two nodes.

Every test has a key prefix of its own, deleted afterwards. Waits are bounded by a
deadline and end as soon as the condition holds.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from chatserver.broker.base import Event
from chatserver.lockout import FREE_FAILURES
from chatserver.shared import MemoryState, state_from_url
from chatserver.shared.presence import Change, ClusterPresence
from chatserver.shared.redis import RedisState
from tests.helpers import free_port

REDIS = "redis://127.0.0.1:6379/0"
DEADLINE = 10.0


async def eventually(check: Callable[[], Any], timeout: float = DEADLINE) -> None:
    """Wait until ``check()`` is true (awaiting it if it is a coroutine), or fail."""
    end = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < end, "condition not met before the deadline"
        await asyncio.sleep(0.02)  # polling a condition under a deadline


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    prefix = f"test-{uuid.uuid4().hex}:"
    yield prefix
    admin = aioredis.Redis.from_url(REDIS)
    try:
        keys = [key async for key in admin.scan_iter(match=prefix + "*")]
        if keys:
            await admin.delete(*keys)
    finally:
        await admin.aclose()


@pytest.fixture
async def states(prefix: str) -> AsyncIterator[Callable[..., RedisState]]:
    """Make nodes' states on this test's prefix; all closed after."""
    made: list[RedisState] = []

    def make(ttl: float = 0.6, url: str = REDIS) -> RedisState:
        state = RedisState(f"{url}?prefix={prefix}", presence_ttl=ttl)
        made.append(state)
        return state

    yield make
    for state in made:
        await state.close()


class Node:
    """A ClusterPresence wired to a bus standing in for the broker; records what it tells."""

    def __init__(self, state: RedisState | MemoryState, bus: Bus) -> None:
        self.state = state
        self.bus = bus
        self.told: list[Change] = []
        self.availability: list[bool] = []
        self.presence = ClusterPresence(state, publish=bus.publish, on_change=self.on_change)
        bus.nodes.append(self)

    def on_change(self, changes: list[Change], answering_changed: bool) -> None:
        self.told.extend(changes)
        if answering_changed:
            self.availability.append(self.presence.anyone_answering)

    def kill(self) -> None:
        """As if the process were SIGKILLed: no goodbye, no more heartbeats or events."""
        assert self.presence._task is not None
        self.presence._task.cancel()
        self.bus.nodes.remove(self)


class Bus:
    """Carries ``here`` events to every node (like the broker) on ``flush()``, in order;
    or drops them."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.dropping = False
        self.queue: list[Event] = []

    def publish(self, event: Event) -> None:
        if not self.dropping:
            self.queue.append(event)

    def flush(self) -> None:
        while self.queue:
            event = self.queue.pop(0)
            for node in list(self.nodes):
                node.presence.apply(event.frame)


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    bus = Bus()
    yield bus
    for node in list(bus.nodes):
        await node.presence.close()


def test_the_state_follows_the_broker_url() -> None:
    assert isinstance(state_from_url("memory://"), MemoryState)
    state = state_from_url("redis://127.0.0.1:6379/3?prefix=p:", presence_ttl=2.0)
    assert isinstance(state, RedisState)
    assert state.prefix == "p:" and state.presence_ttl == 2.0 and state.clustered


# ------------------------------------------------------------------ presence storage


async def test_a_snapshot_not_renewed_expires_and_a_leaving_node_is_dead_at_once(
    states: Callable[..., RedisState],
) -> None:
    a, b, c = states(), states(), states()
    await a.put_presence(b"a's snapshot", 0.3)
    await c.put_presence(b"c's snapshot", 30)
    alive, dead = await b.read_presence()
    assert alive == {a.node_id: b"a's snapshot", c.node_id: b"c's snapshot"} and dead == []

    async def a_is_dead() -> bool:
        alive, dead = await b.read_presence()
        return a.node_id in dead and a.node_id not in alive

    await eventually(a_is_dead)
    await c.drop_presence()
    alive, dead = await b.read_presence()
    assert alive == {} and sorted(dead) == sorted([a.node_id, c.node_id])
    # A node that comes back (renews) is alive again.
    await a.put_presence(b"again", 30)
    alive, _ = await b.read_presence()
    assert alive == {a.node_id: b"again"}


# ------------------------------------------------------------------ presence merged


async def start_nodes(bus: Bus, *states: RedisState) -> list[Node]:
    nodes = [Node(state, bus) for state in states]
    for node in nodes:
        await node.presence.start()
    return nodes


async def test_agents_on_one_node_are_seen_on_the_other_at_once(
    states: Callable[..., RedisState], bus: Bus
) -> None:
    a, b = await start_nodes(bus, states(ttl=30), states(ttl=30))
    a.presence.join("ann", "Ann", human=True)
    bus.flush()
    assert b.presence.status("ann") == "online" and b.presence.anyone_answering
    assert b.told == [("ann", "Ann", "online")] and b.availability == [True]
    b.presence.join("bot", "Bot", human=False)
    bus.flush()
    assert a.presence.everyone() == [("ann", "Ann", "online"), ("bot", "Bot", "online")]
    assert a.presence.answering() == ["ann"] == b.presence.answering()

    # Away said on A holds for Ann's socket on B too, even once A's socket is gone.
    b.presence.join("ann", "Ann", human=True)
    a.presence.set_away("ann", True)
    bus.flush()
    assert b.presence.status("ann") == "away" and not b.presence.anyone_answering
    a.presence.leave("ann")
    bus.flush()
    assert b.presence.status("ann") == "away" == a.presence.status("ann")
    b.presence.set_away("ann", False)
    bus.flush()
    assert a.presence.status("ann") == "online"
    b.presence.leave("ann")
    bus.flush()
    assert a.presence.status("ann") == "offline" and not a.presence.anyone_answering
    assert a.told[-1] == ("ann", "Ann", "offline")


async def test_a_dead_nodes_agents_go_offline_unless_connected_elsewhere(
    states: Callable[..., RedisState], bus: Bus
) -> None:
    """A node that stops renewing its snapshot (killed) is dead to the others within
    presence_ttl: its agents go offline there, except those still connected elsewhere."""
    a, b = await start_nodes(bus, states(ttl=0.6), states(ttl=0.6))
    a.presence.join("ann", "Ann", human=True)
    a.presence.join("bob", "Bob", human=True)
    b.presence.join("bob", "Bob", human=True)
    bus.flush()
    assert b.presence.status("ann") == "online"
    b.told.clear()
    a.kill()
    killed = time.monotonic()
    await eventually(lambda: b.presence.status("ann") == "offline")
    assert time.monotonic() - killed < 0.6 + 0.4  # within presence_ttl (and some slack)
    assert b.told == [("ann", "Ann", "offline")]  # Bob is still here: no news of him
    assert b.presence.status("bob") == "online" and b.presence.answering() == ["bob"]


async def test_a_node_shutting_down_takes_its_agents_at_once(
    states: Callable[..., RedisState], bus: Bus
) -> None:
    a, b = await start_nodes(bus, states(ttl=30), states(ttl=30))
    a.presence.join("ann", "Ann", human=True)
    bus.flush()
    await a.presence.close()
    bus.flush()
    bus.nodes.remove(a)
    assert b.presence.status("ann") == "offline" and b.availability == [True, False]
    # Nor does A's snapshot bring Ann back on the next read.
    b.presence.refresh_soon()
    beats = b.presence.heartbeats
    await eventually(lambda: b.presence.heartbeats > beats)
    assert b.presence.status("ann") == "offline"


async def test_lost_events_are_made_good_by_the_heartbeat(
    states: Callable[..., RedisState], bus: Bus
) -> None:
    """Pub/sub may lose a ``here`` event: the next heartbeat's read brings the change."""
    a, b = await start_nodes(bus, states(ttl=0.6), states(ttl=0.6))
    bus.dropping = True
    a.presence.join("ann", "Ann", human=True)
    assert b.presence.status("ann") == "offline"
    await eventually(lambda: b.presence.status("ann") == "online")
    assert b.told == [("ann", "Ann", "online")]
    a.presence.leave("ann")
    await eventually(lambda: b.presence.status("ann") == "offline")


async def test_presence_without_redis_keeps_to_this_node(
    states: Callable[..., RedisState], bus: Bus
) -> None:
    """Redis unreachable: starting and changes never fail, the node knows its own agents."""
    node = Node(states(ttl=0.6, url=f"redis://127.0.0.1:{free_port()}/0"), bus)
    await node.presence.start()
    node.presence.join("ann", "Ann", human=True)
    assert node.presence.status("ann") == "online" and node.presence.anyone_answering
    await asyncio.sleep(0.3)  # a heartbeat or two fail meanwhile, quietly
    assert node.presence.status("ann") == "online"


async def test_a_node_cut_off_drops_the_others_after_presence_ttl(
    states: Callable[..., RedisState], bus: Bus
) -> None:
    from tests.tcp_proxy import TcpProxy

    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.start()
    try:
        a, b = await start_nodes(
            bus, states(ttl=0.6), states(ttl=0.6, url=f"redis://127.0.0.1:{proxy.port}/0")
        )
        a.presence.join("ann", "Ann", human=True)
        bus.flush()
        assert b.presence.status("ann") == "online"
        bus.nodes.remove(a)  # its events no longer reach B either
        proxy.cut()
        await eventually(lambda: b.presence.status("ann") == "offline")
        proxy.heal()
        await eventually(lambda: b.presence.status("ann") == "online")
    finally:
        await proxy.close()


# ------------------------------------------------------------------ lock-out and limits


async def test_a_lock_out_earned_on_one_node_holds_on_the_other(
    states: Callable[..., RedisState],
) -> None:
    a, b = states(), states()
    for _ in range(FREE_FAILURES):
        await a.lockout.failed("kari@example.no")
    assert await b.lockout.wait_seconds("kari@example.no") == 0
    await b.lockout.failed("kari@example.no")
    assert 0.9 < await a.lockout.wait_seconds("kari@example.no") <= 1.0
    await b.lockout.failed("kari@example.no")
    assert 1.9 < await a.lockout.wait_seconds("kari@example.no") <= 2.0
    assert await a.lockout.wait_seconds("ola@example.no") == 0
    await a.lockout.succeeded("kari@example.no")
    assert await b.lockout.wait_seconds("kari@example.no") == 0


async def test_lock_out_keys_do_not_name_the_email(
    states: Callable[..., RedisState], prefix: str
) -> None:
    await states().lockout.failed("kari@example.no")
    admin = aioredis.Redis.from_url(REDIS)
    try:
        keys = [key async for key in admin.scan_iter(match=prefix + "*")]
    finally:
        await admin.aclose()
    assert len(keys) == 1 and b"kari" not in keys[0]


async def test_a_limit_counts_every_node_and_lets_no_extra_through(
    states: Callable[..., RedisState],
) -> None:
    a, b = states(), states()
    limit_a = a.limiter("transcript", 3, 3600 * 1_000_000)
    limit_b = b.limiter("transcript", 3, 3600 * 1_000_000)
    now = time.time_ns() // 1000
    answers = await asyncio.gather(
        *(limiter.take(["v:1", "ip:x"], now) for limiter in (limit_a, limit_b) * 4)
    )
    assert answers.count(None) == 3
    assert all(w is not None and 3590 < w <= 3601 for w in answers if w is not None)
    # Another visitor from the same address is over the limit too; one from elsewhere is not.
    assert await limit_a.take(["v:2", "ip:x"], now) is not None
    assert await limit_b.take(["v:2", "ip:y"], now) is None
    # An hour later there is room again.
    assert await limit_b.take(["v:1", "ip:x"], now + 3600 * 1_000_000 + 1) is None


async def test_lock_out_and_limits_work_on_alone_without_redis(
    states: Callable[..., RedisState],
) -> None:
    state = states(url=f"redis://127.0.0.1:{free_port()}/0")
    await state.start()
    for _ in range(FREE_FAILURES + 1):
        await state.lockout.failed("k")
    assert 0.9 < await state.lockout.wait_seconds("k") <= 1
    await state.lockout.succeeded("k")
    assert await state.lockout.wait_seconds("k") == 0
    limiter = state.limiter("t", 1, 1_000_000)
    assert await limiter.take(["v"], 0) is None
    assert await limiter.take(["v"], 1) == 1


# ------------------------------------------------------------------ round-robin


async def test_the_assignment_turn_is_one_for_the_cluster(
    states: Callable[..., RedisState],
) -> None:
    """Turns never overlap across nodes, and each node sees who got the last one."""
    a, b = states(), states()
    inside = 0
    order: list[str] = []

    async def assign(state: RedisState, agent: str) -> None:
        nonlocal inside
        async with state.assignment_turn() as turn:
            inside += 1
            assert inside == 1
            order.append(turn.last)
            await asyncio.sleep(0.01)  # hold the turn a moment: an overlap would show
            turn.last = agent
            inside -= 1

    await asyncio.gather(*(assign(s, f"agent-{i}") for i, s in enumerate((a, b) * 3)))
    assert order[0] == "" and len(set(order)) == 6  # each saw the one before it
    async with b.assignment_turn() as turn:
        assert turn.last.startswith("agent-")


async def test_the_assignment_turn_without_redis_is_this_nodes(
    states: Callable[..., RedisState],
) -> None:
    state = states(url=f"redis://127.0.0.1:{free_port()}/0")
    async with state.assignment_turn() as turn:
        turn.last = "ann"
    async with state.assignment_turn() as turn:
        assert turn.last == "ann"


def test_here_events_are_json() -> None:
    """The ``here`` frame is plain JSON (readable in redis-cli MONITOR)."""
    seen: list[Event] = []
    presence = ClusterPresence(
        RedisState("redis://127.0.0.1:1/0"), publish=seen.append, on_change=lambda c, a: None
    )
    presence.join("ann", "Ann", human=True)
    [event] = seen
    assert event.topic == "presence" and event.kind == "here"
    assert json.loads(event.frame)["agent"] == "ann"
