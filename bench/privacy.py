"""``python -m bench.privacy``: the cost of privacy operations on a live chatserver.

Two benchmarks, each against a real ``python -m chatserver serve`` process on a
SQLite file seeded beforehand (``bench.privacy_seed``), through the HTTP API:

1. Export: wall time of ``GET /api/v1/subjects/{id}/export?format=json|zip`` for
   people with 1,000 / 10,000 / 50,000 messages; then the relay's ack latency
   at a moderate rate with and without exports looping in the background.
2. Retention: ``POST /api/v1/retention/runs {"dry_run": false}`` over a million
   expired anonymous messages while the relay runs at 2,000 msg/s: the sweep's
   duration and rows/s, and the ack latency before, during and after it, for
   several ``CHATSERVER_RETENTION_BATCH`` values.

Live load comes from ``bench.privacy_load`` (open loop, as ``bench.loadgen``),
pinned to another core than the server. Every child is killed on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import clients, privacy_seed, servers
from bench.privacy_load import load_stamps
from bench.report import num, table

perf = time.perf_counter

FULL = {
    "sizes": "1000,10000,50000",
    "reps": 5,
    "live_size": 10000,
    "export_rate": 1000.0,
    "window": 8.0,
    "conversations": 1000,
    "per_conversation": 1000,
    "batches": "500,200,2000",
    "sweep_rate": 2000.0,
    "baseline": 15.0,
    "cut": 40.0,
    "rooms": 20,
}
QUICK = {
    "sizes": "1000,10000",
    "reps": 3,
    "live_size": 10000,
    "export_rate": 1000.0,
    "window": 3.0,
    "conversations": 100,
    "per_conversation": 1000,
    "batches": "500",
    "sweep_rate": 2000.0,
    "baseline": 4.0,
    "cut": 0.0,
    "rooms": 10,
}
WARMUP = 2.0  # seconds of load before any window, not measured
AFTER = 3.0  # seconds measured after the sweep ends
EXPORT_TIMEOUT = 180.0
SWEEP_TIMEOUT = 900.0

EXPORT_COLUMNS = (
    "messages",
    "format",
    "runs",
    "median s",
    "max s",
    "MB",
    "msg/s (median)",
    "other CPU %",
)
LIVE_COLUMNS = (
    "background",
    "exports",
    "export median s",
    "ack p50",
    "ack p99",
    "ack max",
    "p99 ratio",
    "deliv p99",
    "server CPU %",
    "other CPU %",
    "gen lag p99",
)
SWEEP_COLUMNS = (
    "batch",
    "swept",
    "messages",
    "sweep s",
    "final s",
    "rows/s",
    "p50 before",
    "p99 before",
    "p50 during",
    "p99 during",
    "max during",
    "p99 ratio",
    "max final",
    "p99 after",
    "server CPU %",
    "other CPU % before | during",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.privacy", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes, about a minute")
    p.add_argument(
        "--only", choices=("export", "retention"), help="run one of the two benchmarks only"
    )
    p.add_argument("--sizes", help=f"export sizes in messages (default {FULL['sizes']})")
    p.add_argument("--reps", type=int, help=f"exports per size and format (default {FULL['reps']})")
    p.add_argument("--live-size", type=int, help="messages of the person exported under live load")
    p.add_argument("--export-rate", type=float, help="relay msg/s during the export test")
    p.add_argument("--window", type=float, help="measured seconds per phase of the export test")
    p.add_argument("--conversations", type=int, help="expired anonymous conversations")
    p.add_argument("--per-conversation", type=int, help="messages in each")
    p.add_argument("--batches", help="CHATSERVER_RETENTION_BATCH values, comma separated")
    p.add_argument("--sweep-rate", type=float, help="relay msg/s during the sweep")
    p.add_argument("--baseline", type=float, help="measured seconds before the sweep")
    p.add_argument(
        "--cut",
        type=float,
        help="seconds after which the sweeps of the 2nd and later batch sizes are cut "
        f"(0: sweep everything; default {FULL['cut']:g})",
    )
    p.add_argument("--rooms", type=int, help="visitor->agent conversations of the relay load")
    p.add_argument(
        "--sync",
        default="NORMAL",
        type=str.upper,
        choices=("NORMAL", "FULL"),
        help="CHATSERVER_SQLITE_SYNCHRONOUS (default %(default)s, as in python -m bench)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    p.add_argument("--json", type=Path, help="also write the raw results to this file")
    args = p.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    try:
        args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
        args.batch_list = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        p.error("--sizes and --batches are comma separated integers")
    if not args.size_list or min(args.size_list) <= 0 or not args.batch_list:
        p.error("--sizes and --batches need positive values")
    if min(args.batch_list) <= 0 or args.reps <= 0 or args.rooms <= 0:
        p.error("--batches, --reps and --rooms must be positive")
    if args.live_size not in args.size_list:
        args.size_list.append(args.live_size)
    return args


# -------------------------------------------------------------------- statistics


def expired_remaining(db: Path, older_than_days: int = 30) -> int:
    """Messages still in conversations idle for longer than the rule (a snapshot, read-only)."""
    cutoff = time.time_ns() // 1000 - older_than_days * privacy_seed.DAY_US
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE c.updated_at < ?",
            (cutoff,),
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()


def wall_seconds(rfc3339: str) -> float:
    """``2026-11-25T10:04:05.123456Z`` as seconds since the epoch."""
    moment = datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return moment.timestamp()


def pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def median(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


@dataclass
class Timeline:
    """Per-message stamps of one relay run: message ``i`` was due at ``t0 + i/rate``."""

    t0: float
    rate: float
    sent: array[float]
    ack: array[float]
    recv: array[float]

    def span(self, start: float, end: float) -> range:
        lo = max(0, int((start - self.t0) * self.rate) + 1)
        hi = min(len(self.ack), int((end - self.t0) * self.rate) + 1)
        return range(lo, max(lo, hi))

    def window(self, start: float, end: float) -> dict[str, Any]:
        """Latencies (ms from due time) of the messages due in ``[start, end)``."""
        t0, rate = self.t0, self.rate
        acks: list[float] = []
        recvs: list[float] = []
        lags: list[float] = []
        missing = 0
        idx = self.span(start, end)
        for i in idx:
            due = t0 + i / rate
            a, r = self.ack[i], self.recv[i]
            if a:
                acks.append((a - due) * 1000.0)
            else:
                missing += 1
            if r:
                recvs.append((r - due) * 1000.0)
            lags.append((self.sent[i] - due) * 1000.0)
        acks.sort()
        recvs.sort()
        lags.sort()
        return {
            "messages": len(idx),
            "ack_p50": pct(acks, 0.5),
            "ack_p99": pct(acks, 0.99),
            "ack_max": acks[-1] if acks else None,
            "recv_p99": pct(recvs, 0.99),
            "missing": missing,
            "gen_lag_p99": pct(lags, 0.99),
        }

    def worst_second(self, start: float, end: float) -> tuple[float, float] | None:
        """(offset from ``start`` in s, ack p99 ms) of the 1-second bucket with the worst p99."""
        worst: tuple[float, float] | None = None
        t = start
        while t < end:
            w = self.window(t, min(end, t + 1.0))
            if w["ack_p99"] is not None and (worst is None or w["ack_p99"] > worst[1]):
                worst = (t - start, w["ack_p99"])
            t += 1.0
        return worst


# -------------------------------------------------------------------- processes


def cpu_of(pid: int) -> float:
    import psutil

    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for p in (root, *root.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
    return total


@dataclass
class LoadRun:
    proc: subprocess.Popen[bytes]
    lines: queue.Queue[bytes | None]
    out_dir: Path
    t0: float = 0.0


def self_cpu() -> float:
    """This driver's own CPU seconds (its children, the server among them, not included)."""
    t = os.times()
    return t.user + t.system


