"""Socket guards that need a raw peer: heartbeat, and no compression by default."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

from tests.helpers import ORIGIN, make_settings, running_server


async def test_a_peer_that_never_answers_pings_is_dropped(tmp_path: Path) -> None:
    """The server pings; a peer that never answers is disconnected after the interval."""
    settings = make_settings(tmp_path, heartbeat_interval=0.2, hello_timeout=60)
    async with running_server(settings) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET /ws/visitor HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{server.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: {ORIGIN}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101")
        # Read whatever comes (pings, then a close) and never answer: EOF must follow.
        received = b""
        async with asyncio.timeout(10):
            while chunk := await reader.read(4096):
                received += chunk
        assert received[:1] == b"\x89", "the first frame should be a ping"
        writer.close()
