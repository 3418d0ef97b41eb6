"""State the nodes of a cluster share (presence, round-robin turn, lock-out, limits):
``state_from_url`` picks the implementation that goes with the broker URL."""

from __future__ import annotations

from chatserver.broker import is_redis
from chatserver.shared.base import LockOutStore, SharedState
from chatserver.shared.memory import MemoryState


def state_from_url(broker_url: str, *, presence_ttl: float = 15.0) -> SharedState:
    """Redis state on the Redis broker's URL and key prefix; else memory (one process)."""
    if is_redis(broker_url):
        from chatserver.shared.redis import RedisState

        return RedisState(broker_url, presence_ttl=presence_ttl)
    return MemoryState(presence_ttl=presence_ttl)


__all__ = ["LockOutStore", "MemoryState", "SharedState", "state_from_url"]
