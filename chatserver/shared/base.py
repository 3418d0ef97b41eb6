"""Ephemeral state the nodes of a cluster share: the interface both implementations keep.

``MemoryState`` (one process) keeps everything in memory; ``RedisState`` keeps it in
the broker's Redis, under the broker's key prefix, so that every node sees the same:

- agent presence: each node's snapshot of the agents it holds, renewed by a heartbeat
  and dead when the node stops renewing it (``chatserver.shared.presence`` merges them);
- the round-robin assignment turn: one lock and one cursor for the whole cluster;
- sign-in lock-out and the request limits that guard shared resources (transcript mail).

Nothing here may take the server down: the Redis implementation answers from local
knowledge when Redis cannot be reached, and logs it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Turn:
    """Whose turn it is in round-robin assignment: the agent who got the last one."""

    __slots__ = ("last",)

    def __init__(self, last: str = "") -> None:
        self.last = last


class LockOutStore(Protocol):
    """Sign-in lock-out (rules in ``chatserver.lockout``)."""

    async def wait_seconds(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""

    async def failed(self, key: str) -> None: ...

    async def succeeded(self, key: str) -> None: ...


class Limiter(Protocol):
    """At most ``limit`` events per key within a sliding window."""

    async def take(self, keys: list[str], now_us: int) -> int | None:
        """Count one event against every key and answer None; or, when any key is at its
        limit, count nothing and answer the seconds until every key has room."""


class SharedState(Protocol):
    # This process's id in the cluster (a fresh one each start).
    node_id: str
    # Whether other nodes may exist (presence must then be mirrored and merged).
    clustered: bool
    # Seconds after which a node that stopped renewing its presence counts as gone.
    presence_ttl: float

    @property
    def lockout(self) -> LockOutStore: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def limiter(self, name: str, limit: int, window_us: int) -> Limiter:
        """A limiter of its own name (the name keeps different limits' keys apart)."""

    def assignment_turn(self) -> AbstractAsyncContextManager[Turn]:
        """Hold the round-robin turn: no other assignment runs, on any node, until the
        block ends; a ``Turn.last`` set inside it is kept for the next."""

    # Presence storage: raises on failure; ``chatserver.shared.presence`` retries.
    async def put_presence(self, data: bytes, ttl: float) -> None:
        """Write this node's presence snapshot, alive for ``ttl`` seconds unless renewed."""

    async def read_presence(self) -> tuple[dict[str, bytes], list[str]]:
        """``(alive, dead)``: every live node's latest snapshot (this node's included) by
        node id, and the nodes known to have stopped (their snapshot expired, or they
        left). A node in neither is unknown here (say, Redis lost its data)."""

    async def drop_presence(self) -> None:
        """This node is leaving: it counts as stopped at once."""
