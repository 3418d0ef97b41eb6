"""The command line: migrate, agent add, token create, and refusing bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chatserver.auth import token_hash, verify_password
from chatserver.cli_store import describe
from chatserver.store import Store, store_from_url
from tests.helpers import backend_settings, cli

run = cli


async def open_store(data_dir: Path) -> Store:
    """The store the CLI used on ``data_dir`` (SQLite, or the test's PostgreSQL schema)."""
    url = backend_settings(data_dir).get("store") or f"sqlite:///{data_dir / 'chat.db'}"
    store = store_from_url(url)
    await store.open()
    return store


async def test_migrate_agent_add_and_token_create(tmp_path: Path) -> None:
    """migrate prints the schema version; agent add stores an argon2 hash; token prints one token."""
    out = run(tmp_path, "migrate")
    assert out.returncode == 0 and out.stdout.startswith("schema version ")
    added = run(
        tmp_path,
        "agent",
        "add",
        "Kari@Example.com",
        "--name",
        "Kari",
        "--role",
        "admin",
        stdin="correct horse battery\n",
    )
    assert added.returncode == 0, added.stderr
    token = run(tmp_path, "token", "create", "--role", "agent", "--name", "helper bot")
    assert token.returncode == 0
    assert len(token.stdout.strip().splitlines()) == 1
    store = await open_store(tmp_path)
    try:
        found = await store.agent_credentials("kari@example.com")
        assert found is not None
        agent, password_hash = found
        assert agent.role == "admin" and password_hash and password_hash.startswith("$argon2")
        assert await verify_password(password_hash, "correct horse battery")
        bot = await store.token(token_hash(token.stdout.strip()))
        assert bot is not None and bot.agent.name == "helper bot" and bot.agent.kind == "bot"
    finally:
        await store.close()


def test_agent_add_refuses_weak_passwords_and_duplicates(tmp_path: Path) -> None:
    """A password under 10 characters or easy to guess (the API's rule), or an email
    already used, is refused with a message."""
    assert run(tmp_path, "migrate").returncode == 0
    short = run(tmp_path, "agent", "add", "a@x.io", "--name", "A", stdin="short\n")
    assert short.returncode == 2 and "10 characters" in short.stderr
    weak = run(tmp_path, "agent", "add", "a@x.io", "--name", "A", stdin="password1234\n")
    assert weak.returncode == 2 and "too easy to guess" in weak.stderr
    ok = run(tmp_path, "agent", "add", "a@x.io", "--name", "A", stdin="long enough pw\n")
    assert ok.returncode == 0
    again = run(tmp_path, "agent", "add", "A@x.io", "--name", "A", stdin="long enough pw\n")
    assert again.returncode == 1 and "conflict" in again.stderr


def test_bad_settings_stop_the_command_with_a_message(tmp_path: Path) -> None:
    """A bad setting value is reported by name and the command exits 2."""
    out = run(tmp_path, "migrate", env={"CHATSERVER_HELLO_TIMEOUT": "soon"})
    assert out.returncode == 2 and "CHATSERVER_HELLO_TIMEOUT" in out.stderr


def test_several_workers_need_a_shared_broker(tmp_path: Path) -> None:
    """With the in-process broker, events could not cross processes: refused at start."""
    memory = {"CHATSERVER_BROKER": "memory://"}
    out = run(tmp_path, "serve", "--workers", "2", "--port", "1", env=memory)
    assert out.returncode == 2 and "several workers need a shared broker" in out.stderr
    zero = run(tmp_path, "serve", "--workers", "0", "--port", "1", env=memory)
    assert zero.returncode == 2 and "workers" in zero.stderr


def test_unknown_role_is_refused(tmp_path: Path) -> None:
    """Roles are agent, admin or compliance."""
    out = run(tmp_path, "token", "create", "--role", "root")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_help_lists_every_setting(tmp_path: Path) -> None:
    """--help shows the settings' environment variables."""
    out = run(tmp_path, "--help")
    assert (
        "CHATSERVER_ALLOWED_ORIGINS" in out.stdout and "CHATSERVER_SQLITE_SYNCHRONOUS" in out.stdout
    )


# Every command but serve and migrate, as an operator would type it.
NEEDS_A_STORE = [
    ("audit", "verify"),
    ("export", "some-subject"),
    ("erase", "some-subject"),
    ("erase", "--reapply"),
    ("subjects", "--email", "kari@example.com"),
    ("retention", "run", "--dry-run"),
    ("retention", "run"),
    ("policy", "publish", "2024-01-01"),
    ("token", "create", "--role", "agent"),
    ("agent", "add", "kari@example.com", "--name", "Kari"),
]


def bare_env() -> dict[str, str]:
    """The environment without any of this suite's chatserver settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CHATSERVER_")}


def test_audit_verify_from_an_empty_folder_refuses_and_creates_nothing(tmp_path: Path) -> None:
    """From a folder with no ``chatserver-data`` (the default data_dir), ``audit verify``
    exits 2 naming the missing folder, and creates no folder, database or key."""
    out = subprocess.run(
        [sys.executable, "-m", "chatserver", "audit", "verify"],
        cwd=tmp_path,
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out
    assert f"data directory {tmp_path / 'chatserver-data'} does not exist" in out.stderr
    assert "chatserver migrate" in out.stderr
    assert "intact" not in out.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", NEEDS_A_STORE, ids=" ".join)
def test_commands_refuse_a_store_that_does_not_exist(tmp_path: Path, command: tuple[str]) -> None:
    """A data dir that does not exist, one without a database (SQLite, or a PostgreSQL
    schema never migrated), and a store URL naming a missing file: exit 2 with the path
    or URL named, and nothing created."""
    missing = tmp_path / "no-such-dir"
    store = backend_settings(missing).get("store")
    out = cli(missing, *command, stdin="a long enough passphrase here\n")
    assert out.returncode == 2, out
    if store is None:
        assert f"data directory {missing} does not exist" in out.stderr, out.stderr
    else:  # the schema is checked first: the data is there, not in the data dir
        assert "no chatserver tables" in out.stderr and describe(store) in out.stderr
    assert not missing.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    out = cli(empty, *command, stdin="a long enough passphrase here\n")
    assert out.returncode == 2, out
    store = backend_settings(empty).get("store")
    if store is None:
        assert f"no database at {empty / 'chat.db'}" in out.stderr, out.stderr
    else:
        assert "no chatserver tables" in out.stderr and describe(store) in out.stderr
    assert list(empty.iterdir()) == []

    if store is None:
        url = f"sqlite:///{tmp_path / 'typo.db'}"
        out = cli(empty, *command, env={"CHATSERVER_STORE": url})
        assert out.returncode == 2 and str(tmp_path / "typo.db") in out.stderr, out
        assert not (tmp_path / "typo.db").exists()


def test_audit_verify_names_the_database_it_checked(tmp_path: Path) -> None:
    """After ``migrate``, ``audit verify`` says which database's log is intact: the SQLite
    file's absolute path, or the PostgreSQL URL (never with a password)."""
    assert run(tmp_path, "migrate").returncode == 0
    out = run(tmp_path, "audit", "verify")
    assert out.returncode == 0, out.stderr
    store = backend_settings(tmp_path).get("store") or f"sqlite:///{tmp_path / 'chat.db'}"
    assert re.fullmatch(
        rf"audit log of {re.escape(describe(store))} intact: \d+ entries\n", out.stdout
    ), out.stdout
    assert str(tmp_path) in out.stdout or "postgresql://" in out.stdout


def test_a_printed_store_url_carries_no_password() -> None:
    """PostgreSQL URLs lose their password, in the netloc or the query; SQLite paths are
    made absolute."""
    shown = describe("postgresql://chat:s3cret@db.internal:5432/chat?password=x&schema=a")
    assert shown == "postgresql://chat@db.internal:5432/chat?schema=a"
    assert describe("postgresql://db.internal/chat") == "postgresql://db.internal/chat"
    assert describe("sqlite:///rel/chat.db") == f"sqlite:///{Path.cwd() / 'rel/chat.db'}"
