"""Fan-out between nodes: ``broker_from_url`` picks the implementation by URL scheme."""

from __future__ import annotations

from chatserver.broker.base import Broker, Event
from chatserver.broker.memory import MemoryBroker

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis(url: str) -> bool:
    """Whether ``url`` names a Redis broker: events, and shared state, cross processes."""
    return url.startswith(REDIS_SCHEMES)


def broker_from_url(url: str) -> Broker:
    if url == "memory://" or url.startswith("memory:"):
        return MemoryBroker()
    if is_redis(url):
        from chatserver.broker.redis import RedisBroker

        return RedisBroker(url)
    raise ValueError(
        f"unsupported broker URL {url!r} (this build knows memory:// and redis://host:port/db)"
    )


__all__ = ["Broker", "Event", "MemoryBroker", "broker_from_url", "is_redis"]
