"""The server's log names no client (P4): a real ``chatserver serve --demo`` process, a
visitor who chats over a real socket and HTTP requests, then its whole output is read.

The server listens on 127.0.0.2 and every client connects from 127.0.0.1, so the
client's address can be told from the server's own (which uvicorn prints at start).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import REDIS_URL, TIMEOUT, Client, backend_settings

HOST = "127.0.0.2"  # the server's address
CLIENT = "127.0.0.1"  # the clients' address, which must not reach the log
SECRET_QUERY = "q-secret-" + uuid.uuid4().hex  # a query string (tokens, search text)


def free_port_on(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Output:
    stdout: str
    stderr: str

    @property
    def both(self) -> str:
        return self.stdout + self.stderr


def start(data_dir: Path, port: int, env: dict[str, str], workers: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "chatserver", "serve", "--demo", "--host", HOST]
    command += ["--port", str(port), "--workers", str(workers)]
    inherited = {k: v for k, v in os.environ.items() if k != "CHATSERVER_ACCESS_LOG"}
    full_env = {
        **inherited,
        "CHATSERVER_DATA_DIR": str(data_dir),
        "CHATSERVER_RETENTION_INTERVAL": "off",
        "PYTHONUNBUFFERED": "1",
        **{f"CHATSERVER_{k.upper()}": v for k, v in backend_settings(data_dir).items()},
        **env,
    }
    out = (data_dir.parent / f"{data_dir.name}-stdout.txt").open("w")
    err = (data_dir.parent / f"{data_dir.name}-stderr.txt").open("w")
    with out, err:  # the child keeps its own copies of the descriptors
        return subprocess.Popen(command, env=full_env, stdout=out, stderr=err, text=True)


def read_output(data_dir: Path) -> Output:
    return Output(
        (data_dir.parent / f"{data_dir.name}-stdout.txt").read_text(),
        (data_dir.parent / f"{data_dir.name}-stderr.txt").read_text(),
    )


async def chat_and_browse(data_dir: Path, port: int, proc: subprocess.Popen[str]) -> None:
    """What a visitor and an agent do, every connection made from 127.0.0.1."""
    base = f"http://{HOST}:{port}"
    transport = httpx.AsyncHTTPTransport(local_address=CLIENT)
    async with httpx.AsyncClient(base_url=base, transport=transport, timeout=TIMEOUT) as http:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"the server exited:\n{read_output(data_dir).stderr}"
            try:
                if (await http.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /healthz in 30 s"
            await asyncio.sleep(0.05)  # polling /healthz, bounded by the deadline above
        printed = read_output(data_dir).stdout
        token = next(
            line.split()[-1] for line in printed.splitlines() if "demo agent API token" in line
        )
        origin = f"http://{HOST}:{port}"
        async with connect(
            f"ws://{HOST}:{port}/ws/visitor",
            origin=origin,  # type: ignore[arg-type]
            local_addr=(CLIENT, 0),
        ) as ws:
            visitor = Client(ws)
            await visitor.send(type="hello", consent={"version": "2019-06-01"})
            await visitor.expect("welcome")
            await visitor.send(type="send", client_msg_id="m1", body="Hello, is anyone there?")
            ack = await visitor.until("ack")
        # A socket from an origin the demo does not allow is refused (403).
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"ws://{HOST}:{port}/ws/visitor",
                origin="http://evil.example",  # type: ignore[arg-type]
                local_addr=(CLIENT, 0),
            ):
                pass
        assert refused.value.response.status_code == 403
        assert (await http.get("/demo")).status_code == 200
        assert (await http.get("/widget.js")).status_code == 200
        assert (await http.get("/no/such/page")).status_code == 404
        agent = {"Authorization": f"Bearer {token}"}
        answer = await http.get(
            f"/api/v1/conversations/{ack['conversation_id']}/messages?after={SECRET_QUERY}",
            headers=agent,
        )
        assert answer.status_code in (200, 400), answer.text
        listed = await http.get(f"/api/v1/conversations?q={SECRET_QUERY}", headers=agent)
        assert listed.status_code in (200, 400), listed.text


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        pytest.fail("the server did not stop on SIGINT within 30 s")


async def run_server(tmp_path: Path, env: dict[str, str], workers: int = 1) -> Output:
    data_dir = tmp_path / "data"
    port = free_port_on(HOST)
    proc = start(data_dir, port, env, workers)
    try:
        await chat_and_browse(data_dir, port, proc)
    finally:
        stop(proc)
    output = read_output(data_dir)
    assert "Application startup complete" in output.stderr, output.stderr  # the log was read
    return output


async def test_by_default_no_log_line_names_a_client(tmp_path: Path) -> None:
    """Default settings: the visitor chatted, sockets were accepted and refused, pages and
    API calls answered, and the output holds neither the client's IP nor a query string;
    no access line at all."""
    output = await run_server(tmp_path, {})
    assert CLIENT not in output.both, output.both
    assert "127.0.0.0" not in output.both
    assert SECRET_QUERY not in output.both
    assert "WebSocket /ws/visitor" not in output.both
    assert '"GET /' not in output.both


async def test_the_truncated_access_log_names_networks_and_paths_only(tmp_path: Path) -> None:
    """``CHATSERVER_ACCESS_LOG=truncated``: one line per request and handshake with the
    /24 network (127.0.0.0), the method, the path without its query and the status."""
    output = await run_server(tmp_path, {"CHATSERVER_ACCESS_LOG": "truncated"})
    assert CLIENT not in output.both, output.both
    assert SECRET_QUERY not in output.both
    lines = output.stdout.splitlines()
    assert any('127.0.0.0 - "WebSocket /ws/visitor" 101' in line for line in lines), lines
    assert any('127.0.0.0 - "WebSocket /ws/visitor" 403' in line for line in lines), lines
    assert any('127.0.0.0 - "GET /healthz HTTP/1.1" 200' in line for line in lines), lines
    assert any('127.0.0.0 - "GET /no/such/page HTTP/1.1" 404' in line for line in lines), lines
    assert any('"GET /api/v1/conversations HTTP/1.1"' in line for line in lines), lines


async def test_several_workers_log_no_client_either(tmp_path: Path) -> None:
    """``serve --workers 2`` (on a Redis broker): each worker's log is configured the same
    way, so the truncated access log is there and the client's IP is not."""
    prefix = f"test-logs-{uuid.uuid4().hex[:8]}:"
    env = {
        "CHATSERVER_ACCESS_LOG": "truncated",
        "CHATSERVER_BROKER": backend_settings(tmp_path / "data").get("broker")
        or f"{REDIS_URL}?prefix={prefix}",
    }
    output = await run_server(tmp_path, env, workers=2)
    assert CLIENT not in output.both, output.both
    assert SECRET_QUERY not in output.both
    assert '127.0.0.0 - "WebSocket /ws/visitor" 101' in output.stdout, output.stdout
