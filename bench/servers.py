"""Starting, waiting for and stopping the servers under test."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ORIGIN = "http://bench.local"
NOFILE = 65536
SERVER_CORE = "0"
LOADGEN_CORE = "1"

# Which importable modules each target needs; a missing one skips the target.
REQUIRES: dict[str, tuple[str, ...]] = {
    "chatserver": ("chatserver",),
    "websockets": ("websockets",),
    "socketio": ("socketio", "uvicorn"),
    "channels": ("channels", "django", "uvicorn"),
}
PEER_MODULES = {
    "websockets": "bench.peers.ws_relay",
    "socketio": "bench.peers.socketio_relay",
    "channels": "bench.peers.channels_relay",
}


def missing_modules(target: str) -> list[str]:
    return [m for m in REQUIRES[target] if importlib.util.find_spec(m) is None]


def raise_nofile() -> int:
    """Raise RLIMIT_NOFILE as far as allowed; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = hard == resource.RLIM_INFINITY
    # Root may raise the hard limit too; anyone else stops at the hard limit.
    tries = [(NOFILE, hard if unlimited else max(NOFILE, hard))]
    if not unlimited:
        tries.append((hard, hard))
    for new_soft, new_hard in tries:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, new_hard))
        except (ValueError, OSError):
            continue
        return new_soft
    return soft


def pinning_available() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pinned(argv: list[str], core: str, pin: bool) -> list[str]:
    taskset = shutil.which("taskset")
    if pin and taskset is not None:
        return [taskset, "-c", core, *argv]
    return argv


def spawn_load(module: str, pin: bool) -> subprocess.Popen[bytes]:
    """A load generator (``python -m MODULE``) on its own core, fed on stdin, answering on
    stdout, in a session of its own so it can be killed with its children."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        pinned([PYTHON, "-m", module], LOADGEN_CORE, pin),
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child_setup() -> None:
    raise_nofile()


@dataclass
class Server:
    target: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    health_path: str | None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_problems(self, limit: int = 20) -> list[str]:
        """Lines of the server log that look like failures, for the report."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        keys = ("Traceback", "Error", "ERROR", "Exception", "WARNING", "CRITICAL")
        found = [ln for ln in text.splitlines() if any(k in ln for k in keys)]
        return found[:limit]

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll the port (and health URL) until it answers; bounded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.target} exited with code {self.proc.returncode} before it was"
                    f" ready; log tail:\n{self.log_tail()}"
                )
            if self._answers():
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.target} not ready after {timeout:.0f} s; log:\n{self.log_tail()}"
        )

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        if self.health_path is None:
            return True
        url = f"http://127.0.0.1:{self.port}{self.health_path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(200 <= resp.status < 300)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 5.0) -> None:
        stop_process(self.proc, timeout)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # Each child runs in its own session, so its group id is its pid.
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def chatserver_env(data_dir: Path, sync: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CHATSERVER_DATA_DIR=str(data_dir),
        CHATSERVER_ALLOWED_ORIGINS=ORIGIN,
        CHATSERVER_RATE_LIMIT_PER_SECOND="1000000",
        CHATSERVER_SQLITE_SYNCHRONOUS=sync,
    )
    return env


def create_agent_token(env: dict[str, str], timeout: float = 60.0) -> str:
    # `token create` refuses a store that does not exist: make it first.
    migrate = subprocess.run(
        [PYTHON, "-m", "chatserver", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"`chatserver migrate` failed: {migrate.stderr.strip()[-1500:]}")
    argv = [PYTHON, "-m", "chatserver", "token", "create", "--role", "agent", "--name", "bench"]
    res = subprocess.run(
        argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    token = res.stdout.strip()
    if res.returncode != 0 or not token or len(token.split()) != 1:
        raise RuntimeError(
            f"`chatserver token create` failed (exit {res.returncode}):\n"
            f"stdout: {res.stdout.strip()[:500]}\nstderr: {res.stderr.strip()[-1500:]}"
        )
    return token


def start(
    target: str,
    workdir: Path,
    pin: bool,
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Server:
    port = free_port()
    if target == "chatserver":
        argv = [PYTHON, "-m", "chatserver", "serve", "--host", "127.0.0.1", "--port", str(port)]
        argv.extend(extra_args)
        health: str | None = "/healthz"
    else:
        argv = [PYTHON, "-m", PEER_MODULES[target], "--host", "127.0.0.1", "--port", str(port)]
        health = None
    run_env = dict(env) if env is not None else dict(os.environ)
    # Peers import bench.*, so the project root must be importable from them.
    run_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), run_env.get("PYTHONPATH", "")) if p
    )
    fd, name = tempfile.mkstemp(prefix=f"{target}-", suffix=".log", dir=workdir)
    os.close(fd)
    log_path = Path(name)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            pinned(argv, SERVER_CORE, pin),
            cwd=ROOT,
            env=run_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,
            start_new_session=True,
        )
    return Server(
        target=target, port=port, proc=proc, log_path=log_path, health_path=health, env=run_env
    )
