"""Shared state in Redis: the same URL and key prefix as the Redis broker, a connection of its own.

Keys (``<prefix>`` as in the broker URL, ``chatserver:`` by default):

- ``<prefix>presence:nodes``, a sorted set of node ids by when their snapshot expires
  (in Redis time), and ``<prefix>presence:node:<id>``, that node's snapshot, expiring
  unless renewed; a node that left is listed with an expiry in the past;
- ``<prefix>assign:lock`` and ``<prefix>assign:last``: the round-robin turn;
- ``<prefix>lockout:<hash>``: a hash {n: failures, until: ms} per email, forgotten a day
  after the last failure; times come from Redis (``TIME``), so nodes' clocks never matter;
- ``<prefix>limit:<name>:<hash>``: a sorted set of event times per limited key.

Emails, visitor ids and IP addresses appear only as SHA-256 hashes in key names.

When Redis cannot be reached the answer comes from this node alone (a ``MemoryState``
kept up to date alongside: lock-outs and limits counted here are never forgotten
because Redis was away), and Redis is not asked again for ``RETRY_SECONDS``, so a
Redis outage costs a request at most one connection timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import LockError, RedisError

from chatserver.broker.redis import split_url
from chatserver.lockout import FREE_FAILURES, MAX_LOCK_SECONDS
from chatserver.shared.base import Turn
from chatserver.shared.memory import LocalTurns, MemoryLimiter, MemoryLockOut

log = logging.getLogger(__name__)

DISCONNECTED = (RedisError, OSError, TimeoutError)
# After a failure, Redis is left alone this long (answers come from this node meanwhile).
RETRY_SECONDS = 2.0
# One Redis command may take this long before the node answers on its own.
COMMAND_TIMEOUT = 2.0
# A lock-out record outlives the last failure by a day.
LOCKOUT_FORGET_MS = 86_400_000
# The assignment lock: held at most this long (a node that dies holding it), waited for
# at most this long before assigning on local knowledge.
ASSIGN_LOCK_SECONDS = 10.0
ASSIGN_WAIT_SECONDS = 5.0
# A stopped node stays listed (as stopped) this long, then is forgotten.
NODES_FORGET_MS = 3_600_000

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1] the node list (a sorted set: node id -> when its snapshot expires, in ms of
# Redis time), KEYS[2] the node's snapshot; ARGV node id, snapshot, lifetime (ms), and
# how long the list itself outlives the last write (ms).
_PUT_PRESENCE = (
    _NOW_MS
    + """
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
)

# KEYS[1] the node list, KEYS[2] the node's snapshot; ARGV node id. It counts as
# stopped from now on.
_DROP_PRESENCE = (
    _NOW_MS
    + """
redis.call('DEL', KEYS[2])
redis.call('ZADD', KEYS[1], string.format('%.0f', now - 1), ARGV[1])
return 1
"""
)

