"""One SQLite writer with group commit.

Every write of the process goes through ``GroupCommitWriter``: callers hand it
an operation (a function of a ``sqlite3.Connection``) and are answered when the
transaction holding it has committed. Operations that arrive while a
transaction is being written wait and share the next one, so under load one
thread hand-off and one commit (one fsync) serve hundreds of writes, and when
idle a write is committed at once: batching adapts to the load by itself,
with no timer adding latency.

If one operation of a batch raises, the batch is rolled back and every
operation is run again in a transaction of its own, so one bad write never
fails its neighbours. Operations must therefore have no effect outside the
connection.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from chatserver.errors import ChatError, Conflict, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


class Tx:
    """What the operations of one transaction share: scratch state, and work to do last.

    An operation may keep per-transaction state in ``state`` and register a
    step with ``before_commit`` (once per key) that writes the aggregate, so
    that, say, a conversation's ``last_seq`` is written once per batch instead
    of once per message.
    """

    __slots__ = ("_steps", "state")

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self._steps: dict[str, Callable[[sqlite3.Connection, Tx], None]] = {}

    def before_commit(self, key: str, step: Callable[[sqlite3.Connection, Tx], None]) -> None:
        self._steps.setdefault(key, step)

    def finish(self, conn: sqlite3.Connection) -> None:
        for step in self._steps.values():
            step(conn, self)


Op = Callable[[sqlite3.Connection, Tx], Any]
Done = Callable[[Any], None]  # called with the op's result or the exception it raised
BatchObserver = Callable[[int, float], None]


class GroupCommitWriter:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        max_batch: int = 512,
        observe: BatchObserver | None = None,
    ) -> None:
        self._connect = connect
        self._max_batch = max_batch
        self._observe = observe
        self._queue: list[tuple[Op, Done]] = []
        self._busy = False
        self._closed = False
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._closed = False
        self._conn = await self._loop.run_in_executor(self._executor, self._connect)

    async def close(self) -> None:
        """Finish every write already submitted, then close the connection."""
        self._closed = True
        await self._idle.wait()
        if self._conn is not None and self._loop is not None:
            await self._loop.run_in_executor(self._executor, self._conn.close)
            self._conn = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def backlog(self) -> int:
        """Writes waiting for a batch (not counting the one being written)."""
        return len(self._queue)

    async def idle(self) -> None:
        """Wait until every write submitted so far has committed and been answered."""
        await self._idle.wait()

    def submit(self, op: Op, done: Done) -> None:
        """Queue ``op``; ``done`` is called on the event loop once its transaction committed."""
        if self._closed or self._loop is None:
            done(Unavailable("the store is closed"))
            return
        self._queue.append((op, done))
        if not self._busy:
            self._flush()

    async def run(self, op: Callable[[sqlite3.Connection, Tx], T]) -> T:
        """``op``'s result once committed, or the exception it raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def done(result: Any) -> None:
            if future.done():
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

        self.submit(op, done)
        return await future

    async def run_in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer's connection outside any batch (migrations, checkpoints)."""
        assert self._loop is not None and self._conn is not None
        conn = self._conn
        return await self._loop.run_in_executor(self._executor, fn, conn)

    # ------------------------------------------------------------ internals

    def _flush(self) -> None:
        assert self._loop is not None
        batch = self._queue[: self._max_batch]
        del self._queue[: self._max_batch]
        self._busy = True
        self._idle.clear()
        started = time.perf_counter()
        future = self._loop.run_in_executor(self._executor, self._commit, [op for op, _ in batch])
        future.add_done_callback(lambda f: self._finished(batch, f, started))

    def _finished(
        self, batch: list[tuple[Op, Done]], future: asyncio.Future[Any], t0: float
    ) -> None:
        self._busy = False
        try:
            results: list[Any] = future.result()
        except BaseException as exc:  # the thread itself failed: nothing of the batch is known
            results = [Unavailable(f"store write failed: {exc}")] * len(batch)
        if self._queue:
            self._flush()  # keep the thread busy while this batch's callbacks run
        else:
            self._idle.set()
        if self._observe is not None:
            self._observe(len(batch), time.perf_counter() - t0)
        for (_, done), result in zip(batch, results, strict=True):
            try:
                done(result)
            except Exception:  # a failing callback must not starve its neighbours
                log.exception("write callback failed")

    def _commit(self, ops: list[Op]) -> list[Any]:
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            tx = Tx()
            results = [op(conn, tx) for op in ops]
            tx.finish(conn)
            conn.execute("COMMIT")
            return results
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(ops) == 1:
                return [self._one(conn, ops[0])]
            return [self._one(conn, op) for op in ops]

    @staticmethod
    def _one(conn: sqlite3.Connection, op: Op) -> Any:
        try:
            conn.execute("BEGIN IMMEDIATE")
            tx = Tx()
            result = op(conn, tx)
            tx.finish(conn)
            conn.execute("COMMIT")
            return result
        except ChatError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return exc
        except sqlite3.IntegrityError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return Conflict(f"conflicts with stored data: {exc}")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return Unavailable(f"store write failed: {exc}")
