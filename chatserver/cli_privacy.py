"""The privacy commands of ``chatserver``: retention, export, erase, audit, subjects, policy.

Each refuses a store that does not exist (``cli.main`` checks it with
``cli_store``), opens the store itself (applying migrations), acts through the same
``Privacy`` object the API uses, and is audited as the operator at the
command line (``operator:<login name>``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec

from chatserver.broker import broker_from_url, is_redis
from chatserver.cli_store import describe
from chatserver.clock import Clock
from chatserver.config import Settings
from chatserver.hub.hub import erased_event
from chatserver.privacy.service import Actor, Privacy
from chatserver.sessions import load_secret_key
from chatserver.store import store_from_url


def add_commands(sub: Any) -> None:
    retention = sub.add_parser("retention", help="apply the retention rules (P8)")
    retention_sub = retention.add_subparsers(dest="retention_command", required=True)
    run = retention_sub.add_parser("run", help="remove what the retention rules say is expired")
    run.add_argument(
        "--dry-run", action="store_true", help="print what would go per category; change nothing"
    )

    export = sub.add_parser("export", help="a person's data-access export (P5)")
    export.add_argument("subject_id")
    export.add_argument("--output", help="file to write (default: stdout)")
    export.add_argument("--format", choices=("json", "zip"), default=None)
    export.add_argument("--locale", choices=("en", "nb"), default="en")

    erase = sub.add_parser("erase", help="erase a person (P7); idempotent")
    erase.add_argument("subject_id", nargs="?")
    erase.add_argument(
        "--reapply",
        action="store_true",
        help="after restoring a backup: erase again everyone in the erasure ledger",
    )
    erase.add_argument("--ledger", help="ledger file (default: DATA_DIR/erasure-ledger)")

    audit = sub.add_parser("audit", help="the audit log (P14)")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="check the hash chain; exit 1 if it is broken")

    subjects = sub.add_parser("subjects", help="find a person by account id, email or national id")
    subjects.add_argument("--account-id")
    subjects.add_argument("--email")
    subjects.add_argument("--pid", help="national id number (matched through its keyed hash)")

    policy = sub.add_parser("policy", help="privacy policy versions (P9)")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    publish = policy_sub.add_parser("publish", help="publish a new version; it applies at once")
    publish.add_argument("version")
    publish.add_argument("--url", default=None)


COMMANDS = ("retention", "export", "erase", "audit", "subjects", "policy")


def operator() -> Actor:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    return Actor("operator", name)


@asynccontextmanager
async def _privacy(settings: Settings) -> AsyncIterator[Privacy]:
    store = store_from_url(settings.store_url, synchronous=settings.sqlite_synchronous)
    await store.open()
    # With a shared broker, the running servers hear of an erasure made here and close
    # the person's sockets; the in-process broker reaches no other process.
    broker = broker_from_url(settings.broker) if is_redis(settings.broker) else None
    try:
        if broker is not None:
            await broker.start(lambda event: None)

        def erased(visitor_ids: tuple[str, ...], conversation_ids: tuple[str, ...]) -> None:
            if broker is not None:
                broker.publish(erased_event(visitor_ids, conversation_ids))

        yield Privacy(
            store,
            settings,
            Clock(),
            secret_key=load_secret_key(settings.secret_key, settings.data_dir),
            on_erased=erased,
        )
    finally:
        if broker is not None:
            await broker.close()
        await store.close()


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


async def _retention(privacy: Privacy, args: argparse.Namespace) -> int:
    report = await privacy.retention(operator(), dry_run=args.dry_run)
    verb = "would remove" if report.dry_run else "removed"
    print(f"retention run {report.id} ({'dry run' if report.dry_run else 'real run'})")
    print(f"{'category':<10} {'keep':>8}  {'cutoff':<28} {verb}")
    for c in report.categories:
        keep = f"{c.keep_seconds // 86400}d" if c.keep_seconds else "forever"
        counts = ", ".join(f"{v} {k}" for k, v in c.counts.items()) or "-"
        print(f"{c.category:<10} {keep:>8}  {c.cutoff or '-':<28} {counts}")
    return 0


async def _export(privacy: Privacy, args: argparse.Namespace) -> int:
    fmt = args.format or ("zip" if args.output and args.output.endswith(".zip") else "json")
    if fmt == "json":
        body = await privacy.export_json(operator(), args.subject_id)
        if args.output:
            await asyncio.to_thread(Path(args.output).write_bytes, body)
        else:
            sys.stdout.buffer.write(body)
        return 0
    if not args.output:
        print("chatserver: a ZIP export needs --output FILE", file=sys.stderr)
        return 2
    path = await privacy.export_zip(operator(), args.subject_id, locale=args.locale)
    shutil.copyfile(path, args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


async def _erase(privacy: Privacy, args: argparse.Namespace) -> int:
    if args.reapply:
        ledger = Path(args.ledger) if args.ledger else None
        again = await privacy.reapply_erasures(operator(), ledger)
        _print({"erased_again": again})
        return 0
    if not args.subject_id:
        print("chatserver: erase needs SUBJECT_ID (or --reapply)", file=sys.stderr)
        return 2
    _print(await privacy.erase(operator(), args.subject_id))
    return 0


async def _audit(privacy: Privacy, args: argparse.Namespace) -> int:
    report = await privacy.verify_audit()
    checked = describe(privacy.settings.store_url)  # which database: never a guess
    if report.ok:
        print(f"audit log of {checked} intact: {report.entries} entries")
        return 0
    print(
        f"audit log of {checked} BROKEN at entry {report.broken_at}: {report.problem}",
        file=sys.stderr,
    )
    return 1


async def _subjects(privacy: Privacy, args: argparse.Namespace) -> int:
    found = await privacy.find(
        operator(), account_id=args.account_id, email=args.email, pid=args.pid
    )
    _print([msgspec.to_builtins(s) for s in found])
    return 0


async def _policy(privacy: Privacy, args: argparse.Namespace) -> int:
    policy = await privacy.publish_policy(operator(), args.version, args.url)
    _print(msgspec.to_builtins(policy))
    return 0


_HANDLERS: dict[str, Callable[[Privacy, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "retention": _retention,
    "export": _export,
    "erase": _erase,
    "audit": _audit,
    "subjects": _subjects,
    "policy": _policy,
}


def run(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> int:
        async with _privacy(settings) as privacy:
            return await _HANDLERS[args.command](privacy, args)

    return asyncio.run(go())