# KEYS[1] the node list; ARGV snapshot key prefix, forget stopped nodes after (ms).
# Answers {{id, snapshot, id, snapshot …} of live nodes, {id …} of stopped ones}.
_READ_PRESENCE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - tonumber(ARGV[2])))
local alive, dead = {}, {}
local nodes = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #nodes, 2 do
  local id = nodes[i]
  if tonumber(nodes[i + 1]) >= now then
    local data = redis.call('GET', ARGV[1] .. id)
    if data then
      alive[#alive + 1] = id
      alive[#alive + 1] = data
    end
  else
    dead[#dead + 1] = id
  end
end
return {alive, dead}
"""
)

# KEYS[1] the record. Answers milliseconds until it may try again.
_LOCKOUT_WAIT = (
    _NOW_MS
    + """
local locked = redis.call('HGET', KEYS[1], 'until')
if not locked then return 0 end
return math.max(0, tonumber(locked) - now)
"""
)

# KEYS[1] the record; ARGV free failures, longest lock (ms), forget after (ms).
_LOCKOUT_FAILED = (
    _NOW_MS
    + """
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local free = tonumber(ARGV[1])
if n > free then
  local lock = math.min(tonumber(ARGV[2]), 1000 * 2 ^ math.min(n - free - 1, 60))
  redis.call('HSET', KEYS[1], 'until', string.format('%.0f', now + lock))
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return n
"""
)

# KEYS the sorted sets; ARGV now (µs), window (µs), limit, a unique member.
# Answers 0 (counted in every key) or the seconds until every key has room.
_LIMIT_TAKE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local wait = 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.0f', now - window))
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local w = math.floor((tonumber(oldest[2]) + window - now) / 1000000) + 1
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[1], ARGV[4])
  redis.call('PEXPIRE', key, string.format('%.0f', math.ceil(window / 1000)))
end
return 0
"""


def hashed(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class RedisState:
    clustered = True

    def __init__(self, url: str, *, presence_ttl: float = 15.0) -> None:
        self.url, self.prefix = split_url(url)
        self.node_id = uuid.uuid4().hex
        self.presence_ttl = presence_ttl
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            self.url,
            # No retries inside redis-py: a failed command falls back at once.
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=COMMAND_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
            client_name=_client_name(self.prefix) + "state",
        )
        self._down_until = 0.0
        self._complained = False
        self.lockout = RedisLockOut(self)
        self._turns = LocalTurns()
        self._put_presence = self.client.register_script(_PUT_PRESENCE)
        self._read_presence = self.client.register_script(_READ_PRESENCE)
        self._drop_presence = self.client.register_script(_DROP_PRESENCE)
        self._lockout_wait = self.client.register_script(_LOCKOUT_WAIT)
        self._lockout_failed = self.client.register_script(_LOCKOUT_FAILED)
        self._limit_take = self.client.register_script(_LIMIT_TAKE)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def start(self) -> None:
        try:
            await self.client.ping()
        except DISCONNECTED as exc:
            self.failed("start", exc)

    async def close(self) -> None:
        with contextlib.suppress(*DISCONNECTED):
            await self.client.aclose(close_connection_pool=True)

    # --------------------------------------------------------------- availability

    @property
    def usable(self) -> bool:
        """False for a moment after a failure: the node answers on its own meanwhile."""
        return time.monotonic() >= self._down_until

    def failed(self, what: str, exc: BaseException) -> None:
        self._down_until = time.monotonic() + RETRY_SECONDS
        if not self._complained:
            self._complained = True
            log.warning(
                "shared state: Redis at %s failed (%s: %s); this node answers on its own "
                "knowledge until it is back",
                self.url,
                what,
                str(exc) or type(exc).__name__,
            )

    def worked(self) -> None:
        if self._complained:
            self._complained = False
            log.warning("shared state: Redis at %s answers again", self.url)

    async def call(self, what: str, coro: Any) -> Any:
        """Await a Redis command; None (logged) when Redis failed."""
        try:
            result = await coro
        except DISCONNECTED as exc:
            self.failed(what, exc)
            return None
        self.worked()
        return result

    # --------------------------------------------------------------------- limits

    def limiter(self, name: str, limit: int, window_us: int) -> RedisLimiter:
        return RedisLimiter(self, name, limit, window_us)

    # ----------------------------------------------------------------- assignment

    @contextlib.asynccontextmanager
    async def assignment_turn(self) -> AsyncIterator[Turn]:
        # This node's own lock first: its assignments queue here, not in Redis.
        async with self._turns.lock:
            lock = None
            if self.usable:
                lock = self.client.lock(
                    self.key("assign", "lock"),
                    timeout=ASSIGN_LOCK_SECONDS,
                    blocking_timeout=ASSIGN_WAIT_SECONDS,
                    sleep=0.005,
                )
                acquired = await self.call("assignment lock", lock.acquire())
                if not acquired:
                    if acquired is False:
                        log.warning("shared state: assignment lock not free; assigning anyway")
                    lock = None
            turn = self._turns.turn
            if lock is not None:
                last = await self.call(
                    "assignment turn", self.client.get(self.key("assign", "last"))
                )
                if isinstance(last, bytes):
                    turn.last = last.decode()
            before = turn.last
            try:
                yield turn
            finally:
                if lock is not None:
                    if turn.last != before:
                        await self.call(
                            "assignment turn",
                            self.client.set(self.key("assign", "last"), turn.last),
                        )
                    try:
                        await lock.release()
                    except LockError:
                        pass  # held past ASSIGN_LOCK_SECONDS: it expired on its own
                    except DISCONNECTED as exc:
                        self.failed("assignment unlock", exc)

    # ------------------------------------------------------------------- presence

    def _presence_keys(self) -> list[str]:
        return [self.key("presence", "nodes"), self.key("presence", "node", self.node_id)]

    async def put_presence(self, data: bytes, ttl: float) -> None:
        await self._put_presence(
            keys=self._presence_keys(),
            args=[self.node_id, data, max(1, int(ttl * 1000)), NODES_FORGET_MS],
        )

    async def read_presence(self) -> tuple[dict[str, bytes], list[str]]:
        alive, dead = await self._read_presence(
            keys=[self.key("presence", "nodes")],
            args=[self.key("presence", "node", ""), NODES_FORGET_MS],
        )
        return (
            {_text(alive[i]): alive[i + 1] for i in range(0, len(alive), 2)},
            [_text(node) for node in dead],
        )

    async def drop_presence(self) -> None:
        await self._drop_presence(keys=self._presence_keys(), args=[self.node_id])


class RedisLockOut:
    """Lock-out counted in Redis for the whole cluster, and on this node alongside: the
    wait is the longer of the two, so a Redis outage never resets anyone's lock."""

    def __init__(self, state: RedisState) -> None:
        self.state = state
        self.local = MemoryLockOut()

    def _key(self, key: str) -> str:
        return self.state.key("lockout", hashed(key))

    async def wait_seconds(self, key: str) -> float:
        local = await self.local.wait_seconds(key)
        if not self.state.usable:
            return local
        ms = await self.state.call("lock-out", self.state._lockout_wait(keys=[self._key(key)]))
        return max(local, int(ms or 0) / 1000)

    async def failed(self, key: str) -> None:
        await self.local.failed(key)
        if self.state.usable:
            await self.state.call(
                "lock-out",
                self.state._lockout_failed(
                    keys=[self._key(key)],
                    args=[FREE_FAILURES, int(MAX_LOCK_SECONDS * 1000), LOCKOUT_FORGET_MS],
                ),
            )

    async def succeeded(self, key: str) -> None:
        await self.local.succeeded(key)
        if self.state.usable:
            await self.state.call("lock-out", self.state.client.delete(self._key(key)))


class RedisLimiter:
    """A sliding-window limit counted in Redis for the whole cluster (on this node alone
    while Redis is away; what this node counted alone is kept alongside)."""

    def __init__(self, state: RedisState, name: str, limit: int, window_us: int) -> None:
        self.state = state
        self.name = name
        self.limit = limit
        self.window_us = window_us
        self.local = MemoryLimiter(limit, window_us)

    async def take(self, keys: list[str], now_us: int) -> int | None:
        # What this node counted includes what it counted while Redis was away.
        wait = self.local.local.retry_after(keys, now_us)
        if wait is not None:
            return wait
        if self.state.usable:
            wait = await self.state.call(
                "limit",
                self.state._limit_take(
                    keys=[self.state.key("limit", self.name, hashed(k)) for k in keys],
                    args=[now_us, self.window_us, self.limit, uuid.uuid4().hex],
                ),
            )
            if wait is not None:
                if int(wait) > 0:
                    return int(wait)
                # Counted in Redis; counted here too, for when Redis is away.
                self.local.local.add(keys, now_us)
                return None
        return self.local.take_now(keys, now_us)


def _client_name(prefix: str) -> str:
    return "".join(c if c.isalnum() or c in "-_:." else "_" for c in prefix)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
