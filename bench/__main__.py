"""``python -m bench``: run every target at every offered rate, print tables."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import clients, report, servers

ALL_TARGETS = ("chatserver", "websockets", "socketio", "channels")
IDLE_TARGETS = ("chatserver", "websockets")


# Defaults, and what --quick uses instead; an option given explicitly wins over both.
DEFAULTS = {"rates": "5000,10000,20000", "duration": 5.0, "warmup": 1.0, "rooms": 50, "idle": 5000}
QUICK = {"rates": "500,1000", "duration": 1.0, "warmup": 0.3, "rooms": 5, "idle": 200}


def add_load_options(p: argparse.ArgumentParser, defaults: dict[str, Any], quick: str) -> None:
    """The options of an open-loop load run, shared with ``python -m bench.cluster``.
    ``None`` means "not given": ``finish_load_options`` fills in the defaults."""
    p.add_argument(
        "--rates", help=f"offered msg/s per step, comma separated (default {defaults['rates']})"
    )
    p.add_argument(
        "--duration", type=float, help=f"measured seconds per step (default {defaults['duration']})"
    )
    p.add_argument(
        "--warmup",
        type=float,
        help=f"unmeasured seconds at the same rate before each step (default {defaults['warmup']})",
    )
    p.add_argument(
        "--rooms", type=int, help=f"rooms of 1 sender + 1 receiver (default {defaults['rooms']})"
    )
    p.add_argument(
        "--sync",
        default="NORMAL",
        type=str.upper,
        choices=("NORMAL", "FULL"),
        help="chatserver's CHATSERVER_SQLITE_SYNCHRONOUS (default %(default)s)",
    )
    p.add_argument(
        "--quick", action="store_true", help=f"smoke test: {quick} (explicit options still win)"
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    p.add_argument(
        "--client",
        choices=("auto", "websockets"),
        default="auto",
        help="load generator client: picows when installed (auto), or the "
        "slower websockets asyncio client",
    )
    p.add_argument("--json", type=Path, help="also write the raw results to this file")


def finish_load_options(
    p: argparse.ArgumentParser,
    args: argparse.Namespace,
    defaults: dict[str, Any],
    quick: dict[str, Any],
) -> None:
    """Defaults (or --quick's values) for what was not given; ``args.rate_list``."""
    for name, value in (quick if args.quick else defaults).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    try:
        args.rate_list = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        p.error(f"--rates: not a list of numbers: {args.rates!r}")
    if not args.rate_list or min(args.rate_list) <= 0:
        p.error("--rates: need at least one positive rate")
    if args.duration <= 0 or args.rooms <= 0:
        p.error("--duration and --rooms must be positive")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add_load_options(p, DEFAULTS, "rates 500,1000, 1 s, 5 rooms, 200 idle sockets")
    p.add_argument(
        "--targets",
        default=",".join(ALL_TARGETS),
        help="comma separated, from: " + ", ".join(ALL_TARGETS),
    )
    p.add_argument(
        "--idle",
        type=int,
        help=f"idle sockets for the memory test, 0 skips it (default {DEFAULTS['idle']})",
    )
    args = p.parse_args(argv)
    finish_load_options(p, args, DEFAULTS, QUICK)
    args.target_list = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(args.target_list) - set(ALL_TARGETS))
    if unknown:
        p.error(f"--targets: unknown {', '.join(unknown)}")
    if args.idle < 0:
        p.error("--idle must not be negative")
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.pin = servers.pinning_available() and not args.no_pin
        self.children: list[subprocess.Popen[bytes]] = []
        self.notes: list[str] = []
        self.load: dict[str, list[dict[str, Any]]] = {}
        self.idle: dict[str, dict[str, Any]] = {}
        self.server_problems: dict[str, list[str]] = {}

    # -- servers --------------------------------------------------------------

    def start_server(self, target: str) -> tuple[servers.Server, dict[str, Any]]:
        """Start a fresh instance (chatserver: fresh data dir and token)."""
        options: dict[str, Any] = {"origin": servers.ORIGIN}
        env = None
        if target == "chatserver":
            data = Path(tempfile.mkdtemp(prefix="chatserver-data-", dir=self.workdir))
            env = servers.chatserver_env(data, self.args.sync)
            options["token"] = servers.create_agent_token(env)
        server = servers.start(target, self.workdir, self.pin, env)
        self.children.append(server.proc)
        server.wait_ready()
        return server, options

    def stop_server(self, server: servers.Server, label: str) -> None:
        server.stop()
        problems = server.log_problems()
        if problems:
            self.server_problems.setdefault(label, []).extend(problems)

    # -- load generator -------------------------------------------------------

    def run_loadgen(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        proc = servers.spawn_load("bench.loadgen", self.pin)
        self.children.append(proc)
        try:
            out, _ = proc.communicate(json.dumps(job).encode(), timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            servers.stop_process(proc)
            raise RuntimeError(f"load generator did not finish within {timeout:.0f} s") from exc
        if proc.returncode != 0:
            raise RuntimeError(f"load generator exited with {proc.returncode}")
        lines = out.decode(errors="replace").strip().splitlines()
        if not lines:
            raise RuntimeError("load generator printed no result")
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def load_job(
        self, target: str, server: servers.Server, options: dict[str, Any]
    ) -> dict[str, Any]:
        a = self.args
        return {
            "mode": "load",
            "target": target,
            "port": server.port,
            "server_pid": server.pid,
            "rates": a.rate_list,
            "duration": a.duration,
            "warmup": a.warmup,
            "drain": max(2.0, min(10.0, a.duration)),
            "rooms": a.rooms,
            "options": options,
            # Busy-polling is only fair when it cannot steal the server's core.
            "spin": self.pin,
            "client": a.client,
        }

    # -- the two tests --------------------------------------------------------

    def run_target(self, target: str) -> None:
        missing = servers.missing_modules(target)
        if missing:
            self.notes.append(
                f"{target}: skipped, missing module(s): {', '.join(missing)}"
                " (pip install -e '.[bench]')"
            )
            return
        print(f"== {target}", file=sys.stderr, flush=True)
        server = None
        try:
            server, options = self.start_server(target)
            a = self.args
            per_step = a.warmup + a.duration + max(2.0, min(10.0, a.duration)) + 15 + 60
            result = self.run_loadgen(
                self.load_job(target, server, options), timeout=per_step * len(a.rate_list) + 30
            )
            self.load[target] = result["steps"]
            if server.proc.poll() is not None:
                self.notes.append(
                    f"{target}: server exited during the run "
                    f"(code {server.proc.returncode}):\n{server.log_tail()}"
                )
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
            self.notes.append(f"{target}: not measured: {exc}")
        finally:
            if server is not None:
                self.stop_server(server, target)

    def run_idle(self, target: str) -> None:
        if servers.missing_modules(target) or target not in self.args.target_list:
            return
        print(f"== idle sockets: {target} x {self.args.idle}", file=sys.stderr, flush=True)
        server = None
        try:
            server, options = self.start_server(target)
            job = {
                "mode": "idle",
                "target": target,
                "port": server.port,
                "server_pid": server.pid,
                "count": self.args.idle,
                "options": options,
            }
            self.idle[target] = self.run_loadgen(job, timeout=420)
            failures = self.idle[target].get("failures")
            if failures:
                self.notes.append(f"idle {target}: failed sockets: {failures}")
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
            self.notes.append(f"idle {target}: not measured: {exc}")
        finally:
            if server is not None:
                self.stop_server(server, f"{target} (idle test)")

    def run(self) -> None:
        for target in self.args.target_list:
            self.run_target(target)
        if self.args.idle:
            for target in IDLE_TARGETS:
                self.run_idle(target)

    def cleanup(self) -> None:
        for proc in self.children:
            servers.stop_process(proc)

    # -- output ---------------------------------------------------------------

    def print_report(self, started: float) -> None:
        a = self.args
        print()
        print(
            f"chatserver bench: {len(a.rate_list)} rate(s) x {a.duration:g} s "
            f"(+{a.warmup:g} s warm-up), {a.rooms} rooms of 1 sender + 1 receiver, "
            f"open loop"
        )
        print_machine(self.pin, a.client)
        if "chatserver" in a.target_list:
            print(
                f"chatserver SQLite synchronous mode: {a.sync} "
                f"(CHATSERVER_SQLITE_SYNCHRONOUS={a.sync})"
            )
        print()
        rows = [
            row
            for t in a.target_list
            if t in self.load
            for row in report.load_rows(t, self.load[t])
        ]
        if rows:
            print(report.table(report.LOAD_COLUMNS, rows))
        else:
            print("(no load results)")
        if self.idle:
            print()
            print(
                "Idle sockets (handshake done, then silent; client offers permessage-deflate "
                "like a browser)"
            )
            print(
                report.table(
                    report.IDLE_COLUMNS, [report.idle_row(t, r) for t, r in self.idle.items()]
                )
            )
        notes = list(self.notes)
        for t in a.target_list:
            notes.extend(report.step_notes(t, self.load.get(t, [])))
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
                    {"load": self.load, "idle": self.idle, "notes": notes, "sync": a.sync}, indent=1
                )
            )


