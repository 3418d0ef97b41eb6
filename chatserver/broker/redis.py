"""The Redis broker: events between the nodes of a cluster over Redis pub/sub.

``CHATSERVER_BROKER=redis://host:port/db[?prefix=...]``. Every topic is a Redis
channel named ``<prefix><topic>`` (prefix ``chatserver:`` by default), so several
clusters, or tests, can share one Redis.

Each process holds two connections: one pub/sub connection, read by a reader task
that decodes each event (msgspec JSON of ``Event``) and hands it to ``deliver`` on
the event loop; and one ordinary connection on which a writer task sends the
``PUBLISH`` commands, in the order ``publish()`` was called. ``publish()`` itself
never blocks: it queues the encoded event (and drops it, with a warning, should the
queue ever be full).

When a connection is lost, the broker logs it, reconnects with exponential backoff
and subscribes again to every topic followed at that moment.

Redis pub/sub is at-most-once: whatever is published while a node is disconnected
never reaches that node, and an event whose PUBLISH was cut off may be sent twice
or not at all. That is acceptable because the store is the truth: the hub notices a
gap in a conversation's ``seq`` and fills it from the store. The broker is for speed
only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from chatserver.broker.base import Deliver, Event

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "chatserver:"
# How long subscribe() waits for Redis to confirm before it leaves the topic to
# the reconnect loop.
SUBSCRIBE_TIMEOUT = 5.0
QUEUE_SIZE = 100_000
# A batch of PUBLISH commands sent in one round trip.
BATCH = 256
# The reader wakes up this often so that idle connections get health checks.
READ_TIMEOUT = 10.0
HEALTH_CHECK_INTERVAL = 30
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 5.0

_DISCONNECTED = (RedisError, OSError)
# Put on the publish queue by ``close``: the writer stops when it takes it.
_STOP: tuple[str, bytes] = ("", b"")
CLOSE_TIMEOUT = 2.0


def split_url(url: str) -> tuple[str, str]:
    """``(redis URL without our own query parameters, channel prefix)``."""
    parts = urlsplit(url)
    prefix = DEFAULT_PREFIX
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "prefix":
            prefix = value
        else:
            query.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(query))), prefix


class RedisBroker:
    def __init__(self, url: str, *, backoff_max: float = BACKOFF_MAX) -> None:
        self.url, self.prefix = split_url(url)
        self._backoff_max = backoff_max
        self._deliver: Deliver | None = None
        self._topics: set[str] = set()
        self._pending: dict[str, asyncio.Event] = {}
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(QUEUE_SIZE)
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(Event)
        self._pub: aioredis.Redis | None = None
        self._sub: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._sub_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        # Set while the pub/sub connection is up and subscribed (for tests and health).
        self.connected = asyncio.Event()
        # How many times the pub/sub connection was (re)established.
        self.connections = 0
        # Set once a reconnection has every followed topic confirmed by Redis again.
        self.resubscribed = asyncio.Event()
        self._closing = False
        # After a reconnection, once every topic is confirmed again, the node is told
        # with a ``resync`` event: what was published meanwhile is lost to it.
        self._resync_due = False

    def _client(self, **kwargs: Any) -> aioredis.Redis:
        # No retries inside redis-py: this class reconnects and resubscribes itself.
        return aioredis.Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=5,
            **kwargs,
        )

    def channel(self, topic: str) -> str:
        return self.prefix + topic

    # ------------------------------------------------------------------ lifecycle

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._pub = self._client(single_connection_client=True, socket_timeout=10)
        # Named, so that an operator (or a test) can tell this cluster's connections apart.
        name = "".join(c if c.isalnum() or c in "-_:." else "_" for c in self.prefix)
        self._sub = self._client(
            health_check_interval=HEALTH_CHECK_INTERVAL, client_name=f"{name}pubsub"
        )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_loop(), name="redis-broker-reader"),
            loop.create_task(self._write_loop(), name="redis-broker-writer"),
        ]
        # Wait (a little) for the pub/sub connection, so that the first subscriptions
        # are confirmed; if Redis is down, the reader keeps trying in the background.
        try:
            await asyncio.wait_for(self.connected.wait(), SUBSCRIBE_TIMEOUT)
        except TimeoutError:
            log.warning("redis broker: %s not reachable yet; retrying in the background", self.url)

    async def close(self) -> None:
        # Give queued events a moment to leave before the writer stops.
        if self._tasks and not self._queue.empty():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), 1.0)
        # redis-py can swallow a cancellation that lands inside a command, leaving a
        # task to wait on the queue forever: the writer is also told by a sentinel, and
        # shutdown waits a bounded time for either task.
        self._closing = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_STOP)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT)
            for task in stuck:
                log.warning("redis broker: %s did not stop in time", task.get_name())
        self._tasks = []
        self._deliver = None
        self.connected.clear()
        await self._drop_pubsub()
        for client in (self._pub, self._sub):
            if client is not None:
                with contextlib.suppress(*_DISCONNECTED):
                    await client.aclose(close_connection_pool=True)
        self._pub = self._sub = None

    async def ping(self) -> None:
        client = self._pub
        if client is None:
            client = self._client(single_connection_client=True)
            try:
                await asyncio.wait_for(client.ping(), 5)
            finally:
                with contextlib.suppress(*_DISCONNECTED):
                    await client.aclose()
            return
        await asyncio.wait_for(client.ping(), 5)

    # -------------------------------------------------------------- subscriptions

    async def subscribe(self, topic: str) -> None:
        self._topics.add(topic)
        channel = self.channel(topic)
        confirmed = self._pending.setdefault(channel, asyncio.Event())
        async with self._sub_lock:
            pubsub = self._pubsub
            if pubsub is None or not self.connected.is_set():
                return  # the reconnect loop subscribes to it
            try:
                await pubsub.subscribe(channel)
            except _DISCONNECTED as exc:
                log.warning("redis broker: subscribe %s failed (%s); will retry", topic, exc)
                return
        try:
            await asyncio.wait_for(confirmed.wait(), SUBSCRIBE_TIMEOUT)
        except TimeoutError:
            log.warning("redis broker: no confirmation for subscribe %s yet", topic)

    async def unsubscribe(self, topic: str) -> None:
        self._topics.discard(topic)
        waiting = self._pending.pop(self.channel(topic), None)
        if waiting is not None:
            waiting.set()  # nobody waits for a topic no longer followed
        async with self._sub_lock:
            pubsub = self._pubsub
            if pubsub is None or not self.connected.is_set() or topic in self._topics:
                return
            try:
                await pubsub.unsubscribe(self.channel(topic))
            except _DISCONNECTED as exc:
                log.warning("redis broker: unsubscribe %s failed (%s)", topic, exc)

    # ------------------------------------------------------------------- publish

    def publish(self, event: Event) -> None:
        try:
            self._queue.put_nowait((self.channel(event.topic), self._encoder.encode(event)))
        except asyncio.QueueFull:
            log.warning("redis broker: publish queue full, dropping a %s event", event.kind)

    async def _write_loop(self) -> None:
        assert self._pub is not None
        pub = self._pub
        backoff = BACKOFF_FIRST
        while not self._closing:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if _STOP in batch:
                batch = [item for item in batch if item is not _STOP]
                self._closing = True
                if not batch:
                    return
            while True:
                try:
                    if len(batch) == 1:
                        await pub.publish(*batch[0])
                    else:
                        async with pub.pipeline(transaction=False) as pipe:
                            for channel, data in batch:
                                pipe.publish(channel, data)
                            await pipe.execute()
                except _DISCONNECTED as exc:
                    log.warning(
                        "redis broker: publish failed (%s); retrying in %.2fs", exc, backoff
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._backoff_max)
                    continue
                backoff = BACKOFF_FIRST
                break
            for _ in batch:
                self._queue.task_done()

    # ---------------------------------------------------------------------- read

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*_DISCONNECTED):
                await pubsub.aclose()

    async def _connect(self) -> PubSub:
        assert self._sub is not None
        pubsub = self._sub.pubsub()
        try:
            await pubsub.connect()
            async with self._sub_lock:
                self._pubsub = pubsub
                channels = [self.channel(topic) for topic in sorted(self._topics)]
                for channel in channels:
                    self._pending.setdefault(channel, asyncio.Event())
                if channels:
                    await pubsub.subscribe(*channels)
                self.connected.set()
        except BaseException:
            self._pubsub = None
            with contextlib.suppress(*_DISCONNECTED):
                await pubsub.aclose()
            raise
        self.connections += 1
        return pubsub

    async def _read_loop(self) -> None:
        backoff = BACKOFF_FIRST
        first = True
        while True:
            try:
                pubsub = await self._connect()
            except _DISCONNECTED as exc:
                log.warning(
                    "redis broker: cannot reach %s (%s); retrying in %.2fs", self.url, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max)
                continue
            if not first:
                self._resync_due = True
                log.warning(
                    "redis broker: reconnected to %s, resubscribed to %d topics",
                    self.url,
                    len(self._topics),
                )
            first = False
            backoff = BACKOFF_FIRST
            self._check_resubscribed()
            try:
                while True:
                    message = await pubsub.get_message(timeout=READ_TIMEOUT)
                    if message is not None:
                        self._handle(message)
            except _DISCONNECTED as exc:
                log.warning("redis broker: lost the pub/sub connection (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                await self._drop_pubsub()

    def _check_resubscribed(self) -> None:
        if self.connections > 1 and self.connected.is_set() and not self._pending:
            self.resubscribed.set()
            if self._resync_due and self._deliver is not None:
                self._resync_due = False
                self._deliver(Event(topic="", kind="resync", frame=""))

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode()
        if kind == "subscribe":
            confirmed = self._pending.pop(channel, None) if isinstance(channel, str) else None
            if confirmed is not None:
                confirmed.set()
            self._check_resubscribed()
            return
        if kind != "message":
            return
        try:
            event = self._decoder.decode(message["data"])
        except (msgspec.DecodeError, TypeError) as exc:
            log.warning("redis broker: undecodable event on %s: %s", channel, exc)
            return
        deliver = self._deliver
        if deliver is None:
            return
        try:
            deliver(event)
        except Exception:
            log.exception("redis broker: delivering a %s event failed", event.kind)