def core_busy() -> list[float]:
    """Busy CPU seconds (user+nice+system) of each core since boot."""
    import psutil

    return [t.user + t.nice + t.system for t in psutil.cpu_times(percpu=True)]


@dataclass
class Marks:
    """Window boundaries, with CPU time of the server, the load generator, this driver and
    each core at each, so a window's report says who else was using the machine."""

    server_pid: int
    loadgen_pid: int = 0
    points: dict[str, tuple[float, float, float, list[float]]] = field(default_factory=dict)

    def mark(self, name: str) -> float:
        ours = self_cpu() + (cpu_of(self.loadgen_pid) if self.loadgen_pid else 0.0)
        self.points[name] = (perf(), cpu_of(self.server_pid), ours, core_busy())
        return self.points[name][0]

    def cpu_pct(self, a: str, b: str) -> float | None:
        """The server's CPU between two marks, in % of one core."""
        if a not in self.points or b not in self.points:
            return None
        (t0, c0, _, _), (t1, c1, _, _) = self.points[a], self.points[b]
        return 100.0 * (c1 - c0) / max(1e-9, t1 - t0)

    def other_pct(self, a: str, b: str, pinned: bool) -> str:
        """CPU used by other processes between two marks, in % of a core: ``core0/core1``
        when pinned (server's core / generator's core), else the machine's total."""
        if a not in self.points or b not in self.points:
            return "-"
        (t0, s0, o0, c0), (t1, s1, o1, c1) = self.points[a], self.points[b]
        wall = max(1e-9, t1 - t0)
        busy = [y - x for x, y in zip(c0, c1, strict=True)]
        server, ours = s1 - s0, o1 - o0
        if pinned and len(busy) >= 2:
            core0 = max(0.0, busy[int(servers.SERVER_CORE)] - server) / wall * 100
            core1 = max(0.0, busy[int(servers.LOADGEN_CORE)] - ours) / wall * 100
            return f"{core0:.0f}/{core1:.0f}"
        return f"{max(0.0, sum(busy) - server - ours) / wall * 100:.0f}"


