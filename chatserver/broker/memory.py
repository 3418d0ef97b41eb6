"""The in-process broker: one node, every event delivered at once on the event loop."""

from __future__ import annotations

from chatserver.broker.base import Deliver, Event


class MemoryBroker:
    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def close(self) -> None:
        self._deliver = None

    # One node hears every topic, so subscriptions need no bookkeeping here:
    # the hub's own table decides which sockets get an event.
    async def subscribe(self, topic: str) -> None:
        return None

    async def unsubscribe(self, topic: str) -> None:
        return None

    def publish(self, event: Event) -> None:
        if self._deliver is not None:
            self._deliver(event)

    async def ping(self) -> None:
        return None
