"""Agent presence across the cluster: every node's own ``Presence``, merged.

Each node counts its own sockets (``chatserver.hub.presence.Presence``) and tells the
others of each change at once with a ``here`` event on the broker's ``presence`` topic
(one agent's entry on that node, with the node's change number). Pub/sub may lose
events, so each node also writes its whole snapshot to the shared state when it
changes and every ``presence_ttl / 3`` seconds (the heartbeat), alive for
``2/3 presence_ttl``; at each heartbeat it reads every node's snapshot back. A node
that stops renewing its snapshot (killed, cut off) is dead to the others within
``presence_ttl``; one that shuts down says so at once.

Merged, an agent is online if present on some node, away if the latest ``status``
they sent (on whichever node) said away. Every node works out the changes of the
merged view on its own and tells only its own sockets (``on_change``): no frame is
sent twice, and a dead node's agents go offline on every node that outlives it,
unless they are still connected elsewhere.

When the shared state cannot be reached, nodes not heard from for ``presence_ttl``
are dropped: the node falls back on what it knows itself. Nothing on the relay path
waits for the shared state; the heartbeat runs in its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import msgspec

from chatserver.broker.base import Event
from chatserver.clock import Clock
from chatserver.hub.presence import Presence
from chatserver.shared.base import SharedState

log = logging.getLogger(__name__)

# Nodes that said they left, remembered so that a snapshot read just before they left
# never brings them back. (A node dropped for silence comes back once heard again.)
MAX_DEPARTED = 1000
# How long the first heartbeat (at start) and the goodbye (at shutdown) may take.
START_TIMEOUT = 5.0


class Seen(msgspec.Struct, array_like=True, frozen=True):
    """One agent on one node."""

    name: str
    human: bool
    away: bool
    # When the agent last said away or back (µs; 0: never).
    since: int


class Snapshot(msgspec.Struct, frozen=True):
    """One node's agents, after its change number ``v``."""

    v: int
    agents: dict[str, Seen]


class Delta(msgspec.Struct, frozen=True):
    """One change on one node: ``agent`` is now ``seen`` there (None: gone from it); or,
    with ``left``, the whole node stopped."""

    node: str
    v: int
    agent: str = ""
    seen: Seen | None = None
    left: bool = False


# (agent id, name, status) of an agent whose merged status changed.
Change = tuple[str, str, str]
# Told of the changes of the merged view, and whether anyone-answering changed.
OnChange = Callable[[list[Change], bool], None]

_snapshot = msgspec.json.Decoder(Snapshot)
_delta = msgspec.json.Decoder(Delta)
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class _Node:
    v: int = 0
    agents: dict[str, Seen] = field(default_factory=dict)
    # When this node last heard of it (time.monotonic()).
    confirmed: float = 0.0


