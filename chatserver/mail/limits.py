"""How often one visitor, or one IP address, may ask for a transcript.

Each request can send an email to an address the visitor typed, so without a
limit the chat would be a way to send mail to anyone. In memory, per process: a
restart forgets it, which at worst lets a few more through once. With a Redis
broker ``chatserver.shared.redis`` counts it for the whole cluster.
"""

from __future__ import annotations

from collections import deque

# Keys kept at most; the oldest are forgotten first (a flood of new keys cannot grow it).
MAX_KEYS = 100_000


class SlidingWindow:
    """At most ``limit`` events per key within ``window_us``."""

    def __init__(self, limit: int, window_us: int) -> None:
        self.limit = limit
        self.window_us = window_us
        self._events: dict[str, deque[int]] = {}

    def retry_after(self, keys: list[str], now: int) -> int | None:
        """Seconds until every key has room again, or None when all have room now."""
        waits = []
        for key in keys:
            events = self._events.get(key)
            if events is None:
                continue
            while events and events[0] <= now - self.window_us:
                events.popleft()
            if len(events) >= self.limit:
                waits.append((events[0] + self.window_us - now) // 1_000_000 + 1)
        return max(waits) if waits else None

    def add(self, keys: list[str], now: int) -> None:
        for key in keys:
            events = self._events.pop(key, None) or deque()
            events.append(now)
            self._events[key] = events  # re-inserted: the dict's order is by last use
        while len(self._events) > MAX_KEYS:
            del self._events[next(iter(self._events))]
