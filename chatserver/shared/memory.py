"""Shared state for one process: all of it in memory (and the fallback of ``RedisState``)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from chatserver.lockout import LockOut
from chatserver.mail.limits import SlidingWindow
from chatserver.shared.base import Turn


class MemoryLockOut:
    def __init__(self, lockout: LockOut | None = None) -> None:
        self.local = lockout or LockOut()

    async def wait_seconds(self, key: str) -> float:
        return self.local.wait_seconds(key)

    async def failed(self, key: str) -> None:
        self.local.failed(key)

    async def succeeded(self, key: str) -> None:
        self.local.succeeded(key)


class MemoryLimiter:
    def __init__(self, limit: int, window_us: int) -> None:
        self.local = SlidingWindow(limit, window_us)

    async def take(self, keys: list[str], now_us: int) -> int | None:
        return self.take_now(keys, now_us)

    def take_now(self, keys: list[str], now_us: int) -> int | None:
        wait = self.local.retry_after(keys, now_us)
        if wait is None:
            self.local.add(keys, now_us)
        return wait


class LocalTurns:
    """The round-robin turn within this process."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.turn = Turn()

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[Turn]:
        async with self.lock:
            yield self.turn


class MemoryState:
    clustered = False

    def __init__(self, *, presence_ttl: float = 15.0) -> None:
        self.node_id = uuid.uuid4().hex
        self.presence_ttl = presence_ttl
        self.lockout = MemoryLockOut()
        self._turns = LocalTurns()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def limiter(self, name: str, limit: int, window_us: int) -> MemoryLimiter:
        return MemoryLimiter(limit, window_us)

    def assignment_turn(self) -> contextlib.AbstractAsyncContextManager[Turn]:
        return self._turns.hold()

    async def put_presence(self, data: bytes, ttl: float) -> None:
        return None  # no other node to read it

    async def read_presence(self) -> tuple[dict[str, bytes], list[str]]:
        return {}, []

    async def drop_presence(self) -> None:
        return None