def print_machine(pin: bool, client: str) -> None:
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        + ("server on core 0, load generator on core 1 (taskset)" if pin else "no CPU pinning")
    )
    if client == "websockets":
        clients.use_picows = False
    print(f"client: {clients.client_name()}; versions: {versions()}")


def machine_busy_pct(seconds: float = 1.0) -> float:
    """CPU in use by anything at all, in % of one core, over a short look."""
    import psutil

    t0 = psutil.cpu_times()
    time.sleep(seconds)
    t1 = psutil.cpu_times()
    busy = (t1.user + t1.nice + t1.system) - (t0.user + t0.nice + t0.system)
    return 100.0 * busy / seconds


def versions() -> str:
    out = []
    for dist in ("websockets", "uvicorn", "python-socketio", "channels", "django", "uvloop"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out.append(f"{dist} {importlib.metadata.version(dist)}")
    return ", ".join(out)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def drive(make: Callable[[argparse.Namespace, Path], Bench], args: argparse.Namespace) -> int:
    """Run a bench (``Bench`` or a subclass) to the end or to Ctrl-C/SIGTERM, kill its
    children, print what it measured."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        print("bench needs psutil: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    servers.raise_nofile()
    # SIGTERM is handled like Ctrl-C: children are killed, partial results printed.
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="chatserver-bench-"))
    bench = make(args, workdir)
    busy = machine_busy_pct()
    if busy > 20:
        bench.notes.append(
            f"before the run, other processes kept {busy:.0f}% of a core busy: expect noisy numbers"
        )
    try:
        bench.run()
    except KeyboardInterrupt:
        print("\ninterrupted; partial results:", file=sys.stderr)
    finally:
        bench.cleanup()
    bench.print_report(started)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return drive(Bench, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
