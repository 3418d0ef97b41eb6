"""Open-loop load generator, run as its own (pinned) process.

``python -m bench.loadgen`` reads a JSON job from stdin and writes one JSON
result to stdout; progress goes to stderr. Two kinds of job:

* ``load``: for each offered rate, open fresh rooms, send message ``i`` at the
  fixed time ``t0 + i/rate`` whether or not anything came back, and time each
  delivery from that scheduled time (so a stalled server cannot slow the
  generator down and hide its own stall: no coordinated omission).
* ``idle``: open N sockets that do their handshake and then sit still, and
  read the server's RSS before and after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from array import array
from collections import Counter
from typing import Any

import psutil

from bench import clients
from bench.adapters import ADAPTERS, Adapter
from bench.servers import raise_nofile

perf = time.perf_counter


def log(msg: str) -> None:
    print(f"[loadgen] {msg}", file=sys.stderr, flush=True)


class StepStats:
    """Per-message timestamps of one step, indexed by message number ``i``.

    Messages ``0 .. n_warm-1`` warm the path up and are not measured; the
    measured window is the span of scheduled times of the rest.
    """

    def __init__(self, rate: float, n_warm: int, n_meas: int, t0: float, acks: bool) -> None:
        self.rate = rate
        self.n_warm = n_warm
        self.n_meas = n_meas
        self.n_total = n_warm + n_meas
        self.t0 = t0
        self.window_start = t0 + n_warm / rate
        self.window_end = t0 + self.n_total / rate
        zeros = bytes(8 * self.n_total)
        self.sent = array("d", zeros)
        self.recv = array("d", zeros)
        self.ack = array("d", zeros)
        self.recv_in_window = 0
        self.dups = 0
        self.stray = 0
        self.errors: Counter[str] = Counter()
        self.error_samples: dict[str, str] = {}
        self.other: Counter[str] = Counter()
        self.pending = n_meas * (2 if acks else 1)
        self.done = asyncio.Event()
        if self.pending == 0:
            self.done.set()

    def _settle(self, i: int) -> None:
        if i >= self.n_warm:
            self.pending -= 1
            if self.pending == 0:
                self.done.set()

    def on_receive(self, i: int) -> None:
        now = perf()
        if not 0 <= i < self.n_total:
            self.stray += 1
            return
        if self.recv[i]:
            self.dups += 1
            return
        self.recv[i] = now
        if self.window_start <= now < self.window_end:
            self.recv_in_window += 1
        self._settle(i)

    def on_ack(self, i: int) -> None:
        now = perf()
        if not 0 <= i < self.n_total or self.ack[i]:
            self.stray += 1
            return
        self.ack[i] = now
        self._settle(i)

    def on_error(self, code: str, message: str) -> None:
        self.errors[code] += 1
        self.error_samples.setdefault(code, message[:200])

    def on_other(self, what: str) -> None:
        self.other[what] += 1

    def latencies(self, stamps: array[float]) -> tuple[list[float], int]:
        """Sorted delays in ms from scheduled time, and how many never came."""
        out: list[float] = []
        missing = 0
        t0, rate = self.t0, self.rate
        for i in range(self.n_warm, self.n_total):
            t = stamps[i]
            if t:
                out.append((t - (t0 + i / rate)) * 1000.0)
            else:
                missing += 1
        out.sort()
        return out, missing


def pct(sorted_ms: list[float], q: float) -> float | None:
    if not sorted_ms:
        return None
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def server_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def rss_bytes(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


async def sleep_until(t: float) -> None:
    delay = t - perf()
    if delay > 0:
        await asyncio.sleep(delay)


async def send_loop(adapter: Adapter, stats: StepStats, spin: bool) -> None:
    """Send each message at (or as soon as possible after) its scheduled time.

    Loop timers have 1 ms granularity (uvloop truncates shorter delays to 0), so
    with ``spin`` (the generator has a core of its own) a wait under 1.5 ms
    yields with ``sleep(0)``, which still polls the sockets: sends leave on time
    and receives are stamped promptly. Without it, the generator sleeps at least
    1 ms and sends what is due in bursts; that delay is inside the measured
    latency and shows in the ``gen lag`` column either way.
    """
    rooms = adapter.rooms
    rate = stats.rate
    t0 = stats.t0
    n = stats.n_total
    sent = stats.sent
    send = adapter.send
    i = 0
    while i < n:
        now = perf()
        due = min(n, int((now - t0) * rate) + 1)
        while i < due:
            send(i % rooms, i)
            sent[i] = now
            i += 1
        if i < n:
            delay = t0 + i / rate - perf()
            if spin and delay < 0.0015:
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(max(delay, 0.001))


def cores_busy() -> list[float]:
    """Seconds each core was busy since boot (guest time is inside user already)."""
    fields = ("user", "nice", "system", "irq", "softirq", "steal")
    return [sum(getattr(t, f, 0.0) for f in fields) for t in psutil.cpu_times(percpu=True)]


def machine_busy_seconds() -> float:
    # Process time only: softirq is mostly the test's own loopback traffic.
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system)


def find_watched(spec: dict[str, Any]) -> list[psutil.Process]:
    """Processes named ``spec["name"]``; if ``cmdline_has``/``cmdline_lacks`` are given,
    only those whose command line holds one of the former or none of the latter (so
    PostgreSQL's own background processes and the backends of one database, not the
    backends of other databases)."""
    has = spec.get("cmdline_has") or []
    lacks = spec.get("cmdline_lacks") or []
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] != spec["name"]:
            continue
        if has or lacks:
            cmd = " ".join(p.info["cmdline"] or ())
            if not (any(h in cmd for h in has) or (lacks and not any(x in cmd for x in lacks))):
                continue
        found.append(p)
    return found


def _watched_cpu(
    before: dict[str, list[psutil.Process]],
    cpu0: dict[str, dict[int, float]],
    since: float,
    spec: dict[str, dict[str, Any]],
) -> dict[str, float]:
    """CPU seconds of each watched group since ``cpu0``; processes that appeared after
    the first look and started after ``since`` (wall clock) count whole."""
    out = {}
    for label, procs in before.items():
        total = cpu_seconds(procs) - sum(cpu0[label].values())
        for p in find_watched(spec[label]):
            if p.pid in cpu0[label]:
                continue
            with contextlib.suppress(psutil.Error):
                if p.create_time() >= since:
                    total += cpu_seconds([p])
        out[label] = max(0.0, total)
    return out


async def sample_window(
    stats: StepStats, procs: list[psutil.Process], job: dict[str, Any]
) -> dict[str, Any]:
    me = psutil.Process()
    watch: dict[str, dict[str, Any]] = job.get("watch") or {}
    # Found during the warm-up, in a thread: scanning every process takes a while.
    watched = {label: await asyncio.to_thread(find_watched, spec) for label, spec in watch.items()}
    await sleep_until(stats.window_start)
    cpu0, gen0, all0, w0 = cpu_seconds(procs), cpu_seconds([me]), machine_busy_seconds(), perf()
    cores0 = cores_busy()
    wcpu0 = {label: {p.pid: cpu_seconds([p]) for p in ps} for label, ps in watched.items()}
    since = time.time()
    await sleep_until(stats.window_end)
    cpu1, gen1, all1, w1 = cpu_seconds(procs), cpu_seconds([me]), machine_busy_seconds(), perf()
    cores1 = cores_busy()
    wall = max(1e-9, w1 - w0)
    # Whatever else ran on the machine (other test runs, services) competes
    # with the measured pair for the two cores; it is reported, not hidden.
    other = (all1 - all0) - (cpu1 - cpu0) - (gen1 - gen0)
    out: dict[str, Any] = {
        "server_cpu": cpu1 - cpu0,
        "gen_cpu_pct": 100.0 * (gen1 - gen0) / wall,
        "other_cpu_pct": max(0.0, 100.0 * other / wall),
        "rss": float(rss_bytes(procs)),
        # Everything each core ran, softirq (the loopback traffic) included.
        "cores_busy_pct": [100.0 * (b - a) / wall for a, b in zip(cores0, cores1, strict=True)],
    }
    if watch:
        used = await asyncio.to_thread(_watched_cpu, watched, wcpu0, since, watch)
        out["watched_cpu_pct"] = {label: 100.0 * s / wall for label, s in used.items()}
    if job.get("spread"):
        out["holders"] = await asyncio.to_thread(socket_holders, procs, job["port"])
    return out


def socket_holders(procs: list[psutil.Process], port: int) -> dict[int, int]:
    """Which server process holds each established socket on the server's port:
    {client's port: server pid}."""
    out = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            for c in p.net_connections(kind="tcp"):
                ours = c.laddr and c.laddr.port == port and c.raddr
                if ours and c.status == psutil.CONN_ESTABLISHED:
                    out[c.raddr.port] = p.pid
    return out


def spread(adapter: Adapter, holders: dict[int, int]) -> dict[str, Any]:
    """Sockets per server process, and how many rooms have their sender and receiver
    on different processes (their relay crosses the broker)."""
    per_proc = Counter(holders.values())
    pairs = [
        (holders.get(s.local_port), holders.get(r.local_port))
        for s, r in zip(adapter.senders, adapter.receivers, strict=True)
    ]
    known = [(a, b) for a, b in pairs if a is not None and b is not None]
    return {
        "sockets_per_proc": {str(pid): n for pid, n in per_proc.items()},
        "rooms_known": len(known),
        "rooms_crossing": sum(1 for a, b in known if a != b),
    }


def scrape_metrics(port: int) -> dict[str, float]:
    """chatserver's commit histograms (sums and counts) from ``/metrics``; {} if absent."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode(errors="replace")
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name.startswith("chatserver_commit_") and name.endswith(("_sum", "_count")):
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


async def quiesce(procs: list[psutil.Process], max_wait: float) -> float:
    """Wait until the server stops burning CPU on a backlog from the last step."""
    start = perf()
    last = cpu_seconds(procs)
    while perf() - start < max_wait:
        await asyncio.sleep(0.2)
        now = cpu_seconds(procs)
        if now - last < 0.2 * 0.1:  # under 10 % of a core
            break
        last = now
    return perf() - start


async def run_step(
    job: dict[str, Any], step: int, rate: float, procs: list[psutil.Process]
) -> dict[str, Any]:
    cls = ADAPTERS[job["target"]]
    duration = float(job["duration"])
    warmup = float(job["warmup"])
    drain = float(job["drain"])
    result: dict[str, Any] = {"offered": rate}

    class SetupSink:
        # Frames that reach a fast path while other rooms are still opening
        # belong to no step; the step's own stats replace this sink below.
        def on_receive(self, i: int) -> None: ...
        def on_ack(self, i: int) -> None: ...
        def on_error(self, code: str, message: str) -> None: ...
        def on_other(self, what: str) -> None: ...

    # With several server processes, /metrics would be one process's only.
    scrape = job["target"] == "chatserver" and job.get("scrape", True)
    # A blocking HTTP GET in a thread, outside the timed part of the step.
    before = await asyncio.to_thread(scrape_metrics, job["port"]) if scrape else {}
    adapter = cls(job["port"], int(job["rooms"]), step, SetupSink(), job.get("options", {}))
    opened = perf()
    try:
        await asyncio.wait_for(adapter.open(), 60)
    except Exception as exc:
        await adapter.close()
        result["failed"] = f"setup: {exc!r}"[:1000]
        return result
    result["setup_s"] = perf() - opened
    # Setup traffic must not count; the fast path writes straight into stats.
    stats = StepStats(
        rate, int(rate * warmup), max(1, int(rate * duration)), perf() + 0.05, cls.has_acks
    )
    adapter.sink = stats
    try:
        sampler = asyncio.create_task(sample_window(stats, procs, job))
        await send_loop(adapter, stats, bool(job.get("spin")))
        window = await sampler
        if "holders" in window:
            result.update(spread(adapter, window.pop("holders")))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stats.done.wait(), drain)
        closed = adapter.closed_count()
        close_infos = sorted({c.close_info for c in adapter.conns() if c.closed})
    finally:
        await adapter.close()
    waited = await quiesce(procs, max_wait=15.0)
    if scrape:
        after = await asyncio.to_thread(scrape_metrics, job["port"])
        result["commit_metrics"] = {k: after[k] - before.get(k, 0.0) for k in after}

    lat, lost = stats.latencies(stats.recv)
    span = stats.window_end - stats.window_start
    result.update(
        sent=stats.n_meas,
        delivered=stats.recv_in_window / span,
        p50=pct(lat, 0.50),
        p99=pct(lat, 0.99),
        max=lat[-1] if lat else None,
        lost=lost,
        dups=stats.dups,
        stray=stats.stray,
        errors=dict(stats.errors),
        error_samples=stats.error_samples,
        other=dict(stats.other),
        cpu_per_1k=(
            window["server_cpu"] / stats.recv_in_window * 1000.0 if stats.recv_in_window else None
        ),
        server_cpu_pct=100.0 * window["server_cpu"] / span,
        rss_mb=window["rss"] / 2**20,
        gen_cpu_pct=window["gen_cpu_pct"],
        other_cpu_pct=window["other_cpu_pct"],
        closed_sockets=closed,
        close_infos=close_infos[:5],
        quiesce_s=waited,
    )
    for key in ("watched_cpu_pct", "cores_busy_pct"):
        if key in window:
            result[key] = window[key]
    gen_lag = sorted(
        (stats.sent[i] - (stats.t0 + i / rate)) * 1000.0 for i in range(stats.n_warm, stats.n_total)
    )
    result["gen_lag_p99"] = pct(gen_lag, 0.99)
    if cls.has_acks:
        ack_lat, ack_missing = stats.latencies(stats.ack)
        in_window = sum(1 for t in stats.ack if stats.window_start <= t < stats.window_end)
        result.update(
            acked=in_window / span,
            ack_p50=pct(ack_lat, 0.50),
            ack_p99=pct(ack_lat, 0.99),
            ack_max=ack_lat[-1] if ack_lat else None,
            ack_missing=ack_missing,
        )
    order = getattr(adapter, "order_violations", 0)
    if order:
        result["order_violations"] = order
    return result


async def run_load(job: dict[str, Any]) -> dict[str, Any]:
    procs = server_tree(int(job["server_pid"]))
    steps = []
    for step, rate in enumerate(job["rates"]):
        log(f"{job['target']}: {rate:g} msg/s for {job['duration']:g} s")
        res = await run_step(job, step, float(rate), procs)
        steps.append(res)
        if "failed" in res:
            log(f"{job['target']}: step failed: {res['failed']}")
            break
    return {"steps": steps, "client": clients.client_name()}


async def run_idle(job: dict[str, Any]) -> dict[str, Any]:
    """Open N idle sockets the way a browser would (offering permessage-deflate)."""
    from websockets.asyncio.client import connect

    procs = server_tree(int(job["server_pid"]))
    target = job["target"]
    count = int(job["count"])
    port = int(job["port"])
    before = rss_bytes(procs)
    conns: list[Any] = []
    failures: Counter[str] = Counter()
    gate = asyncio.Semaphore(100)

    async def one(k: int) -> None:
        async with gate:
            if target == "chatserver":
                url = f"ws://127.0.0.1:{port}/ws/visitor"
                headers = {"Origin": job["options"]["origin"]}
            else:
                url = f"ws://127.0.0.1:{port}/room/idle-{k}"
                headers = {}
            try:
                ws = await connect(
                    url,
                    additional_headers=headers,
                    open_timeout=15,
                    ping_interval=None,
                    close_timeout=2,
                )
            except Exception as exc:
                failures[type(exc).__name__] += 1
                return
            conns.append(ws)
            try:
                if target == "chatserver":
                    await ws.send('{"type":"hello"}')
                    want = '"welcome"'
                else:
                    want = '"joined"'
                for _ in range(20):
                    frame = await asyncio.wait_for(ws.recv(), 15)
                    if want in frame:
                        break
                else:
                    failures["no-" + want.strip('"')] += 1
            except Exception as exc:
                failures[type(exc).__name__] += 1

    started = perf()
    await asyncio.wait_for(asyncio.gather(*(one(k) for k in range(count))), 300)
    elapsed = perf() - started
    # RSS is read after the last handshake; give the allocator a moment to show
    # the final size, bounded by a few samples.
    after = rss_bytes(procs)
    for _ in range(10):
        await asyncio.sleep(0.1)
        now = rss_bytes(procs)
        if abs(now - after) < 0.005 * after:
            after = now
            break
        after = now
    ext = ""
    for ws in conns:
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "") if ws.response else ""
        if ext:
            break
    open_count = sum(1 for ws in conns if ws.state.name == "OPEN")
    await asyncio.wait_for(
        asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True), 60
    )
    return {
        "count": count,
        "open": open_count,
        "failures": dict(failures),
        "rss_before_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "kib_per_socket": (after - before) / 1024 / max(1, open_count),
        "deflate": ext,
        "connect_s": elapsed,
    }


def main() -> None:
    job = json.loads(sys.stdin.read())
    raise_nofile()
    if job.get("client") == "websockets":
        clients.use_picows = False
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    coro = run_load(job) if job["mode"] == "load" else run_idle(job)
    result = runner(coro)
    result["loadgen_pid"] = os.getpid()
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
