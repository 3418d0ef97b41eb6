"""``python -m bench.cluster``: chatserver on 1, 2 and 3 processes sharing Redis and
PostgreSQL, against 1 process on SQLite, in one table.

Each configuration is a fresh ``chatserver serve --workers N`` (its processes share one
port; the kernel hands each new socket to one of them, so a visitor and the agent
watching its conversation are often on different processes and the relay crosses
Redis). PostgreSQL configurations get a database of their own, created here and dropped
after; Redis ones a key prefix of their own, deleted after. The load is the one of
``python -m bench`` (``bench.loadgen``, chatserver adapter): visitor sends, agent
watches, open loop, fresh rooms per step.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bench import report, servers
from bench.__main__ import Bench, add_load_options, drive, finish_load_options, print_machine

KINDS = ("sqlite", "sqlite+redis", "pg+redis")
DEFAULT_CONFIGS = "sqlite:1,pg+redis:1,pg+redis:2,pg+redis:3"
# From below PostgreSQL's knee (~1,000/s on the 2-core box) to past SQLite's (~6,000/s).
DEFAULTS = {"rates": "500,1000,2000,4000,8000", "duration": 5.0, "warmup": 1.0, "rooms": 50}
QUICK = {"rates": "500,1000", "duration": 1.0, "warmup": 0.3, "rooms": 10}
# A step keeps up when this share of the offered rate is delivered (and acked) in its
# window, with nothing lost and no error frames.
KEPT_UP = 0.95
BASELINE = "sqlite x1"
# A core is full above this busy %; other processes above this % of a core make a run noisy.
FULL = 90.0
NOISY = 30.0

COLUMNS = (
    "config",
    "offered/s",
    "acked/s",
    "delivered/s",
    "ack p50",
    "ack p99",
    "deliv p99",
    "lost",
    "errors",
    "server CPU%",
    "pg CPU%",
    "redis CPU%",
    "gen CPU%",
    "other CPU%",
    "core 0/1 busy%",
    "sockets/process",
    "rooms across",
)


@dataclass(frozen=True)
class Config:
    kind: str
    workers: int

    @property
    def label(self) -> str:
        return f"{self.kind} x{self.workers}"

    @property
    def slug(self) -> str:
        return f"{self.kind.replace('+', '_')}_{self.workers}"

    @property
    def postgres(self) -> bool:
        return self.kind == "pg+redis"

    @property
    def redis(self) -> bool:
        return self.kind != "sqlite"


def parse_configs(text: str) -> list[Config]:
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        kind, _, n = item.partition(":")
        workers = int(n) if n.strip() else 1
        if kind not in KINDS or workers < 1:
            raise ValueError(item)
        if kind == "sqlite" and workers > 1:
            raise ValueError(f"{item} (several processes need Redis: sqlite+redis:{workers})")
        out.append(Config(kind, workers))
    if not out:
        raise ValueError(text)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    add_load_options(p, DEFAULTS, "rates 500,1000, 1 s, 10 rooms")
    p.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help="comma separated KIND:PROCESSES, KIND one of " + ", ".join(KINDS) + " (sqlite: "
        "memory broker, one process; sqlite+redis: one SQLite file shared by the processes) "
        "(default %(default)s)",
    )
    p.add_argument(
        "--pg",
        default="postgresql://root@127.0.0.1:5432/test",
        help="PostgreSQL URL to connect to for CREATE/DROP DATABASE (default %(default)s)",
    )
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="default %(default)s")
    p.add_argument(
        "--spin",
        action="store_true",
        help="let the load generator busy-poll its core for sub-millisecond pacing, as "
        "`python -m bench` does; off by default, because PostgreSQL and Redis are not "
        "pinned and would compete with the spinning generator for its core",
    )
    args = p.parse_args(argv)
    finish_load_options(p, args, DEFAULTS, QUICK)
    try:
        args.config_list = parse_configs(args.configs)
    except ValueError as exc:
        p.error(f"--configs: not KIND:PROCESSES: {exc}")
    return args


# -- PostgreSQL databases and Redis prefixes of one run --------------------------------


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database, query=""))


def pg_admin(url: str, *statements: str) -> list[Any]:
    """Run statements outside a transaction (CREATE/DROP DATABASE); the last one's rows."""
    import asyncpg

    async def go() -> list[Any]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            rows: list[Any] = []
            for sql in statements:
                rows = await conn.fetch(sql, timeout=60)
            return rows
        finally:
            await conn.close(timeout=5)

    return asyncio.run(go())


