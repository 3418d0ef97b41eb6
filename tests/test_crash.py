"""Durability: an ack means committed, even if the process is killed right after."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from tests.helpers import ORIGIN, Client, cli, free_port, msg_id


@contextmanager
def server_process(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "CHATSERVER_DATA_DIR": str(data_dir),
        "CHATSERVER_ALLOWED_ORIGINS": ORIGIN,
        "CHATSERVER_RATE_LIMIT_PER_SECOND": "100000",
        "CHATSERVER_RATE_LIMIT_BURST": "100000",
        "CHATSERVER_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatserver", "serve", "--port", str(port)], env=env
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


async def wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(30):
        while True:
            assert proc.poll() is None, "server exited"
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)  # polling for readiness, bounded by the timeout


async def test_sigkill_after_a_burst_loses_no_acknowledged_message(tmp_path: Path) -> None:
    """Killed with SIGKILL mid-burst and restarted, the store has every acked message, gapless."""
    port = free_port()
    acked: dict[str, tuple[int, str]] = {}
    with server_process(tmp_path, port) as proc:
        await wait_healthy(port, proc)
        async with connect(f"ws://127.0.0.1:{port}/ws/visitor", origin=ORIGIN) as ws:  # type: ignore[arg-type]
            # `chatserver serve` turns per-message-deflate off (it costs memory per socket).
            assert ws.response is not None
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            visitor = Client(ws)
            await visitor.send(type="hello")
            await visitor.expect("welcome")
            await visitor.send(type="send", client_msg_id="first", body="start")
            first = await visitor.until("ack")
            conv = first["conversation_id"]
            acked["first"] = (first["seq"], first["message_id"])
            ids = [msg_id() for _ in range(2000)]
            for cid in ids:
                await visitor.send(type="send", client_msg_id=cid, conversation_id=conv, body=cid)
            while len(acked) < 400:
                frame = await visitor.recv()
                if frame["type"] == "ack":
                    acked[frame["client_msg_id"]] = (frame["seq"], frame["message_id"])
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            # Acks already on the wire when the process died still count.
            try:
                while True:
                    frame = await visitor.recv(timeout=2)
                    if frame["type"] == "ack":
                        acked[frame["client_msg_id"]] = (frame["seq"], frame["message_id"])
            except Exception:
                pass
    assert proc.returncode == -signal.SIGKILL
    token = cli(tmp_path, "token", "create", "--role", "agent").stdout.strip()
    port = free_port()
    with server_process(tmp_path, port) as proc:
        await wait_healthy(port, proc)
        stored: list[dict[str, object]] = []
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        ) as http:
            cursor = None
            while True:
                params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
                page = (
                    await http.get(f"/api/v1/conversations/{conv}/messages", params=params)
                ).json()
                stored += page["items"]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
    seqs = [m["seq"] for m in stored]
    assert seqs == list(range(1, len(seqs) + 1)), "seqs have a gap or a repeat"
    by_seq = {m["seq"]: m for m in stored}
    for cid, (seq, message_id) in acked.items():
        assert by_seq[seq]["message_id"] == message_id, f"acked message {cid} is missing"
    assert len(stored) >= len(acked) >= 400
