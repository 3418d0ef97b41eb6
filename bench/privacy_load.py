"""Open-loop relay load with no fixed end, for the privacy benchmarks.

``python -m bench.privacy_load`` reads one JSON job line from stdin, opens
``rooms`` visitor->agent conversations on chatserver (``bench.adapters``), and
prints ``{"t0": ...}`` once message 0 is due. From then on message ``i`` is due
at ``t0 + i/rate`` (open loop, as in ``bench.loadgen``), until a line arrives on
stdin (or stdin closes, or ``max_seconds`` pass). It then waits up to ``drain``
seconds for outstanding acks and deliveries, writes the per-message timestamps
(send, ack, delivery; ``time.perf_counter``, which is CLOCK_MONOTONIC and so
comparable with the driver's) as raw doubles into ``out_dir``, and prints a
final JSON line. The driver cuts that timeline into windows of its choosing
(before, during and after an export loop or a retention sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from array import array
from pathlib import Path
from typing import Any

from bench import clients
from bench.adapters import ChatserverAdapter
from bench.loadgen import StepStats
from bench.servers import raise_nofile

perf = time.perf_counter


def log(msg: str) -> None:
    print(f"[privacy_load] {msg}", file=sys.stderr, flush=True)


class _SetupSink:
    def on_receive(self, i: int) -> None: ...
    def on_ack(self, i: int) -> None: ...
    def on_error(self, code: str, message: str) -> None: ...
    def on_other(self, what: str) -> None: ...


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """A daemon thread: the first line on stdin (or EOF) asks the sender to stop."""

    def read() -> None:
        with contextlib.suppress(Exception):
            sys.stdin.readline()
        with contextlib.suppress(RuntimeError):  # the loop may be gone already
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read, daemon=True, name="stdin-stop").start()


def _outstanding(stats: StepStats, n: int) -> int:
    return stats.ack[:n].count(0.0) + stats.recv[:n].count(0.0)


async def run(job: dict[str, Any]) -> dict[str, Any]:
    rate = float(job["rate"])
    n_max = int(rate * float(job["max_seconds"]))
    adapter = ChatserverAdapter(
        int(job["port"]), int(job["rooms"]), 0, _SetupSink(), job["options"]
    )
    opened = perf()
    await asyncio.wait_for(adapter.open(), 60)
    setup_s = perf() - opened
    stats = StepStats(rate, 0, n_max, perf() + 0.05, acks=True)
    adapter.sink = stats
    stop = asyncio.Event()
    _watch_stdin(asyncio.get_running_loop(), stop)
    sys.stdout.write(json.dumps({"t0": stats.t0, "setup_s": setup_s}) + "\n")
    sys.stdout.flush()

    spin = bool(job.get("spin"))
    t0, sent, rooms, send = stats.t0, stats.sent, adapter.rooms, adapter.send
    i = 0
    try:
        while i < n_max and not stop.is_set():
            now = perf()
            due = min(n_max, int((now - t0) * rate) + 1)
            while i < due:
                send(i % rooms, i)
                sent[i] = now
                i += 1
            delay = t0 + i / rate - perf()
            if spin and delay < 0.0015:
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(max(delay, 0.001))
        n_sent = i
        stopped = perf()
        # Poll for the stragglers: acks and deliveries of everything sent, or the deadline.
        for _ in range(int(float(job.get("drain", 10.0)) / 0.1)):
            if not _outstanding(stats, n_sent):
                break
            await asyncio.sleep(0.1)
        closed = adapter.closed_count()
        close_infos = sorted({c.close_info for c in adapter.conns() if c.closed})
    finally:
        await adapter.close()

    return {
        "stamps": {name: getattr(stats, name)[:n_sent] for name in ("sent", "ack", "recv")},
        "t0": t0,
        "rate": rate,
        "n_sent": n_sent,
        "stopped": stopped,
        "errors": dict(stats.errors),
        "error_samples": stats.error_samples,
        "other": dict(stats.other),
        "dups": stats.dups,
        "stray": stats.stray,
        "order_violations": adapter.order_violations,
        "closed_sockets": closed,
        "close_infos": close_infos[:5],
        "client": clients.client_name(),
        "loadgen_pid": os.getpid(),
    }


def load_stamps(path: str) -> array[float]:
    stamps = array("d")
    with open(path, "rb") as fh:
        stamps.frombytes(fh.read())
    return stamps


def main() -> None:
    job = json.loads(sys.stdin.readline())
    raise_nofile()
    if job.get("client") == "websockets":
        clients.use_picows = False
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(run(job))
    out = Path(job["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    result["files"] = {}
    for name, stamps in result.pop("stamps").items():
        path = out / f"{name}.f64"
        with open(path, "wb") as fh:
            stamps.tofile(fh)
        result["files"][name] = str(path)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
