"""The ``chatserver`` command: serve, migrate, agents and tokens (privacy commands in
``cli_privacy``).

Every command that touches the store applies pending migrations first (opening
the store does). Only ``serve`` and ``migrate`` create a store; the others refuse
one that does not exist (``cli_store``), with exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatserver import __version__, cli_privacy, cli_store, logs, passwords
from chatserver.auth import ROLES, hash_password, new_token, token_hash
from chatserver.broker import is_redis
from chatserver.clock import Clock, uuid7
from chatserver.config import SETTINGS, Settings, SettingsError
from chatserver.errors import ChatError
from chatserver.store import store_from_url
from chatserver.store.base import Store

DEMO_EMAIL = "demo@example.com"
# Commands that work on an existing store and refuse to make one (``serve`` and
# ``migrate`` create it): see ``cli_store``.
NEEDS_A_STORE = ("agent", "token", *cli_privacy.COMMANDS)


def _parser() -> argparse.ArgumentParser:
    settings_help = "\n".join(f"  {s.env:<36} {s.help}" for s in SETTINGS)
    parser = argparse.ArgumentParser(
        prog="chatserver",
        description="Self-hosted, privacy-first live support chat.",
        epilog="settings (environment variables win over --config):\n" + settings_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--config", help="TOML settings file")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--config", dest="config_sub", help="TOML settings file")
    serve.add_argument(
        "--workers", type=int, default=None, help="server processes (default: the setting)"
    )
    serve.add_argument(
        "--demo", action="store_true", help="also serve /demo and print a demo agent's login"
    )

    sub.add_parser("migrate", help="apply pending schema migrations")

    agent = sub.add_parser("agent", help="manage agents")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    add = agent_sub.add_parser("add", help="add an agent; the password is read from stdin")
    add.add_argument("email")
    add.add_argument("--name", required=True)
    add.add_argument("--role", choices=ROLES, default="agent")

    token = sub.add_parser("token", help="manage API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a bearer token; prints only the token")
    create.add_argument("--role", choices=ROLES, required=True)
    create.add_argument("--name", default=None, help="the bot's name (default: its role)")
    cli_privacy.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = getattr(args, "config_sub", None) or args.config
    try:
        settings = Settings.load(config)
    except (SettingsError, OSError) as exc:
        print(f"chatserver: {exc}", file=sys.stderr)
        return 2
    if args.command in NEEDS_A_STORE:
        try:
            cli_store.require_existing(settings, uses_data_dir=args.command in cli_privacy.COMMANDS)
        except cli_store.MissingStore as exc:
            print(f"chatserver: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # a PostgreSQL server that cannot be reached
            shown = cli_store.describe(settings.store_url)
            print(f"chatserver: cannot reach the store {shown}: {exc}", file=sys.stderr)
            return 1
    try:
        if args.command == "serve":
            if args.workers is not None:
                settings = settings.replace(workers=args.workers)
            return _serve(settings, args.host, args.port, demo=args.demo)
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "agent":
            return asyncio.run(_agent_add(settings, args.email, args.name, args.role))
        if args.command == "token":
            return asyncio.run(_token_create(settings, args.role, args.name))
        if args.command in cli_privacy.COMMANDS:
            return cli_privacy.run(settings, args)
    except ChatError as exc:
        print(f"chatserver: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except ValueError as exc:  # an unsupported store or broker URL
        print(f"chatserver: {exc}", file=sys.stderr)
        return 2
    return 2


def _open(settings: Settings) -> Store:
    return store_from_url(settings.store_url, synchronous=settings.sqlite_synchronous)


async def _migrate(settings: Settings) -> int:
    store = _open(settings)
    await store.open()
    try:
        print(f"schema version {await store.schema_version()}")
    finally:
        await store.close()
    return 0


async def _agent_add(settings: Settings, email: str, name: str, role: str) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    # The rule of the API and the console (chatserver.passwords).
    weak = passwords.weakness(password, email=email.strip().lower(), name=name)
    if weak is not None:
        print(f"chatserver: {weak}", file=sys.stderr)
        return 2
    store = _open(settings)
    await store.open()
    try:
        agent = await store.add_agent(
            agent_id=uuid7(),
            email=email.strip().lower(),
            name=name,
            role=role,
            password_hash=await hash_password(password),
            now=Clock().now_us(),
        )
    finally:
        await store.close()
    print(agent.id)
    return 0


async def _token_create(settings: Settings, role: str, name: str | None) -> int:
    store = _open(settings)
    await store.open()
    now = Clock().now_us()
    try:
        bot = await store.add_agent(
            agent_id=uuid7(),
            email=None,
            name=name or f"{role} bot",
            role=role,
            password_hash=None,
            now=now,
            kind="bot",
        )
        token = new_token("cs")
        await store.create_api_token(uuid7(), token_hash(token), bot.id, now)
    finally:
        await store.close()
    print(token)
    return 0


def _demo_identity_settings(settings: Settings) -> Settings:
    """The demo signs identity tokens itself (``/demo/identity``): give it a secret of its
    own, kept in the data folder, unless one is configured."""
    if settings.identity_secret or settings.identity_jwks:
        return settings
    path = Path(settings.data_dir) / "demo-identity-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    changes = {"identity_secret": path.read_text().strip()}
    if not settings.pid_pepper:
        changes["pid_pepper"] = "demo pepper " + changes["identity_secret"]
    return settings.replace(**changes)


async def _prepare_demo(settings: Settings) -> tuple[str, str, str, str]:
    """A demo admin (same login on every start), a token for it, a compliance token, and a
    privacy notice."""
    store = _open(settings)
    await store.open()
    now = Clock().now_us()
    login_file = Path(settings.data_dir) / "demo-login.txt"
    try:
        found = await store.agent_credentials(DEMO_EMAIL)
        stale = login_file.exists() and len(login_file.read_text().split()) < 3
        if found is None or not login_file.exists() or stale:
            password = secrets.token_urlsafe(12)
            while passwords.weakness(password, email=DEMO_EMAIL, name="Demo Agent"):
                password = secrets.token_urlsafe(12)  # the rule every password follows
            if found is None:
                agent = await store.add_agent(
                    agent_id=uuid7(),
                    email=DEMO_EMAIL,
                    name="Demo Agent",
                    role="admin",
                    password_hash=await hash_password(password),
                    now=now,
                )
            else:
                agent = found[0]
            token = new_token("cs")
            await store.create_api_token(uuid7(), token_hash(token), agent.id, now)
            officer = await store.add_agent(
                agent_id=uuid7(),
                email=None,
                name="Demo Compliance",
                role="compliance",
                password_hash=None,
                now=now,
                kind="bot",
            )
            compliance = new_token("cs")
            await store.create_api_token(uuid7(), token_hash(compliance), officer.id, now)
            login_file.parent.mkdir(parents=True, exist_ok=True)
            login_file.unlink(missing_ok=True)
            fd = os.open(login_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{password}\n{token}\n{compliance}\n")
        password, token, compliance = login_file.read_text().split()[:3]
        if await store.current_policy() is None:
            await store.publish_policy("2019-06-01", "/demo/privacy", now)
    finally:
        await store.close()
    return DEMO_EMAIL, password, token, compliance


def _serve(settings: Settings, host: str, port: int, *, demo: bool) -> int:
    import uvicorn

    from chatserver.web.app import create_app

    extra: tuple[str, ...] = ()
    if demo:
        settings = _demo_identity_settings(settings)
        email, password, token, compliance = asyncio.run(_prepare_demo(settings))
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
        extra = (f"http://{shown}:{port}", f"http://127.0.0.1:{port}", f"http://{host}:{port}")
        print(
            f"\n  chatserver demo\n"
            f"  host page with the widget:  http://{shown}:{port}/demo\n"
            f"  agent console:              http://{shown}:{port}/console\n"
            f"  demo agent login:           {email} / {password}\n"
            f"  demo agent API token:       {token}\n"
            f"  demo compliance API token:  {compliance}\n",
            flush=True,
        )
    workers = int(settings.workers)
    if workers > 1 and not is_redis(settings.broker):
        raise SettingsError(
            "several workers need a shared broker: set CHATSERVER_BROKER=redis://host:port/0"
        )
    app: Any
    if workers > 1:
        from chatserver.web import worker

        worker.hand_over(settings, demo=demo, extra_origins=extra)
        app = "chatserver.web.worker:app"
    else:
        app = logs.with_access_log(create_app(settings, demo=demo, extra_origins=extra), settings)
    uvicorn.run(
        app,
        factory=workers > 1,
        workers=workers,
        host=host,
        port=port,
        log_level=settings.log_level,
        ws="websockets-sansio",
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=settings.heartbeat_interval,
        ws_ping_timeout=settings.heartbeat_interval,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        lifespan="on",
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        # No line of uvicorn's names a client; our own access log, if on, truncates IPs.
        log_config=logs.log_config(settings),
        access_log=False,
        server_header=False,
    )
    return 0