def redis_url(base: str, prefix: str) -> str:
    parts = urlsplit(base)
    query = [*parse_qsl(parts.query), ("prefix", prefix)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def redis_delete_prefix(url: str, prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for k in range(0, len(keys), 500):
            client.delete(*keys[k : k + 500])
        return len(keys)
    finally:
        client.close()


def backing_versions(args: argparse.Namespace, configs: list[Config]) -> str:
    """PostgreSQL's and Redis's versions and durability settings, for the header."""
    out = []
    if any(c.postgres for c in configs):
        try:
            rows = pg_admin(
                args.pg,
                "SELECT current_setting('server_version') AS v,"
                " current_setting('synchronous_commit') AS sc, current_setting('fsync') AS f",
            )
            r = rows[0]
            out.append(f"PostgreSQL {r['v']} (synchronous_commit={r['sc']}, fsync={r['f']})")
        except Exception as exc:
            out.append(f"PostgreSQL: {exc!r}")
    if any(c.redis for c in configs):
        try:
            import redis

            client = redis.Redis.from_url(args.redis, socket_timeout=5)
            try:
                info = client.info("server")
                aof = client.config_get("appendonly").get("appendonly", "?")
            finally:
                client.close()
            out.append(f"Redis {info.get('redis_version')} (appendonly={aof})")
        except Exception as exc:
            out.append(f"Redis: {exc!r}")
    return "; ".join(out)


# -- the bench -------------------------------------------------------------------------


class ClusterBench(Bench):
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        super().__init__(args, workdir)
        self.run_id = secrets.token_hex(3)
        self.databases: list[str] = []
        self.prefixes: list[str] = []
        self.versions = ""

    def config_env(self, cfg: Config) -> dict[str, str]:
        data = Path(tempfile.mkdtemp(prefix="chatserver-data-", dir=self.workdir))
        env = servers.chatserver_env(data, self.args.sync)
        # Nothing from the caller's environment decides the store or the broker.
        env.update(CHATSERVER_STORE="", CHATSERVER_BROKER="memory://", CHATSERVER_LOG_LEVEL="info")
        if cfg.postgres:
            db = f"chatbench_{self.run_id}_{cfg.slug}"
            self.databases.append(db)
            pg_admin(self.args.pg, f'CREATE DATABASE "{db}"')
            env["CHATSERVER_STORE"] = with_database(self.args.pg, db)
        if cfg.redis:
            prefix = f"chatbench-{self.run_id}-{cfg.slug}:"
            self.prefixes.append(prefix)
            env["CHATSERVER_BROKER"] = redis_url(self.args.redis, prefix)
        return env

    def drop_backing(self) -> None:
        while self.databases:
            db = self.databases.pop()
            try:
                pg_admin(self.args.pg, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            except Exception as exc:
                self.notes.append(f"could not drop database {db}: {exc!r}")
        while self.prefixes:
            prefix = self.prefixes.pop()
            try:
                redis_delete_prefix(self.args.redis, prefix)
            except Exception as exc:
                self.notes.append(f"could not delete Redis keys {prefix}*: {exc!r}")

    def start_config(self, cfg: Config) -> tuple[servers.Server, dict[str, Any], str]:
        env = self.config_env(cfg)
        options: dict[str, Any] = {"origin": servers.ORIGIN}
        # Also applies the migrations, before several processes start at once.
        options["token"] = servers.create_agent_token(env)
        server = servers.start(
            "chatserver", self.workdir, self.pin, env, extra_args=["--workers", str(cfg.workers)]
        )
        self.children.append(server.proc)
        server.wait_ready()
        wait_started(server, cfg.workers)
        db = env["CHATSERVER_STORE"].rsplit("/", 1)[-1] if cfg.postgres else ""
        return server, options, db

    def run_config(self, cfg: Config) -> None:
        print(f"== {cfg.label}", file=sys.stderr, flush=True)
        server = None
        try:
            server, options, db = self.start_config(cfg)
            a = self.args
            job = self.load_job("chatserver", server, options)
            job["spin"] = self.pin and a.spin
            job["scrape"] = cfg.workers == 1
            job["spread"] = cfg.workers > 1
            watch: dict[str, Any] = {}
            if cfg.postgres:
                # PostgreSQL's own processes and this database's backends, not other
                # databases' backends (whose command lines hold "host(port)").
                watch["pg"] = {
                    "name": "postgres",
                    "cmdline_has": [f" {db} "],
                    "cmdline_lacks": ["(", "[local]"],
                }
            if cfg.redis:
                watch["redis"] = {"name": "redis-server"}
            job["watch"] = watch
            per_step = a.warmup + a.duration + max(2.0, min(10.0, a.duration)) + 15 + 60
            result = self.run_loadgen(job, timeout=per_step * len(a.rate_list) + 30)
            self.load[cfg.label] = result["steps"]
            if server.proc.poll() is not None:
                self.notes.append(
                    f"{cfg.label}: server exited during the run "
                    f"(code {server.proc.returncode}):\n{server.log_tail()}"
                )
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
            self.notes.append(f"{cfg.label}: not measured: {exc}")
        finally:
            if server is not None:
                self.stop_server(server, cfg.label)
            self.drop_backing()

    def run(self) -> None:
        self.versions = backing_versions(self.args, self.args.config_list)
        for cfg in self.args.config_list:
            self.run_config(cfg)

    def cleanup(self) -> None:
        super().cleanup()
        self.drop_backing()

    # -- output ---------------------------------------------------------------------

    def print_report(self, started: float) -> None:
        a = self.args
        print()
        print(
            f"chatserver cluster bench: {len(a.rate_list)} rate(s) x {a.duration:g} s "
            f"(+{a.warmup:g} s warm-up), {a.rooms} rooms (visitor sends, agent watches), "
            "open loop"
        )
        print_machine(self.pin, a.client)
        print(
            "server processes (all workers of one `chatserver serve --workers N`) pinned "
            "together; PostgreSQL and Redis NOT pinned (they use either core)"
            if self.pin
            else "no pinning"
        )
        print(
            "load generator pacing: "
            + (
                "busy-polls its core (--spin)"
                if self.pin and a.spin
                else "sleeps >= 1 ms between sends (bursts of rate/1000)"
            )
        )
        print(f"backing: {self.versions or '-'}; SQLite synchronous={a.sync}")
        print()
        rows = [row for c in a.config_list for row in rows_of(c.label, self.load.get(c.label, []))]
        print(report.table(COLUMNS, rows) if rows else "(no load results)")
        print()
        for line in summary(a.config_list, self.load, self.pin):
            print(line)
        notes = list(self.notes)
        for c in a.config_list:
            # Here PostgreSQL and Redis are part of the system measured, not noise.
            steps = [{**s, "other_cpu_pct": other_pct(s)} for s in self.load.get(c.label, [])]
            notes.extend(report.step_notes(c.label, steps))
        for label, lines in self.server_problems.items():
            notes.append(
                f"{label} server log ({len(lines)} suspicious line(s) shown):\n    "
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
            a.json.write_text(
                json.dumps(
                    {
                        "configs": [c.label for c in a.config_list],
                        "load": self.load,
                        "backing": self.versions,
                        "spin": self.pin and a.spin,
                        "notes": notes,
                    },
                    indent=1,
                )
            )


def wait_started(server: servers.Server, workers: int, timeout: float = 60.0) -> None:
    """Until every worker has logged the end of its start-up (uvicorn, log level info):
    ``/healthz`` answers as soon as the first one is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = server.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        if text.count("Application startup complete") >= workers:
            return
        if server.proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(
        f"not all {workers} worker(s) started within {timeout:.0f} s; log:\n{server.log_tail()}"
    )


# -- rows and summary ------------------------------------------------------------------


def _watched(step: dict[str, Any], label: str) -> float | None:
    value = (step.get("watched_cpu_pct") or {}).get(label)
    return float(value) if value is not None else None


def other_pct(step: dict[str, Any]) -> float:
    """The machine's CPU outside the server, the load generator, PostgreSQL and Redis."""
    watched = sum((step.get("watched_cpu_pct") or {}).values())
    return max(0.0, float(step.get("other_cpu_pct") or 0.0) - watched)


def rows_of(label: str, steps: list[dict[str, Any]]) -> list[list[str]]:
    num = report.num
    rows = []
    for s in steps:
        if "failed" in s:
            rows.append([label, num(int(s["offered"])), "failed", *["-"] * (len(COLUMNS) - 3)])
            continue
        spread = s.get("sockets_per_proc") or {}
        rows.append(
            [
                label,
                num(int(s["offered"])),
                num(s.get("acked"), 0),
                num(s["delivered"], 0),
                num(s.get("ack_p50"), 2),
                num(s.get("ack_p99"), 2),
                num(s["p99"], 2),
                num(int(s["lost"])),
                num(int(sum(s.get("errors", {}).values()))),
                num(s.get("server_cpu_pct"), 0),
                num(_watched(s, "pg"), 0),
                num(_watched(s, "redis"), 0),
                num(s.get("gen_cpu_pct"), 0),
                num(other_pct(s), 0),
                "/".join(f"{c:.0f}" for c in s.get("cores_busy_pct") or []) or "-",
                "/".join(str(n) for n in sorted(spread.values(), reverse=True)) or "-",
                f"{s['rooms_crossing']}/{s['rooms_known']}" if s.get("rooms_known") else "-",
            ]
        )
    return rows


def kept_up(s: dict[str, Any]) -> bool:
    want = KEPT_UP * float(s["offered"])
    return (
        "failed" not in s
        and s["delivered"] >= want
        and (s.get("acked") or 0.0) >= want
        and not s.get("lost")
        and not sum(s.get("errors", {}).values())
    )


def capacity(steps: list[dict[str, Any]]) -> tuple[float, bool] | None:
    """Throughput (min of acked and delivered msg/s; the best step) and whether some step
    fell behind, i.e. whether the ladder reached the limit (else it is a lower bound)."""
    ok = [s for s in steps if "failed" not in s]
    if not ok:
        return None
    best = max(min(s["delivered"], s.get("acked") or s["delivered"]) for s in ok)
    return best, any(not kept_up(s) for s in ok)


def sustained(steps: list[dict[str, Any]]) -> float:
    """The highest offered rate that was kept up with (0 if none)."""
    return max((float(s["offered"]) for s in steps if kept_up(s)), default=0.0)


def limit_of(steps: list[dict[str, Any]], pinned: bool) -> str:
    """Where the CPU went in the heaviest step, and which resource ran out."""
    ok = [s for s in steps if "failed" not in s]
    if not ok:
        return "not measured"
    s = ok[-1]
    server = float(s.get("server_cpu_pct") or 0.0)
    pg, redis = _watched(s, "pg") or 0.0, _watched(s, "redis") or 0.0
    gen, other = float(s.get("gen_cpu_pct") or 0.0), other_pct(s)
    cores = [float(c) for c in s.get("cores_busy_pct") or []]
    where = (
        f"server {server:.0f}%, pg {pg:.0f}%, redis {redis:.0f}%, load generator {gen:.0f}%, "
        f"other {other:.0f}%; cores busy " + "/".join(f"{c:.0f}%" for c in cores)
    )
    text = f"at {int(s['offered']):,}/s: {where}"
    full = [k for k, c in enumerate(cores) if c >= FULL]
    if kept_up(s):
        verdict = "kept up; not saturated"
    elif len(cores) >= 2 and len(full) == len(cores):
        verdict = "fell behind; every core is full"
    elif pinned and full == [0]:
        verdict = "fell behind; core 0 (the chatserver processes' core) is full"
    elif full:
        verdict = "fell behind; core " + ",".join(map(str, full)) + " full"
    else:
        verdict = (
            "fell behind with no core full: waiting (commit latency, round trips to "
            "PostgreSQL, locks), not CPU"
        )
    if other >= NOISY:
        verdict += f"; other processes took {other:.0f}% of a core: rerun on a quiet machine"
    return f"{text} -> {verdict}"


def ratio(cap: tuple[float, bool], base: tuple[float, bool] | None) -> str:
    """`` = 0.52x`` of the baseline's throughput, with ``>=``/``<=`` where one of the
    two is only a lower bound, and ``?`` where both are."""
    if base is None or not base[0]:
        return ""
    value = f"{cap[0] / base[0]:.2f}x"
    if cap[1] and base[1]:
        return f" = {value}"
    if cap[1]:
        return f" <= {value}"
    if base[1]:
        return f" >= {value}"
    return f" ~ {value}?"


def summary(
    configs: list[Config], load: dict[str, list[dict[str, Any]]], pinned: bool
) -> list[str]:
    caps = {c.label: capacity(load.get(c.label, [])) for c in configs}
    base = caps.get(BASELINE)
    base_sus = sustained(load.get(BASELINE, []))
    lines = []
    parts = []
    for c in configs:
        cap = caps[c.label]
        if cap is None:
            parts.append(f"{c.label} -")
            continue
        value, reached = cap
        parts.append(f"{c.label} {'' if reached else '>='}{value:,.0f}/s{ratio(cap, base)}")
    lines.append(
        f"throughput (best step's min(acked, delivered)/s) vs {BASELINE}: " + "; ".join(parts)
    )
    parts = []
    for c in configs:
        sus = sustained(load.get(c.label, []))
        times = f" = {sus / base_sus:.2f}x" if base_sus else ""
        parts.append(f"{c.label} {sus:,.0f}/s{times}")
    lines.append(
        f"highest rate kept up with (>= {KEPT_UP:.0%} acked and delivered, nothing lost, "
        "no errors): " + "; ".join(parts)
    )
    if any(cap is not None and not cap[1] for cap in caps.values()):
        lines.append(
            "  (>=: that configuration kept up with every rate, so its throughput is only a "
            "lower bound, and a ratio marked <=, >= or ~?: one or both of its terms are; add "
            "higher --rates)"
        )
    lines.append("limit (heaviest step; CPU in % of one core):")
    for c in configs:
        lines.append(f"  {c.label}: {limit_of(load.get(c.label, []), pinned)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    return drive(ClusterBench, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
