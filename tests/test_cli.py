"""The command line: migrate, agent add, token create, and refusing bad input."""

from __future__ import annotations

from pathlib import Path

from chatserver.auth import token_hash, verify_password
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
