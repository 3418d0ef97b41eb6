"""A webhook receiver on localhost, written as a connected system would write one.

A plain ``asyncio`` HTTP/1.1 server (no web framework) that checks each
delivery with the documented ``verify_signature``, refuses an ``id`` it has
accepted before (a replay), and can be told to answer 500 to the first
attempts of every delivery, or to every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatserver.webhooks.signing import InvalidSignature, verify_signature

TIMEOUT = 10.0


@dataclass
class Received:
    at: float  # time.monotonic() when the body was read
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int
    verdict: str  # "accepted", "failing on purpose", "replay" or "invalid: <why>"

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    @property
    def id(self) -> str | None:
        try:
            return str(self.json["id"])
        except (ValueError, KeyError, TypeError):
            return None


class Receiver:
    def __init__(self, *, fail_first: int = 0, always_fail: bool = False) -> None:
        self.secret = ""
        # The receiver's clock; a test that moves the server's clock moves this one too.
        self.clock: Callable[[], float] = time.time
        self.fail_first = fail_first
        self.always_fail = always_fail
        self.requests: list[Received] = []
        self.seen: set[str] = set()
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def judge(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        """What a careful receiver answers: 400 unless signed and fresh, 409 for an id
        seen before, else 2xx (or 500 while told to fail)."""
        try:
            verify_signature(
                self.secret, headers.get("chatserver-signature", ""), body, self.clock()
            )
            delivery_id = json.loads(body)["id"]
        except InvalidSignature as exc:
            return 400, f"invalid: {exc}"
        except (ValueError, KeyError, TypeError):
            return 400, "invalid: not a delivery body"
        if delivery_id in self.seen:
            return 409, "replay"
        earlier = sum(1 for r in self.requests if r.id == delivery_id)
        if self.always_fail or earlier < self.fail_first:
            return 500, "failing on purpose"
        self.seen.add(delivery_id)
        return 204, "accepted"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode("latin-1").split()
            headers: dict[str, str] = {}
            while True:
                line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
                if not line:
                    break
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            arrived = time.monotonic()
            status, verdict = self.judge(headers, body)
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            received = Received(arrived, request_line[1], headers, body, status, verdict)
            async with self._changed:
                self.requests.append(received)
                self._changed.notify_all()
        except (ConnectionError, asyncio.IncompleteReadError, IndexError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def until(
        self, check: Callable[[list[Received]], bool], timeout: float = TIMEOUT
    ) -> list[Received]:
        """Wait until ``check(requests so far)`` holds; answers the requests."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: check(self.requests))
        return list(self.requests)

    def accepted(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """The bodies accepted, oldest first, of one type or all."""
        return [
            r.json
            for r in self.requests
            if r.verdict == "accepted" and (event_type is None or r.json["type"] == event_type)
        ]

    async def until_accepted(
        self, event_type: str, count: int = 1, timeout: float = TIMEOUT
    ) -> list[dict[str, Any]]:
        await self.until(lambda _: len(self.accepted(event_type)) >= count, timeout)
        return self.accepted(event_type)