class ClusterPresence:
    def __init__(
        self,
        shared: SharedState,
        *,
        publish: Callable[[Event], None],
        on_change: OnChange,
        clock: Clock | None = None,
    ) -> None:
        self.shared = shared
        self.node_id = shared.node_id
        self.local = Presence()
        self.ttl = shared.presence_ttl
        self._publish = publish
        self._on_change = on_change
        self._clock = clock or Clock()
        self._nodes: dict[str, _Node] = {}
        self._departed: OrderedDict[str, None] = OrderedDict()
        # agent id -> node id -> the agent there (this node's own entries included).
        self._where: dict[str, dict[str, Seen]] = {}
        self._answering: set[str] = set()
        self._v = 0
        self._dirty = True
        self._poll_due = True
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failing = False
        # Heartbeats that reached the shared state (tests wait on it).
        self.heartbeats = 0

    # ------------------------------------------------------------- the merged view

    def _merged(self, agent_id: str) -> tuple[str, bool, bool] | None:
        """(name, human, away) of the agent across the cluster; None when offline."""
        where = self._where.get(agent_id)
        if not where:
            return None
        latest = max(where.values(), key=lambda s: (s.since, s.away))
        own = where.get(self.node_id)
        name = own.name if own is not None else latest.name
        return name, any(s.human for s in where.values()), latest.away

    def status(self, agent_id: str) -> str:
        merged = self._merged(agent_id)
        if merged is None:
            return "offline"
        return "away" if merged[2] else "online"

    def everyone(self) -> list[tuple[str, str, str]]:
        """(id, name, status) of every agent in the cluster, by id."""
        result = []
        for agent_id in sorted(self._where):
            merged = self._merged(agent_id)
            if merged is not None:
                result.append((agent_id, merged[0], "away" if merged[2] else "online"))
        return result

    def agent_ids(self) -> list[str]:
        return sorted(self._where)

    def answering(self) -> list[str]:
        """Human agents in the cluster and not away, in a stable order (for round-robin)."""
        return sorted(self._answering)

    @property
    def anyone_answering(self) -> bool:
        return bool(self._answering)

    @contextlib.contextmanager
    def _changing(self, agent_ids: Iterable[str]) -> Iterator[None]:
        """Tell ``on_change`` what the block changed in the merged view of these agents."""
        agents = sorted(set(agent_ids))
        before = {a: (self._merged(a), self.status(a)) for a in agents}
        was_answering = bool(self._answering)
        yield
        changes = []
        for agent_id in agents:
            merged = self._merged(agent_id)
            status = self.status(agent_id)
            if merged is not None and merged[1] and status == "online":
                self._answering.add(agent_id)
            else:
                self._answering.discard(agent_id)
            old, old_status = before[agent_id]
            if status != old_status:
                name = merged[0] if merged is not None else old[0] if old is not None else ""
                changes.append((agent_id, name, status))
        answering_changed = bool(self._answering) != was_answering
        if changes or answering_changed:
            self._on_change(changes, answering_changed)

    def _set(self, agent_id: str, node_id: str, seen: Seen | None) -> None:
        where = self._where.get(agent_id)
        if seen is None:
            if where is not None:
                where.pop(node_id, None)
                if not where:
                    del self._where[agent_id]
        else:
            if where is None:
                where = self._where[agent_id] = {}
            where[node_id] = seen

    # --------------------------------------------------------------- this node

    def join(self, agent_id: str, name: str, *, human: bool) -> None:
        with self._changing((agent_id,)):
            self.local.join(agent_id, name, human=human)
            here = self.local.get(agent_id)
            if here is not None and here.sockets == 1:
                self._adopt(agent_id)  # away said on another node holds here too
            self._local_changed(agent_id)

    def leave(self, agent_id: str) -> None:
        with self._changing((agent_id,)):
            self.local.leave(agent_id)
            self._local_changed(agent_id)

    def set_away(self, agent_id: str, away: bool) -> None:
        with self._changing((agent_id,)):
            # Later than any word known from elsewhere, whatever the clocks say.
            known = max((s.since for s in self._where.get(agent_id, {}).values()), default=0)
            self.local.set_away(agent_id, away, max(self._clock.now_us(), known + 1))
            self._local_changed(agent_id)

    def _local_changed(self, agent_id: str) -> None:
        here = self.local.get(agent_id)
        seen = None if here is None else Seen(here.name, here.human, here.away, here.since)
        if self._where.get(agent_id, {}).get(self.node_id) == seen:
            return  # another socket of an agent already here: no news
        self._set(agent_id, self.node_id, seen)
        self._v += 1
        self._dirty = True
        self._wake.set()
        if self.shared.clustered:
            delta = Delta(node=self.node_id, v=self._v, agent=agent_id, seen=seen)
            self._publish(
                Event(
                    topic="presence",
                    kind="here",
                    frame=_encode(delta).decode(),
                    principal_id=agent_id,
                )
            )

    def _adopt(self, agent_id: str) -> None:
        """Take on the latest away/back said on another node for an agent here, so that it
        holds when that node's sockets close."""
        here = self.local.get(agent_id)
        if here is None:
            return
        latest = max(
            (s for n, s in self._where.get(agent_id, {}).items() if n != self.node_id),
            key=lambda s: s.since,
            default=None,
        )
        if latest is not None and latest.since > here.since:
            self.local.set_away(agent_id, latest.away, latest.since)
            # Told like any change, though nothing changes in the merged view: every
            # node must know that this node holds the agent's word too.
            self._local_changed(agent_id)

    def snapshot(self) -> bytes:
        agents = {
            agent_id: Seen(here.name, here.human, here.away, here.since)
            for agent_id, here in self.local.items()
        }
        return _encode(Snapshot(v=self._v, agents=agents))

    # -------------------------------------------------------------- other nodes

    def apply(self, frame: str) -> None:
        """A ``here`` event from the broker (this node's own come back too: ignored)."""
        try:
            delta = _delta.decode(frame)
        except msgspec.DecodeError as exc:
            log.warning("presence: undecodable here event: %s", exc)
            return
        if delta.node == self.node_id or delta.node in self._departed:
            return
        if delta.left:
            self._departed[delta.node] = None
            while len(self._departed) > MAX_DEPARTED:
                self._departed.popitem(last=False)
            self._drop([delta.node])
            return
        node = self._nodes.get(delta.node)
        if node is None:
            node = self._nodes[delta.node] = _Node()
            self.refresh_soon()  # a node new to us: read the rest of what it holds
        node.confirmed = time.monotonic()
        if delta.v <= node.v:
            return  # already in a snapshot read since
        node.v = delta.v
        with self._changing((delta.agent,)):
            if delta.seen is None:
                node.agents.pop(delta.agent, None)
            else:
                node.agents[delta.agent] = delta.seen
            self._set(delta.agent, delta.node, delta.seen)
            self._adopt(delta.agent)

    def _drop(self, node_ids: Iterable[str]) -> None:
        """These nodes stopped: their agents are gone with them (unless here elsewhere)."""
        gone = [n for n in node_ids if n != self.node_id]
        nodes = [self._nodes.pop(n) for n in gone if n in self._nodes]
        if not nodes:
            return
        agents = {a for node in nodes for a in node.agents}
        with self._changing(agents):
            for node_id in gone:
                for agent_id in agents:
                    self._set(agent_id, node_id, None)

    def _apply_read(self, alive: dict[str, bytes], dead: list[str]) -> None:
        self._drop(dead)
        now = time.monotonic()
        updates: dict[str, Snapshot] = {}
        for node_id, data in alive.items():
            if node_id == self.node_id or node_id in self._departed:
                continue
            try:
                snap = _snapshot.decode(data)
            except msgspec.DecodeError as exc:
                log.warning("presence: undecodable snapshot of node %s: %s", node_id, exc)
                continue
            node = self._nodes.get(node_id)
            if node is None:
                node = self._nodes[node_id] = _Node(v=-1)
            node.confirmed = now
            if snap.v >= node.v:
                updates[node_id] = snap
        affected = {a for n in updates for a in (*self._nodes[n].agents, *updates[n].agents)}
        if not affected:
            for node_id, snap in updates.items():
                self._nodes[node_id].v = snap.v
            return
        with self._changing(affected):
            for node_id, snap in updates.items():
                node = self._nodes[node_id]
                for agent_id in node.agents:
                    if agent_id not in snap.agents:
                        self._set(agent_id, node_id, None)
                for agent_id, seen in snap.agents.items():
                    self._set(agent_id, node_id, seen)
                node.agents = dict(snap.agents)
                node.v = snap.v
            for agent_id in affected:
                self._adopt(agent_id)

    def _drop_unconfirmed(self) -> None:
        """Nodes not heard from for ``presence_ttl`` are taken for stopped."""
        limit = time.monotonic() - self.ttl
        stale = [n for n, node in self._nodes.items() if node.confirmed < limit]
        if stale:
            log.warning(
                "presence: %d node(s) not heard from in %.0f s, dropped", len(stale), self.ttl
            )
            self._drop(stale)

    # -------------------------------------------------------------- the heartbeat

    async def start(self) -> None:
        if not self.shared.clustered:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_TIMEOUT):
                await self._beat(poll=True)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="presence heartbeat")

    def refresh_soon(self) -> None:
        """Read every node's snapshot now (after events may have been lost)."""
        self._poll_due = True
        self._wake.set()

    async def close(self) -> None:
        self._stopping = True
        if self._task is not None:
            # The flag too: on Python 3.11 asyncio.wait_for (inside redis-py) can swallow
            # a cancellation that meets a finishing command.
            self._wake.set()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if not self.shared.clustered:
            return
        self._publish(
            Event(
                topic="presence",
                kind="here",
                frame=_encode(Delta(node=self.node_id, v=self._v + 1, left=True)).decode(),
            )
        )
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await self.shared.drop_presence()
        except Exception as exc:  # shutting down: it expires anyway
            log.warning("presence: could not leave the shared state (%s)", exc)

    async def _run(self) -> None:
        interval = self.ttl / 3
        next_poll = time.monotonic() + interval
        while not self._stopping:
            timeout = max(0.0, next_poll - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            poll = self._poll_due or time.monotonic() >= next_poll
            if poll:
                next_poll = time.monotonic() + interval
            elif not self._dirty or self._failing:
                continue  # after a failure, changes wait for the next heartbeat
            await self._beat(poll=poll)

    async def _beat(self, *, poll: bool) -> None:
        """Write this node's snapshot; with ``poll``, read every node's too."""
        self._dirty = False
        if poll:
            self._poll_due = False
        try:
            await self.shared.put_presence(self.snapshot(), self.ttl * 2 / 3)
            if poll:
                alive, dead = await self.shared.read_presence()
                self._apply_read(alive, dead)
        except Exception as exc:  # whatever Redis raised: try again later
            self._dirty = True
            if not self._failing:
                self._failing = True
                log.warning("presence: shared state unreachable (%s); retrying", exc)
        else:
            self.heartbeats += 1
            if self._failing:
                self._failing = False
                log.warning("presence: shared state reachable again")
        self._drop_unconfirmed()

    def nodes(self) -> dict[str, list[str]]:
        """The agents each other node holds, as this node knows them (tests, debugging)."""
        return {n: sorted(node.agents) for n, node in self._nodes.items()}