class Runner:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.pin = servers.pinning_available() and not args.no_pin
        self.children: list[subprocess.Popen[bytes]] = []
        self.notes: list[str] = []
        self.results: dict[str, Any] = {}
        self.problems: dict[str, list[str]] = {}

    def log(self, msg: str) -> None:
        print(f"[bench.privacy] {msg}", file=sys.stderr, flush=True)

    # -- server ----------------------------------------------------------------

    def env(self, data: Path, **extra: str) -> dict[str, str]:
        env = servers.chatserver_env(data, self.args.sync)
        # Only the benchmark's own API call sweeps.
        env["CHATSERVER_RETENTION_INTERVAL"] = "off"
        env.update(extra)
        return env

    def token(self, env: dict[str, str], role: str) -> str:
        argv = [servers.PYTHON, "-m", "chatserver", "token", "create", "--role", role]
        res = subprocess.run(
            argv, env=env, cwd=servers.ROOT, capture_output=True, text=True, timeout=60
        )
        token = res.stdout.strip()
        if res.returncode != 0 or not token or len(token.split()) != 1:
            raise RuntimeError(f"token create --role {role} failed: {res.stderr.strip()[-800:]}")
        return token

    def start_server(self, env: dict[str, str]) -> servers.Server:
        server = servers.start("chatserver", self.workdir, self.pin, env)
        self.children.append(server.proc)
        server.wait_ready()
        return server

    def stop_server(self, server: servers.Server, label: str) -> None:
        server.stop()
        problems = server.log_problems()
        if problems:
            self.problems.setdefault(label, []).extend(problems)

    # -- HTTP ------------------------------------------------------------------

    def request(
        self,
        server: servers.Server,
        method: str,
        path: str,
        token: str,
        body: dict[str, Any] | None = None,
        timeout: float = EXPORT_TIMEOUT,
    ) -> tuple[int, bytes, float]:
        """(status, body, wall seconds until the whole response was read)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{server.port}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        started = perf()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            status = exc.code
        return status, payload, perf() - started

    def export(
        self, server: servers.Server, token: str, subject: str, fmt: str
    ) -> tuple[float, int]:
        path = f"/api/v1/subjects/{subject}/export?format={fmt}"
        status, payload, seconds = self.request(server, "GET", path, token)
        if status != 200:
            raise RuntimeError(f"export {fmt} answered {status}: {payload[:300]!r}")
        return seconds, len(payload)

    # -- relay load --------------------------------------------------------------

    def start_load(
        self, server: servers.Server, agent_token: str, rate: float, max_seconds: float, tag: str
    ) -> LoadRun:
        proc = servers.spawn_load("bench.privacy_load", self.pin)
        self.children.append(proc)
        lines: queue.Queue[bytes | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        out_dir = self.workdir / f"load-{tag}"
        job = {
            "port": server.port,
            "rate": rate,
            "rooms": self.args.rooms,
            "max_seconds": max_seconds,
            "drain": 10.0,
            "options": {"origin": servers.ORIGIN, "token": agent_token},
            "spin": self.pin,
            "client": "auto",
            "out_dir": str(out_dir),
        }
        assert proc.stdin is not None
        proc.stdin.write((json.dumps(job) + "\n").encode())
        proc.stdin.flush()
        first = self._line(lines, 90)
        run = LoadRun(proc, lines, out_dir, t0=float(json.loads(first)["t0"]))
        return run

    @staticmethod
    def _line(lines: queue.Queue[bytes | None], timeout: float) -> bytes:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"load generator said nothing within {timeout:.0f} s") from None
        if line is None:
            raise RuntimeError("load generator exited early (see its stderr above)")
        return line

    def stop_load(self, run: LoadRun) -> tuple[Timeline, dict[str, Any]]:
        assert run.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            run.proc.stdin.write(b"stop\n")
            run.proc.stdin.flush()
        try:
            result: dict[str, Any] = json.loads(self._line(run.lines, 60))
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.proc.wait(timeout=10)
            servers.stop_process(run.proc)
        f = result["files"]
        timeline = Timeline(
            result["t0"],
            result["rate"],
            load_stamps(f["sent"]),
            load_stamps(f["ack"]),
            load_stamps(f["recv"]),
        )
        shutil.rmtree(run.out_dir, ignore_errors=True)
        for key, label in (
            ("errors", "error frames"),
            ("dups", "duplicate deliveries"),
            ("stray", "stray frames"),
            ("order_violations", "seq order violations"),
            ("closed_sockets", "sockets closed by the server"),
        ):
            if result.get(key):
                self.notes.append(f"relay load: {label}: {result[key]}")
        if result.get("error_samples"):
            self.notes.append(f"relay load: error samples: {result['error_samples']}")
        return timeline, result

    # -- 1. export -----------------------------------------------------------------

    def run_export(self) -> None:
        a = self.args
        data = self.workdir / "export-data"
        self.log(f"export: seeding people with {', '.join(f'{s:,}' for s in a.size_list)} messages")
        started = perf()
        subjects = privacy_seed.seed_export_subjects(data / "chat.db", sorted(a.size_list))
        self.notes.append(
            f"export: seeded {sum(s.messages for s in subjects):,} messages in "
            f"{perf() - started:.1f} s"
        )
        env = self.env(data)
        agent_token = self.token(env, "agent")
        compliance = self.token(env, "compliance")
        server = self.start_server(env)
        try:
            # First calls import the export code and templates; not measured.
            small = subjects[0].subject_id
            status, payload, _ = self.request(
                server, "GET", f"/api/v1/subjects/{small}/export?format=json", compliance
            )
            if status != 200:
                raise RuntimeError(f"export answered {status}: {payload[:300]!r}")
            self.export(server, compliance, small, "zip")
            rows = []
            raw: list[dict[str, Any]] = []
            marks = Marks(server.pid)
            for s in subjects:
                # The document really holds every message (notes included by default).
                _, payload, _ = self.request(
                    server, "GET", f"/api/v1/subjects/{s.subject_id}/export?format=json", compliance
                )
                doc = json.loads(payload)
                got = sum(len(c["messages"]) for c in doc["conversations"])
                if got != s.messages:
                    self.notes.append(f"export of {s.messages:,}: document has {got:,} messages")
                for fmt in ("json", "zip"):
                    self.log(f"export: {s.messages:,} messages as {fmt} x {a.reps}")
                    times, sizes = [], []
                    marks.mark("start")
                    for _ in range(a.reps):
                        seconds, size = self.export(server, compliance, s.subject_id, fmt)
                        times.append(seconds)
                        sizes.append(size)
                    marks.mark("end")
                    med = median(times)
                    raw.append(
                        {"messages": s.messages, "format": fmt, "times": times, "bytes": sizes}
                    )
                    rows.append(
                        [
                            num(s.messages),
                            fmt,
                            num(len(times)),
                            num(med, 3),
                            num(max(times), 3),
                            num(sizes[-1] / 1e6, 1),
                            num(s.messages / med if med else None, 0),
                            marks.other_pct("start", "end", self.pin),
                        ]
                    )
            self.results["export"] = {"rows": rows, "raw": raw}
            live = next(s for s in subjects if s.messages == a.live_size)
            self.run_export_live(server, agent_token, compliance, live.subject_id)
        finally:
            self.stop_server(server, "export")
            shutil.rmtree(data, ignore_errors=True)

    def run_export_live(
        self, server: servers.Server, agent_token: str, compliance: str, subject: str
    ) -> None:
        a = self.args
        phases = [("none", None), ("json", "json"), ("zip", "zip"), ("none (again)", None)]
        total = WARMUP + len(phases) * (a.window + 0.5) + 120
        self.log(
            f"export under load: {a.export_rate:g} msg/s, phases of {a.window:g} s: "
            + ", ".join(p for p, _ in phases)
        )
        run = self.start_load(server, agent_token, a.export_rate, total, "export")
        marks = Marks(server.pid, run.proc.pid)
        done: list[tuple[str, float, float, int, list[float]]] = []
        try:
            time.sleep(max(0.0, run.t0 + WARMUP - perf()))
            for name, fmt in phases:
                start = marks.mark(f"{name}:start")
                times: list[float] = []
                if fmt is None:
                    time.sleep(a.window)
                    end = marks.mark(f"{name}:end")
                else:
                    stop = threading.Event()
                    failures: list[str] = []
                    worker = threading.Thread(
                        target=self._export_loop,
                        args=(server, compliance, subject, fmt, stop, times, failures),
                        daemon=True,
                    )
                    worker.start()
                    time.sleep(a.window)
                    stop.set()
                    end = marks.mark(f"{name}:end")
                    worker.join(EXPORT_TIMEOUT)
                    if failures:
                        self.notes.append(f"export loop {fmt}: {failures[0]}")
                    time.sleep(0.5)  # the export in flight finishes outside any window
                done.append((name, start, end, len(times), times))
        finally:
            timeline, _ = self.stop_load(run)
        rows = []
        raw = []
        base = [w for w in done if w[0].startswith("none")]
        base_all: list[float] = []
        for _, s, e, _, _ in base:
            base_all.extend(self._acks(timeline, s, e))
        base_all.sort()
        base_p99 = pct(base_all, 0.99)
        for name, start, end, count, times in done:
            w = timeline.window(start, end)
            raw.append({"phase": name, "exports": count, "times": times, **w})
            label = (
                "nothing"
                if name == "none"
                else "nothing, again"
                if name.startswith("none")
                else f"{name.upper()} export loop, {self.args.live_size:,} msgs"
            )
            ratio = w["ack_p99"] / base_p99 if base_p99 and w["ack_p99"] is not None else None
            rows.append(
                [
                    label,
                    num(count) if times else "-",
                    num(median(times), 3),
                    num(w["ack_p50"], 2),
                    num(w["ack_p99"], 2),
                    num(w["ack_max"], 1),
                    num(ratio, 2),
                    num(w["recv_p99"], 2),
                    num(marks.cpu_pct(f"{name}:start", f"{name}:end"), 0),
                    marks.other_pct(f"{name}:start", f"{name}:end", self.pin),
                    num(w["gen_lag_p99"], 2),
                ]
            )
            if w["missing"]:
                self.notes.append(f"export under load, {label}: {w['missing']} acks missing")
        self.notes.append(
            f"export under load: p99 ratio is against both 'nothing' windows pooled "
            f"(ack p99 {num(base_p99, 2)} ms)"
        )
        self.results["export_live"] = {"rows": rows, "raw": raw}

    def _export_loop(
        self,
        server: servers.Server,
        token: str,
        subject: str,
        fmt: str,
        stop: threading.Event,
        times: list[float],
        failures: list[str],
    ) -> None:
        """Export back to back until ``stop``; a failure ends the loop and is noted."""
        while not stop.is_set():
            try:
                times.append(self.export(server, token, subject, fmt)[0])
            except (OSError, RuntimeError) as exc:
                failures.append(repr(exc)[:300])
                return

    @staticmethod
    def _acks(timeline: Timeline, start: float, end: float) -> list[float]:
        out = []
        for i in timeline.span(start, end):
            if timeline.ack[i]:
                out.append((timeline.ack[i] - (timeline.t0 + i / timeline.rate)) * 1000.0)
        return out

    # -- 2. retention --------------------------------------------------------------

    def run_retention(self) -> None:
        a = self.args
        template = self.workdir / "retention-template"
        n = a.conversations * a.per_conversation
        self.log(
            f"retention: seeding {n:,} expired messages "
            f"({a.conversations:,} conversations x {a.per_conversation:,})"
        )
        started = perf()
        privacy_seed.seed_expired_anonymous(
            template / "chat.db", a.conversations, a.per_conversation
        )
        env = self.env(template)
        agent_token = self.token(env, "agent")
        compliance = self.token(env, "compliance")
        size_mb = (template / "chat.db").stat().st_size / 1e6
        self.notes.append(
            f"retention: seeded {n:,} messages in {perf() - started:.1f} s "
            f"(database {size_mb:,.0f} MB, search index built)"
        )
        rows = []
        raw = []
        for k, batch in enumerate(a.batch_list):
            # The first batch size sweeps everything; the others only the first
            # --cut seconds of their sweep, which is enough for latency and rows/s.
            cut = a.cut if k > 0 and a.cut > 0 else None
            data = self.workdir / f"retention-{batch}"
            shutil.copytree(template, data)
            try:
                row, result = self.run_sweep(data, batch, agent_token, compliance, n, cut)
            except (RuntimeError, OSError, ValueError) as exc:
                self.notes.append(f"retention batch {batch}: not measured: {exc}")
                continue
            finally:
                shutil.rmtree(data, ignore_errors=True)
            rows.append(row)
            raw.append(result)
        shutil.rmtree(template, ignore_errors=True)
        self.results["retention"] = {"rows": rows, "raw": raw}

    def run_sweep(
        self,
        data: Path,
        batch: int,
        agent_token: str,
        compliance: str,
        expected: int,
        cut: float | None,
    ) -> tuple[list[str], dict[str, Any]]:
        a = self.args
        env = self.env(
            data,
            CHATSERVER_RETENTION_ANONYMOUS="30d",
            CHATSERVER_RETENTION_BATCH=str(batch),
        )
        server = self.start_server(env)
        self.log(
            f"retention: batch {batch}, {a.sweep_rate:g} msg/s, {a.baseline:g} s before the sweep"
            + (f", sweep cut after {cut:g} s" if cut else "")
        )
        total = WARMUP + a.baseline + SWEEP_TIMEOUT + AFTER + 30
        outcome: dict[str, Any] = {}
        try:
            run = self.start_load(server, agent_token, a.sweep_rate, total, f"sweep-{batch}")
            marks = Marks(server.pid, run.proc.pid)
            try:
                time.sleep(max(0.0, run.t0 + WARMUP - perf()))
                marks.mark("before")
                time.sleep(a.baseline)

                def sweep() -> None:
                    try:
                        outcome["response"] = self.request(
                            server,
                            "POST",
                            "/api/v1/retention/runs",
                            compliance,
                            {"dry_run": False},
                            timeout=SWEEP_TIMEOUT,
                        )
                    except OSError as exc:
                        outcome["error"] = repr(exc)[:300]

                worker = threading.Thread(target=sweep, daemon=True)
                marks.mark("sweep")
                # The server reports when its batches ended (``finished_at``, wall clock).
                clock_offset = time.time() - perf()
                worker.start()
                worker.join(cut if cut else SWEEP_TIMEOUT)
                marks.mark("swept")
                if worker.is_alive() and not cut:
                    raise RuntimeError(f"the sweep did not finish within {SWEEP_TIMEOUT:.0f} s")
                complete = not worker.is_alive()
                if complete:
                    time.sleep(AFTER)
                    marks.mark("after")
                else:
                    outcome["remaining"] = expired_remaining(data / "chat.db")
            finally:
                timeline, _ = self.stop_load(run)
        finally:
            if outcome.get("remaining") is not None:
                # A cut sweep: the server dies in the middle of it, on purpose.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(server.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.proc.wait(10)
            self.stop_server(server, f"retention batch {batch}")
        p = {k: v[0] for k, v in marks.points.items()}
        swept_s = p["swept"] - p["sweep"]
        if complete:
            if "error" in outcome:
                raise RuntimeError(f"retention run failed: {outcome['error']}")
            status, payload, swept_s = outcome["response"]
            if status != 201:
                raise RuntimeError(f"retention run answered {status}: {payload[:300]!r}")
            report = json.loads(payload)
            finished = wall_seconds(report["finished_at"]) - clock_offset
            p["finished"] = min(max(finished, p["sweep"]), p["swept"])
            counts = next(c["counts"] for c in report["categories"] if c["category"] == "anonymous")
            removed = int(counts.get("messages", 0))
            if removed != expected:
                self.notes.append(f"retention batch {batch}: removed {removed:,} of {expected:,}")
        else:
            report = {}
            removed = expected - int(outcome["remaining"])
        # "during" is the batches; "final" what the run does after them (recording the
        # run, the search index's 'optimize', the WAL truncation), until it answers.
        end = p.get("finished", p["swept"])
        before = timeline.window(p["before"], p["sweep"])
        during = timeline.window(p["sweep"], end)
        final = timeline.window(end, p["swept"]) if complete else None
        after = timeline.window(p["swept"], p["after"]) if complete else None
        worst = timeline.worst_second(p["sweep"], p["swept"])
        if worst is not None:
            self.notes.append(
                f"retention batch {batch}: worst 1-s bucket during the sweep: ack p99 "
                f"{worst[1]:,.1f} ms, {worst[0]:.0f} s after the sweep started "
                f"({'it took' if complete else 'cut at'} {p['swept'] - p['sweep']:.1f} s)"
            )
        for label, w in (
            ("before", before),
            ("during", during),
            ("at the end of", final),
            ("after", after),
        ):
            if w is None:
                continue
            if w["missing"]:
                self.notes.append(
                    f"retention batch {batch}: {w['missing']} acks missing {label} the sweep"
                )
            if (w["gen_lag_p99"] or 0) > 5:
                self.notes.append(
                    f"retention batch {batch}: load generator lag p99 {w['gen_lag_p99']:.1f} ms "
                    f"{label} the sweep (it was short of CPU)"
                )
        ratio = (
            during["ack_p99"] / before["ack_p99"]
            if before["ack_p99"] and during["ack_p99"] is not None
            else None
        )
        row = [
            num(batch),
            "all" if complete else f"first {p['swept'] - p['sweep']:.0f} s",
            num(removed),
            num(swept_s, 1),
            num(p["swept"] - end, 1) if complete else "-",
            num(removed / swept_s if swept_s else None, 0),
            num(before["ack_p50"], 2),
            num(before["ack_p99"], 2),
            num(during["ack_p50"], 2),
            num(during["ack_p99"], 2),
            num(during["ack_max"], 1),
            num(ratio, 2),
            num(final["ack_max"], 1) if final else "-",
            num(after["ack_p99"], 2) if after else "-",
            num(marks.cpu_pct("sweep", "swept"), 0),
            marks.other_pct("before", "sweep", self.pin)
            + " | "
            + marks.other_pct("sweep", "swept", self.pin),
        ]
        result = {
            "batch": batch,
            "complete": complete,
            "sweep_s": swept_s,
            "removed_messages": removed,
            "before": before,
            "during": during,
            "final": final,
            "final_s": p["swept"] - end if complete else None,
            "after": after,
            "server_cpu_pct": {
                "before": marks.cpu_pct("before", "sweep"),
                "during": marks.cpu_pct("sweep", "swept"),
                "after": marks.cpu_pct("swept", "after"),
            },
            "worst_second": worst,
            "report": report,
        }
        return row, result

    # -- all -----------------------------------------------------------------------

    def run(self) -> None:
        if self.args.only in (None, "export"):
            try:
                self.run_export()
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
                self.notes.append(f"export: not measured: {exc}")
        if self.args.only in (None, "retention"):
            try:
                self.run_retention()
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
                self.notes.append(f"retention: not measured: {exc}")

    def cleanup(self) -> None:
        for proc in self.children:
            servers.stop_process(proc)

    def print_report(self, started: float) -> None:
        a = self.args
        print()
        print(
            f"chatserver privacy bench{' (--quick)' if a.quick else ''}: "
            f"SQLite synchronous={a.sync}, relay load {a.rooms} visitor->agent conversations, "
            "open loop"
        )
        print(
            f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
            + (
                "server on core 0; load generator and this driver on core 1 (taskset)"
                if self.pin
                else "no CPU pinning"
            )
            + f"; client {clients.client_name()}"
        )
        if "export" in self.results:
            print()
            print(
                "1. Export: GET /api/v1/subjects/{id}/export, wall time to the last byte, "
                "server otherwise idle"
            )
            print(table(EXPORT_COLUMNS, self.results["export"]["rows"]))
        if "export_live" in self.results:
            print()
            print(
                f"   Relay at {a.export_rate:g} msg/s, {a.window:g} s per phase, exports "
                "back to back in the background; latencies in ms from the due time"
            )
            print(table(LIVE_COLUMNS, self.results["export_live"]["rows"]))
        if "retention" in self.results:
            print()
            print(
                f"2. Retention sweep: POST /api/v1/retention/runs over "
                f"{a.conversations * a.per_conversation:,} expired anonymous messages "
                f"({a.conversations:,} conversations), relay at {a.sweep_rate:g} msg/s; "
                "ack latencies in ms"
            )
            print(
                "   'during' = the delete batches; 'final s' / 'max final' = what the run does "
                "after them (record, search index 'optimize', WAL truncation) until it answers"
            )
            print(table(SWEEP_COLUMNS, self.results["retention"]["rows"]))
        notes = list(self.notes)
        for label, lines in self.problems.items():
            notes.append(
                f"{label} server log ({len(lines)} suspicious line(s)):\n    "
                + "\n    ".join(line[:300] for line in lines)
            )
        if notes:
            print()
            print("Notes:")
            for n in notes:
                print(f"- {n}")
        print()
        print(f"total time {time.monotonic() - started:.0f} s")
        if a.json:
            a.json.write_text(json.dumps({**self.results, "notes": notes}, indent=1, default=str))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import psutil
    except ImportError:
        print("bench needs psutil: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    servers.raise_nofile()
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="chatserver-privacy-bench-"))
    runner = Runner(args, workdir)
    if runner.pin:
        # The driver's own HTTP client stays off the server's core.
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {int(servers.LOADGEN_CORE)})
    busy = psutil.cpu_percent(interval=1.0) * (os.cpu_count() or 1)
    if busy > 20:
        runner.notes.append(
            f"before the run, other processes kept {busy:.0f}% of a core busy: expect noise"
        )
    try:
        runner.run()
    except KeyboardInterrupt:
        print("\ninterrupted; partial results:", file=sys.stderr)
    finally:
        runner.cleanup()
    runner.print_report(started)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
