"""The PostgreSQL store's writer: one connection, group commit.

The counterpart of ``writer.GroupCommitWriter``: callers hand it an operation
(a coroutine function of an ``asyncpg.Connection`` and a ``PgTx``) and are
answered once the transaction holding it has committed. Operations that arrive
while a transaction is in flight wait and share the next one, so a burst of
messages costs one COMMIT (one WAL flush) instead of one each.

If an operation raises, the batch is rolled back and each operation is run again
in a transaction of its own, so one bad write never fails its neighbours;
operations must therefore have no effect outside the connection. When the
connection itself fails, every operation of the batch is answered
``Unavailable`` (whether the COMMIT reached the server is unknown) and the next
batch connects afresh, so the writer recovers by itself once PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from asyncpg.transaction import Transaction

from chatserver.errors import ChatError, Conflict, Unavailable
from chatserver.store.writer import BatchObserver, Done

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that mean the connection (not the statement) failed.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    # The server is shutting down or an admin ended the backend (pg_terminate_backend).
    asyncpg.exceptions.OperatorInterventionError,
    # The protocol lost track, as when the server ended an idle connection and the next
    # statement was sent before asyncpg saw the socket close: the connection is unusable.
    asyncpg.exceptions.InternalClientError,
)


# What another node's concurrent transaction can cause, and running again resolves.
RETRYABLE = (asyncpg.UniqueViolationError, asyncpg.TransactionRollbackError)
RETRIES = 2


def is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    # SQLSTATE class 08 (connection exception) and 57P (operator intervention).
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and state.startswith(("08", "57P"))


class PgTx:
    """What the operations of one transaction share: scratch state, and work to do last.

    An operation may keep per-transaction state in ``state`` and register a step
    with ``before_commit`` (once per key) that writes the aggregate. Steps run in
    the order they were first registered. Nothing here outlives the transaction:
    another node may write the same rows between two of them.
    """

    __slots__ = ("_steps", "alone", "state")

    def __init__(self, *, alone: bool = False) -> None:
        self.state: dict[str, Any] = {}
        # True when the operation runs in a transaction of its own, after its batch
        # failed: an operation may be optimistic in a batch and careful alone.
        self.alone = alone
        self._steps: dict[str, Callable[[asyncpg.Connection, PgTx], Awaitable[None]]] = {}

    def before_commit(
        self, key: str, step: Callable[[asyncpg.Connection, PgTx], Awaitable[None]]
    ) -> None:
        self._steps.setdefault(key, step)

    async def finish(self, conn: asyncpg.Connection) -> None:
        for step in self._steps.values():
            await step(conn, self)


PgOp = Callable[[asyncpg.Connection, PgTx], Awaitable[T]]
Connect = Callable[[], Awaitable[asyncpg.Connection]]


class PgWriter:
    def __init__(
        self,
        connect: Connect,
        *,
        max_batch: int = 512,
        observe: BatchObserver | None = None,
    ) -> None:
        self._connect = connect
        self._max_batch = max_batch
        self._observe = observe
        self._queue: list[tuple[PgOp[Any], Done]] = []
        self._busy = False
        self._closed = True
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        self._closed = False
        self._conn = await self._connect()

    async def close(self) -> None:
        """Finish every write already submitted, then close the connection."""
        self._closed = True
        await self._idle.wait()
        await self._drop(graceful=True)

    @property
    def backlog(self) -> int:
        """Writes waiting for a batch (not counting the one being written)."""
        return len(self._queue)

    async def idle(self) -> None:
        """Wait until every write submitted so far has committed and been answered."""
        await self._idle.wait()

    def submit(self, op: PgOp[Any], done: Done) -> None:
        """Queue ``op``; ``done`` is called on the event loop once its transaction committed."""
        if self._closed:
            done(Unavailable("the store is closed"))
            return
        self._queue.append((op, done))
        if not self._busy:
            self._busy = True
            self._idle.clear()
            # One task per burst, not per write: it drains the queue batch by batch.
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def run(self, op: PgOp[T]) -> T:
        """``op``'s result once committed, or the exception it raised."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def done(result: Any) -> None:
            if future.done():
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

        self.submit(op, done)
        return await future

    async def connection(self) -> asyncpg.Connection:
        """The writer's connection, made afresh if the last one failed."""
        if self._conn is None or self._conn.is_closed():
            self._conn = None
            self._conn = await self._connect()
        return self._conn

    # ------------------------------------------------------------ internals

    async def _drain(self) -> None:
        batch: list[tuple[PgOp[Any], Done]] = []
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                started = time.perf_counter()
                results = await self._commit([op for op, _ in batch])
                if self._observe is not None:
                    self._observe(len(batch), time.perf_counter() - started)
                answered, batch = batch, []
                for (_, done), result in zip(answered, results, strict=True):
                    try:
                        done(result)
                    except Exception:  # a failing callback must not starve its neighbours
                        log.exception("write callback failed")
        finally:
            # Only when cancelled (loop shutting down) is anything left: nobody may
            # wait forever for an answer.
            leftovers = batch + self._queue
            self._queue.clear()
            self._busy = False
            self._idle.set()
            for _, done in leftovers:
                done(Unavailable("the store writer stopped"))

    async def _begin(self) -> tuple[asyncpg.Connection, Transaction]:
        """The writer's connection inside a fresh transaction.

        A connection that died while idle (a database restart, a killed backend, a
        dropped NAT entry) fails at BEGIN, before anything is written: it is
        replaced once here, so no write is refused for a death nobody saw.
        """
        for attempt in range(2):
            conn = await self.connection()
            transaction = conn.transaction()
            try:
                await transaction.start()
            except Exception as exc:
                if attempt == 0 and is_connection_error(exc):
                    await self._drop()
                    continue
                raise
            return conn, transaction
        raise AssertionError("unreachable")

    async def _transaction(self, ops: list[PgOp[Any]], *, alone: bool) -> list[Any]:
        """Run ``ops`` in one transaction and commit; their results, or what one raised
        (after the rollback)."""
        conn, transaction = await self._begin()
        try:
            tx = PgTx(alone=alone)
            results = [await op(conn, tx) for op in ops]
            await tx.finish(conn)
        except BaseException:
            if not conn.is_closed():
                with contextlib.suppress(Exception):
                    await transaction.rollback()
            raise
        await transaction.commit()
        return results

    async def _commit(self, ops: list[PgOp[Any]]) -> list[Any]:
        try:
            return await self._transaction(ops, alone=False)
        except Exception as exc:
            if is_connection_error(exc):
                await self._drop()
                return [Unavailable(f"store write failed: {exc}")] * len(ops)
            if len(ops) == 1 and not isinstance(exc, RETRYABLE):
                return [self._answer(exc)]
        return [await self._one(op) for op in ops]

    async def _one(self, op: PgOp[Any]) -> Any:
        for attempt in range(RETRIES + 1):
            try:
                return (await self._transaction([op], alone=True))[0]
            except Exception as exc:
                if isinstance(exc, RETRYABLE) and attempt < RETRIES:
                    # Another node committed a row this one collides with (the same
                    # retried message), or locked rows in the other order: the op, run
                    # again, sees that row and answers accordingly (say, as a duplicate).
                    continue
                if is_connection_error(exc):
                    await self._drop()
                return self._answer(exc)
        raise AssertionError("unreachable")

    @staticmethod
    def _answer(exc: Exception) -> Exception:
        if isinstance(exc, ChatError):
            return exc
        if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
            return Conflict(f"conflicts with stored data: {exc}")
        if is_connection_error(exc):
            return Unavailable(f"store write failed: {exc}")
        if not isinstance(exc, asyncpg.PostgresError):
            log.error("store write raised", exc_info=exc)
        return Unavailable(f"store write failed: {exc}")

    async def _drop(self, *, graceful: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        if graceful:
            try:
                await asyncio.wait_for(conn.close(), 5)
                return
            except Exception:
                pass
        conn.terminate()
