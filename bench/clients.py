"""Client WebSocket connections for the load generator.

picows is used when it is installed: it parses frames in C and calls back
synchronously, so one core of load generator can drive a server well past
what the servers under test handle. The fallback is the ``websockets`` asyncio
client, which is slower (a task per connection for reads, another for writes).

A connection starts in *setup* mode, where frames queue up for ``next_frame``;
the load generator then swaps in a fast per-frame callback.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any

HAVE_PICOWS = importlib.util.find_spec("picows") is not None
MAX_FRAME = 1 << 20
# The load generator may turn this off (``--client websockets``) to compare.
use_picows = HAVE_PICOWS


def client_name() -> str:
    if use_picows:
        from importlib.metadata import version

        return f"picows {version('picows')}"
    import websockets

    why = "chosen" if HAVE_PICOWS else "picows not installed"
    return f"websockets {websockets.__version__} asyncio client ({why})"


class Conn:
    """One client WebSocket; received payloads go to ``on_frame``."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.on_frame: Callable[[bytes], None] = self._queue_frame
        self.closed = False
        self.close_info = ""
        # The client end's TCP port: which server process holds the socket, seen from there.
        self.local_port = 0
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def _queue_frame(self, data: bytes) -> None:
        self._queue.put_nowait(data)

    def mark_closed(self, info: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_info = info
            # Wakes a setup-phase reader so it fails now instead of timing out.
            self._queue.put_nowait(None)

    async def next_frame(self, within_s: float) -> bytes:
        data = await asyncio.wait_for(self._queue.get(), within_s)
        if data is None:
            raise ConnectionError(f"{self.label}: connection closed ({self.close_info})")
        return data

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


if HAVE_PICOWS:
    from picows import WSListener, WSMsgType, WSTransport, ws_connect

    class _Listener(WSListener):  # type: ignore[misc]
        def __init__(self, conn: PicowsConn) -> None:
            self.conn = conn

        def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
            kind = frame.msg_type
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                self.conn.on_frame(frame.get_payload_as_bytes())
            elif kind is WSMsgType.CLOSE:
                self.conn.mark_closed(f"close {frame.get_close_code()} {frame.get_close_reason()}")
                transport.send_close(frame.get_close_code())
                transport.disconnect()

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            self.conn.mark_closed(self.conn.close_info or "disconnected")


class PicowsConn(Conn):
    transport: Any

    def send(self, data: bytes) -> None:
        if not self.closed:
            self.transport.send(WSMsgType.TEXT, data)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.transport.send_close()
            self.transport.disconnect()
            await asyncio.wait_for(self.transport.wait_disconnected(), 2)


class WebsocketsConn(Conn):
    def __init__(self, label: str) -> None:
        super().__init__(label)
        self._out: collections.deque[bytes] = collections.deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.ws: Any = None

    def start(self, ws: Any) -> None:
        self.ws = ws
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]

    async def _read(self) -> None:
        try:
            while True:
                self.on_frame(await self.ws.recv(decode=False))
        except Exception as exc:
            self.mark_closed(repr(exc))

    async def _write(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._out:
                    await self.ws.send(self._out.popleft(), text=True)
        except Exception as exc:
            self.mark_closed(repr(exc))

    def send(self, data: bytes) -> None:
        self._out.append(data)
        self._wake.set()

    async def close(self) -> None:
        self.closed = True
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2)


async def connect(
    url: str, label: str, headers: Mapping[str, str] | None = None, handshake_s: float = 10.0
) -> Conn:
    """Open a client socket without compression (none of the targets needs it)."""
    hdrs = dict(headers or {})
    if use_picows:
        conn = PicowsConn(label)
        transport, _ = await asyncio.wait_for(
            ws_connect(
                lambda: _Listener(conn),
                url,
                extra_headers=hdrs,
                websocket_handshake_timeout=handshake_s,
                max_frame_size=MAX_FRAME,
            ),
            handshake_s + 1,
        )
        conn.transport = transport
        with contextlib.suppress(Exception):
            conn.local_port = int(transport.underlying_transport.get_extra_info("sockname")[1])
        return conn
    from websockets.asyncio.client import connect as ws_connect_fallback

    wconn = WebsocketsConn(label)
    ws = await ws_connect_fallback(
        url,
        additional_headers=hdrs,
        compression=None,
        open_timeout=handshake_s,
        ping_interval=None,
        max_size=MAX_FRAME,
        max_queue=None,
    )
    wconn.start(ws)
    with contextlib.suppress(Exception):
        wconn.local_port = int(ws.local_address[1])
    return wconn
