"""How the load generator talks to each target: room setup, send, receive.

Every adapter builds ``rooms`` pairs of (sender, receiver) sockets, then sends
message ``i`` from sender ``i % rooms``. The body carries ``i`` (``m<i> ...``) so
the receiver can look up its scheduled send time; the chatserver adapter also
encodes ``i`` in the last 12 hex digits of the client_msg_id, so an ``ack`` is
matched without a lookup table.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from bench.clients import Conn, connect

try:
    import msgspec

    _decoder = msgspec.json.Decoder()
    decode: Callable[[bytes], Any] = _decoder.decode
    DecodeError: type[Exception] = msgspec.DecodeError
except ImportError:  # msgspec is a chatserver dependency; json is the fallback
    import json

    decode = json.loads
    DecodeError = ValueError

# A typical short chat line; the length of the body matters more than its words.
FILL = " the quick brown fox jumps over the lazy dog, twice"
SETUP_TIMEOUT = 15.0


def body_index(body: Any) -> int:
    """``m123 the quick...`` -> 123, or -1 for anything not ours."""
    if isinstance(body, str) and body.startswith("m"):
        end = body.find(" ")
        digits = body[1:end] if end > 0 else body[1:]
        if digits.isdigit():
            return int(digits)
    return -1


class Sink(Protocol):
    """What the adapters report to (the step's statistics)."""

    def on_receive(self, i: int) -> None: ...
    def on_ack(self, i: int) -> None: ...
    def on_error(self, code: str, message: str) -> None: ...
    def on_other(self, what: str) -> None: ...


class Adapter:
    name = "?"
    has_acks = False

    def __init__(self, port: int, rooms: int, step: int, sink: Sink, options: dict[str, Any]):
        self.port = port
        self.rooms = rooms
        self.step = step
        self.sink = sink
        self.options = options
        self.senders: list[Conn] = []
        self.receivers: list[Conn] = []

    async def open(self) -> None:
        pairs = await asyncio.gather(*(self.open_room(k) for k in range(self.rooms)))
        self.senders = [s for s, _ in pairs]
        self.receivers = [r for _, r in pairs]

    async def open_room(self, k: int) -> tuple[Conn, Conn]:
        raise NotImplementedError

    def send(self, room: int, i: int) -> None:
        raise NotImplementedError

    def conns(self) -> list[Conn]:
        return self.senders + self.receivers

    def closed_count(self) -> int:
        return sum(1 for c in self.conns() if c.closed)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.conns()), return_exceptions=True)

    async def expect(self, conn: Conn, pred: Callable[[bytes], bool], what: str) -> bytes:
        """Read setup frames until ``pred`` matches; bounded in time and count."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETUP_TIMEOUT
        for _ in range(100):
            data = await conn.next_frame(max(0.01, deadline - loop.time()))
            if pred(data):
                return data
            if b'"error"' in data:
                raise RuntimeError(f"{conn.label}: error while waiting for {what}: {data[:300]!r}")
        raise RuntimeError(f"{conn.label}: no {what} in 100 frames")


class RoomRelayAdapter(Adapter):
    """The websockets and Channels peers: room in the path, frames forwarded as is."""

    async def open_room(self, k: int) -> tuple[Conn, Conn]:
        url = f"ws://127.0.0.1:{self.port}/room/s{self.step}-r{k}"
        joined = b'"joined"'
        pair = []
        for role in ("sender", "receiver"):
            conn = await connect(url, f"{self.name} {role} {k}")
            # Waiting for "joined" closes the race where the first messages are
            # relayed before the receiver is in the room.
            await self.expect(conn, lambda d: joined in d, "joined")
            pair.append(conn)
        sender, receiver = pair
        sender.on_frame = self._ignore
        receiver.on_frame = self._on_receiver
        return sender, receiver

    def _ignore(self, data: bytes) -> None:
        self.sink.on_other("sender-frame")

    def _on_receiver(self, data: bytes) -> None:
        try:
            msg = decode(data)
        except DecodeError:
            self.sink.on_other("undecodable")
            return
        i = body_index(msg.get("body")) if isinstance(msg, dict) else -1
        if i >= 0:
            self.sink.on_receive(i)
        else:
            self.sink.on_other("unexpected-frame")

    def send(self, room: int, i: int) -> None:
        self.senders[room].send(f'{{"type":"send","body":"m{i}{FILL}"}}'.encode())


class WebsocketsAdapter(RoomRelayAdapter):
    name = "websockets"


class ChannelsAdapter(RoomRelayAdapter):
    name = "channels"


class SocketIOAdapter(Adapter):
    """Raw Engine.IO v4 / Socket.IO v5 over a WebSocket, no polling upgrade.

    The official AsyncClient would be the slower side of the test (and needs
    aiohttp), so the packets are written by hand: ``40{auth}`` to join the
    namespace, ``42["msg",...]`` events, ``2``/``3`` for Engine.IO ping/pong.
    """

    name = "socketio"

    async def open_room(self, k: int) -> tuple[Conn, Conn]:
        url = f"ws://127.0.0.1:{self.port}/socket.io/?EIO=4&transport=websocket"
        pair = []
        for role in ("sender", "receiver"):
            conn = await connect(url, f"socketio {role} {k}")
            await self.expect(conn, lambda d: d[:1] == b"0", "engine.io open")
            conn.send(f'40{{"room":"s{self.step}-r{k}"}}'.encode())
            reply = await self.expect(conn, lambda d: d[:2] in (b"40", b"44"), "namespace connect")
            if reply[:2] == b"44":
                raise RuntimeError(f"socketio connect refused: {reply[:300]!r}")
            pair.append(conn)
        sender, receiver = pair
        sender.on_frame = lambda data, c=sender: self._on_frame(c, data, False)
        receiver.on_frame = lambda data, c=receiver: self._on_frame(c, data, True)
        return sender, receiver

    def _on_frame(self, conn: Conn, data: bytes, is_receiver: bool) -> None:
        if data == b"2":
            conn.send(b"3")
            return
        if not (is_receiver and data[:2] == b"42"):
            self.sink.on_other("socketio-" + data[:2].decode(errors="replace"))
            return
        try:
            event = decode(data[2:])
        except DecodeError:
            self.sink.on_other("undecodable")
            return
        i = body_index(event[1]) if isinstance(event, list) and len(event) > 1 else -1
        if i >= 0:
            self.sink.on_receive(i)
        else:
            self.sink.on_other("unexpected-event")

    def send(self, room: int, i: int) -> None:
        self.senders[room].send(f'42["msg","m{i}{FILL}"]'.encode())


class ChatserverAdapter(Adapter):
    """Visitor (sender) and agent watching the conversation (receiver)."""

    name = "chatserver"
    has_acks = True

    def __init__(self, port: int, rooms: int, step: int, sink: Sink, options: dict[str, Any]):
        super().__init__(port, rooms, step, sink, options)
        # A UUIDv4 with a fresh random prefix; the last 12 hex digits carry i.
        self.prefix = str(uuid.uuid4())[:24]
        self.conversations = [""] * rooms
        self.last_seq = [0] * rooms
        self.order_violations = 0

    async def open_room(self, k: int) -> tuple[Conn, Conn]:
        base = f"ws://127.0.0.1:{self.port}"
        visitor = await connect(
            f"{base}/ws/visitor", f"visitor {k}", headers={"Origin": self.options["origin"]}
        )
        visitor.send(b'{"type":"hello"}')
        await self.expect(visitor, lambda d: _type_is(d, "welcome"), "welcome")
        first_id = str(uuid.uuid4())
        visitor.send(f'{{"type":"send","client_msg_id":"{first_id}","body":"hi"}}'.encode())
        ack = decode(await self.expect(visitor, lambda d: _type_is(d, "ack"), "first ack"))
        conversation = ack.get("conversation_id")
        if not isinstance(conversation, str) or ack.get("client_msg_id") != first_id:
            raise RuntimeError(f"visitor {k}: unexpected first ack {ack!r}")

        agent = await connect(
            f"{base}/ws/agent",
            f"agent {k}",
            headers={"Authorization": f"Bearer {self.options['token']}"},
        )
        agent.send(f'{{"type":"watch","conversation_id":"{conversation}"}}'.encode())
        await self.expect(agent, lambda d: _type_is(d, "watching"), "watching")

        visitor.on_frame = self._on_visitor
        agent.on_frame = lambda data, room=k: self._on_agent(room, data)
        self.conversations[k] = conversation
        return visitor, agent

    def _on_visitor(self, data: bytes) -> None:
        try:
            msg = decode(data)
        except DecodeError:
            self.sink.on_other("undecodable")
            return
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "ack":
            cmid = msg.get("client_msg_id")
            if isinstance(cmid, str) and cmid.startswith(self.prefix):
                self.sink.on_ack(int(cmid[24:], 16))
            else:
                self.sink.on_other("foreign-ack")
        elif kind == "error":
            self.sink.on_error(str(msg.get("code")), str(msg.get("message")))
        else:
            self.sink.on_other(f"visitor:{kind}")

    def _on_agent(self, room: int, data: bytes) -> None:
        try:
            msg = decode(data)
        except DecodeError:
            self.sink.on_other("undecodable")
            return
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "message":
            seq = msg.get("seq")
            if isinstance(seq, int):
                if seq <= self.last_seq[room]:
                    self.order_violations += 1
                self.last_seq[room] = seq
            i = body_index(msg.get("body"))
            if i >= 0:
                self.sink.on_receive(i)
            else:
                self.sink.on_other("agent:foreign-message")
        elif kind == "error":
            self.sink.on_error(str(msg.get("code")), str(msg.get("message")))
        else:
            self.sink.on_other(f"agent:{kind}")

    def send(self, room: int, i: int) -> None:
        self.senders[room].send(
            f'{{"type":"send","client_msg_id":"{self.prefix}{i:012x}",'
            f'"conversation_id":"{self.conversations[room]}","body":"m{i}{FILL}"}}'.encode()
        )


def _type_is(data: bytes, kind: str) -> bool:
    try:
        msg = decode(data)
    except DecodeError:
        return False
    return isinstance(msg, dict) and msg.get("type") == kind


ADAPTERS: dict[str, type[Adapter]] = {
    "websockets": WebsocketsAdapter,
    "socketio": SocketIOAdapter,
    "channels": ChannelsAdapter,
    "chatserver": ChatserverAdapter,
}
