"""The session key kept in the data folder: made once, also when several server processes
start on one folder at the same moment (as a cluster's nodes do)."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

from chatserver.sessions import load_secret_key


def _load(
    data_dir: str, start: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue[bytes]
) -> None:
    start.wait(timeout=30)
    out.put(load_secret_key("", data_dir))


def test_processes_starting_together_share_one_whole_key(tmp_path: Path) -> None:
    """Eight processes released at once all read the same key, none an empty or partial
    one, and the folder holds the key alone (mode 0600), no drafts."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(8)
    out: multiprocessing.Queue[bytes] = ctx.Queue()
    procs = [ctx.Process(target=_load, args=(str(tmp_path), start, out)) for _ in range(8)]
    for p in procs:
        p.start()
    keys = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert len(set(keys)) == 1 and len(keys[0]) >= 48
    assert [f.name for f in tmp_path.iterdir()] == ["secret_key"]
    assert stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode) == 0o600
    assert load_secret_key("", str(tmp_path)) == keys[0]


def test_a_configured_key_wins_and_writes_nothing(tmp_path: Path) -> None:
    assert load_secret_key("configured-key", str(tmp_path)) == b"configured-key"
    assert list(tmp_path.iterdir()) == []
