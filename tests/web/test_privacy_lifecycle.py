"""One person's whole life in the chat, end to end through real sockets and the real API:
anonymous chat, verification mid-chat (merge), a second device, export (JSON and ZIP),
rectification with approval, retention with a legal hold, erasure, the database's bytes
free of them, and an audit chain that verifies and then catches tampering."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import pytest

from chatserver.clock import Clock
from tests.helpers import (
    BACKEND,
    Server,
    cli,
    database_bytes,
    db_rows,
    identity_token,
    make_settings,
    msg_id,
    running_server,
)

DAY_US = 86_400 * 1_000_000

# Unmistakable values: the byte scan at the end looks for each of them.
NAME = "Kari Zqxnordmann"
EMAIL = "kari.zqx@example.no"
PID = "01019012345"
SECRETS = [
    "my order number is XK7781Q and it never came",
    "the parcel went to Zqxveien 12",
    "written from my phone qzvphone",
]


class ShiftedClock(Clock):
    """Real time plus an offset the test moves forward (retention needs old data)."""

    def __init__(self) -> None:
        self.offset_us = 0

    def now_us(self) -> int:
        return super().now_us() + self.offset_us


async def _send(client: Any, body: str, conversation_id: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "send", "client_msg_id": msg_id(), "body": body}
    if conversation_id is not None:
        frame["conversation_id"] = conversation_id
    await client.send(**frame)
    return await client.until("ack", client_msg_id=frame["client_msg_id"])


async def test_a_persons_whole_life(tmp_path: Path) -> None:
    """Every privacy promise in one story, checked field by field against what was sent."""
    clock = ShiftedClock()
    settings = make_settings(tmp_path, retention_resolved="30d", retention_anonymous="30d")
    async with running_server(settings, clock=clock) as server:
        admin = await server.token("admin", name="Ada Admin")
        compliance = await server.token("compliance", name="Cato Compliance")
        agent = await server.token("agent", name="Agnes Agent")
        async with server.http(admin) as http:
            r = await http.post("/api/v1/policies", json={"version": "2026-11", "url": "/p"})
            assert r.status_code == 201

        # 1. Anonymous chat, consenting to the current notice.
        async with server.visitor(hello={"consent": {"version": "2026-11"}}) as (tab, welcome):
            assert welcome["account"] is None and welcome["policy"]["accepted"] is True
            token = welcome["visitor_token"]
            ack = await _send(tab, SECRETS[0])
            conversation = ack["conversation_id"]
        async with server.http(agent) as http:
            for body, kind in (("Sorry to hear! Checking.", "text"), ("VIP?", "note")):
                r = await http.post(
                    f"/api/v1/conversations/{conversation}/messages",
                    json={"client_msg_id": msg_id(), "body": body, "kind": kind},
                )
                assert r.status_code == 201, r.text

        # Someone else chats anonymously too: their data must never reach the export.
        async with server.visitor(hello={"consent": {"version": "2026-11"}}) as (other, _):
            other_ack = await _send(other, "a stranger's words zzstranger")

        # 2. Verified mid-chat: the same browser says hello again with an identity token.
        claims = {"name": NAME, "email": EMAIL, "idp": "bankid", "pid": PID}
        hello = {"visitor_token": token, "identity": identity_token("platform-42", **claims)}
        async with server.visitor(hello=hello) as (tab, welcome):
            assert welcome["account"]["name"] == NAME
            assert welcome["account"]["verified_by"] == "bankid"
            assert welcome["merged"] == 1
            assert [c["id"] for c in welcome["conversations"]] == [conversation]
            subject_id = welcome["account"]["id"]
            await _send(tab, SECRETS[1], conversation)

        # 3. A second device: no visitor token, the same identity → the same history.
        phone_hello = {"identity": identity_token("platform-42", **claims)}
        async with (
            server.agent(agent) as watcher,
            server.visitor(hello=phone_hello) as (phone, welcome),
        ):
            assert welcome["visitor_id"] != ""
            summary = welcome["conversations"]
            # The merge's `verified` event line (seq 4, agents only) came before SECRETS[1].
            assert [c["id"] for c in summary] == [conversation] and summary[0]["last_seq"] == 5
            await phone.send(type="resume", conversation_id=conversation, after_seq=0)
            replay = []
            while (frame := await phone.recv())["type"] != "resumed":
                replay.append(frame)
            assert [m["body"] for m in replay] == [
                SECRETS[0],
                "Sorry to hear! Checking.",
                SECRETS[1],
            ]  # the note (seq 3) is not for visitors
            await _send(phone, SECRETS[2], conversation)

            # 4. The compliance officer finds the person three ways.
            async with server.http(compliance) as http:
                for query in (
                    {"email": EMAIL.upper()},
                    {"account_id": "platform-42"},
                    {"pid": PID},
                ):
                    found = (await http.get("/api/v1/subjects", params=query)).json()["items"]
                    assert [s["id"] for s in found] == [subject_id], query

                # 5. Export, JSON: checked against what was sent.
                r = await http.get(f"/api/v1/subjects/{subject_id}/export")
                assert r.status_code == 200
                export = r.json()
            assert export["format_version"] == 1
            profile = export["subject"]
            assert (profile["name"], profile["email"], profile["account_id"]) == (
                NAME,
                EMAIL,
                "platform-42",
            )
            assert profile["verification"]["idp"] == "bankid"
            assert profile["national_id_on_record"] is True
            assert PID not in json.dumps(export)  # only its keyed hash was ever stored
            [thread] = export["conversations"]
            assert thread["id"] == conversation
            assert [
                (m["seq"], m["kind"], m["author"]["role"], m["body"]) for m in thread["messages"]
            ] == [
                (1, "text", "visitor", SECRETS[0]),
                (2, "text", "agent", "Sorry to hear! Checking."),
                (3, "note", "agent", "VIP?"),
                (4, "event", "system", "Verified by BankID"),
                (5, "text", "visitor", SECRETS[1]),
                (6, "text", "visitor", SECRETS[2]),
            ]
            assert thread["messages"][1]["author"]["name"] == "Agnes Agent"
            # The event line of the merge, with what it recorded.
            assert thread["messages"][3]["event"] == {
                "type": "verified",
                "idp": "bankid",
                "name": NAME,
            }
            assert all("event" not in m for i, m in enumerate(thread["messages"]) if i != 3)
            assert all(m["ts"].endswith("Z") for m in thread["messages"])
            assert "zzstranger" not in json.dumps(export)
            assert len(export["sessions"]) == 3  # anonymous tab, verified tab, phone
            assert {s["ip"] for s in export["sessions"]} == {"127.0.0.1"}
            assert [c["policy_version"] for c in export["consents"]] == ["2026-11"]
            assert export["rectifications"] == []

            # ZIP: export.json, transcript.html and a manifest whose hashes hold.
            async with server.http(compliance) as http:
                r = await http.get(f"/api/v1/subjects/{subject_id}/export?format=zip&locale=nb")
            assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
            archive = zipfile.ZipFile(io.BytesIO(r.content))
            assert set(archive.namelist()) == {"export.json", "transcript.html", "manifest.json"}
            manifest = json.loads(archive.read("manifest.json"))
            for entry in manifest["files"]:
                assert hashlib.sha256(archive.read(entry["name"])).hexdigest() == entry["sha256"]
            zipped = json.loads(archive.read("export.json"))
            assert zipped["conversations"] == export["conversations"]
            assert SECRETS[0] in archive.read("transcript.html").decode()
            assert list((tmp_path / "exports").glob("*.zip"))  # kept until retention or erasure

            # 6. Rectification: email came from the eID (needs a second person), phone did not.
            async with server.http(compliance) as http:
                r = await http.post(
                    f"/api/v1/subjects/{subject_id}/rectifications",
                    json={"field": "email", "value": "kari@new.example.no"},
                )
                assert r.status_code == 201 and r.json()["status"] == "pending"
                pending = r.json()["id"]
                r = await http.post(
                    f"/api/v1/subjects/{subject_id}/rectifications",
                    json={"field": "phone", "value": "+47 400 00 000"},
                )
                assert r.json()["status"] == "applied"
                r = await http.post(f"/api/v1/rectifications/{pending}/approve")
                assert r.status_code == 403  # not by who asked for it
            async with server.http(admin) as http:
                r = await http.post(f"/api/v1/rectifications/{pending}/approve")
                assert r.status_code == 200 and r.json()["status"] == "applied"
            async with server.http(compliance) as http:
                export = (await http.get(f"/api/v1/subjects/{subject_id}/export")).json()
            assert export["subject"]["email"] == "kari@new.example.no"
            assert export["subject"]["phone"] == "+47 400 00 000"
            assert [
                (r["field"], r["status"], r["old_value"]) for r in export["rectifications"]
            ] == [
                ("email", "applied", EMAIL),
                ("phone", "applied", None),
            ]

            # 7. Retention, with the person on legal hold.
            async with server.http(agent) as http:
                r = await http.patch(
                    f"/api/v1/conversations/{conversation}", json={"status": "resolved"}
                )
                assert r.status_code == 200
            async with server.http(compliance) as http:
                r = await http.put(f"/api/v1/subjects/{subject_id}/legal-hold", json={"hold": True})
                assert r.status_code == 200
                clock.offset_us = 400 * DAY_US
                dry = await _retention(http, dry_run=True)
                assert dry["anonymous"] == {"conversations": 1, "messages": 1}  # the stranger's
                assert dry["resolved"] == {"conversations": 0, "messages": 0}  # held
                real = await _retention(http, dry_run=False)
                assert real["anonymous"] == dry["anonymous"]
                assert real["resolved"] == dry["resolved"]
                assert real["exports"] == {"export_files": 1}
                assert not list((tmp_path / "exports").glob("*.zip"))
                assert await server.state.store.conversation(other_ack["conversation_id"]) is None
                assert await server.state.store.conversation(conversation) is not None
                r = await http.post(f"/api/v1/subjects/{subject_id}/erasure")
                assert r.status_code == 409  # nor erased while held (Art. 17(3)(e))
                assert r.json()["error"]["code"] == "conflict"
                await http.put(f"/api/v1/subjects/{subject_id}/legal-hold", json={"hold": False})
                released = await _retention(http, dry_run=True)
                # Its five messages and two event lines (verified, resolved).
                assert released["resolved"] == {"conversations": 1, "messages": 7}
                # A fresh export left on disk, for erasure to find.
                r = await http.get(f"/api/v1/subjects/{subject_id}/export?format=zip")
                assert r.status_code == 200

            # 8. Erasure: the phone's socket closes, agents are told, a tombstone stays.
            await watcher.send(type="watch", conversation_id=conversation)
            await watcher.until("watching")
            await server.state.store.index_now()  # the words are in the search index too
            async with server.http(compliance) as http:
                r = await http.post(f"/api/v1/subjects/{subject_id}/erasure")
                assert r.status_code == 200, r.text
                erased = r.json()
                assert erased["already_erased"] is False
                assert erased["erased"]["conversations"] == 1
                assert erased["erased"]["messages"] == 7  # with the two event lines
                assert erased["erased"]["visitors"] == 2  # the browser and the phone
                again = (await http.post(f"/api/v1/subjects/{subject_id}/erasure")).json()
                assert again["already_erased"] is True
                assert again["tombstone_id"] == erased["tombstone_id"]
                r = await http.get(f"/api/v1/subjects/{subject_id}/export")
                assert r.status_code == 404
            assert await phone.closed() == 1008
            await watcher.until("erased", conversation_ids=[conversation])

        # The old visitor token opens nothing: a new, empty visitor.
        async with server.visitor(hello={"visitor_token": token}) as (_, welcome):
            assert welcome["conversations"] == [] and welcome["account"] is None
        assert not list((tmp_path / "exports").glob("*"))

        # 9. While the server runs, the database file and its WAL hold none of the
        # person's words or profile (nor the stranger's, whom retention took).
        raw = database_bytes(tmp_path)
        for text in [*SECRETS, NAME, EMAIL, "kari@new.example.no", "+47 400 00 000", PID]:
            assert text.encode() not in raw, text
        assert b"zzstranger" not in raw

        # 10. The audit log recorded each act, and its chain holds.
        async with server.http(compliance) as http:
            entries = []
            cursor = None
            while True:
                page = (
                    await http.get("/api/v1/audit", params={"cursor": cursor} if cursor else {})
                ).json()
                entries += page["items"]
                if not (cursor := page["next_cursor"]):
                    break
            actions = [e["action"] for e in entries]
            for action in (
                "policy.publish",
                "subject.search",
                "subject.export",
                "rectification.request",
                "rectification.approve",
                "subject.legal_hold",
                "retention.run",
                "subject.erasure",
            ):
                assert action in actions, action
            assert (await http.get("/api/v1/audit/verify")).json()["ok"] is True

    # 11. Tampering with one entry, or removing one, is detected.
    assert cli(tmp_path, "audit", "verify").returncode == 0
    seq = db_rows(tmp_path, "SELECT seq FROM audit_log WHERE action = 'subject.erasure'")[0][0]
    db_rows(tmp_path, "UPDATE audit_log SET actor_id = 'someone else' WHERE seq = ?", (seq,))
    result = cli(tmp_path, "audit", "verify")
    assert result.returncode == 1 and f"entry {seq}" in result.stderr
    db_rows(tmp_path, "UPDATE audit_log SET actor_id = NULL WHERE seq = ?", (seq,))
    db_rows(tmp_path, "DELETE FROM audit_log WHERE seq = ?", (seq - 1,))
    assert cli(tmp_path, "audit", "verify").returncode == 1


async def _retention(http: Any, *, dry_run: bool) -> dict[str, dict[str, int]]:
    r = await http.post("/api/v1/retention/runs", json={"dry_run": dry_run})
    assert r.status_code == 201, r.text
    return {c["category"]: c["counts"] for c in r.json()["categories"]}


async def test_a_verified_person_sees_new_conversations_on_every_device(server: Server) -> None:
    """A conversation started on one device reaches the person's other devices live."""
    hello = {"identity": identity_token("platform-7", name="Ola")}
    async with (
        server.visitor(hello=hello) as (laptop, _),
        server.visitor(hello={"identity": identity_token("platform-7", name="Ola")}) as (
            phone,
            _,
        ),
    ):
        ack = await _send(laptop, "started on the laptop")
        created = await phone.until("conversation", id=ack["conversation_id"])
        assert created["status"] == "open"
        message = await phone.until("message", conversation_id=ack["conversation_id"])
        assert message["body"] == "started on the laptop"
        await _send(phone, "answered from the phone", ack["conversation_id"])
        assert (await laptop.until("message"))["body"] == "answered from the phone"


async def test_another_person_on_the_same_browser_starts_afresh(server: Server) -> None:
    """A browser whose visitor belongs to one account, used by someone else who logs in, does
    not show or merge the first person's conversations."""
    async with server.visitor(hello={"identity": identity_token("alice")}) as (tab, welcome):
        token = welcome["visitor_token"]
        await _send(tab, "alice's question")
    hello = {"visitor_token": token, "identity": identity_token("bob")}
    async with server.visitor(hello=hello) as (_, welcome):
        assert welcome["conversations"] == []
        assert welcome["visitor_token"] != token
        assert welcome["merged"] == 0


@pytest.mark.skipif(
    BACKEND != "sqlite", reason="restores a SQLite file; PostgreSQL's restore is pg_restore"
)
async def test_erasure_reaches_a_restored_backup(tmp_path: Path) -> None:
    """A backup taken before an erasure, restored later, brings the person back; the
    erasure ledger (kept outside the database) lets `erase --reapply` take them out again."""
    async with running_server(make_settings(tmp_path)) as server:
        async with server.visitor(hello={"identity": identity_token("p-1", name=NAME)}) as (
            tab,
            welcome,
        ):
            subject_id = welcome["account"]["id"]
            await _send(tab, SECRETS[0])
        backup = tmp_path / "backup.db"
        with sqlite3.connect(tmp_path / "chat.db") as live, sqlite3.connect(backup) as copy:
            live.backup(copy)
        compliance = await server.token("compliance")
        async with server.http(compliance) as http:
            r = await http.post(f"/api/v1/subjects/{subject_id}/erasure")
            assert r.status_code == 200
    for leftover in tmp_path.glob("chat.db*"):
        leftover.unlink()
    backup.rename(tmp_path / "chat.db")
    with sqlite3.connect(tmp_path / "chat.db") as db:
        assert db.execute("SELECT count(*) FROM accounts").fetchone()[0] == 1  # back again

    result = cli(tmp_path, "erase", "--reapply")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"erased_again": [subject_id]}
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("chat.db*"))
    assert SECRETS[0].encode() not in raw and NAME.encode() not in raw
    again = cli(tmp_path, "erase", "--reapply")
    assert json.loads(again.stdout) == {"erased_again": []}


async def test_messages_racing_an_erasure_do_not_bring_data_back(server: Server) -> None:
    """A person keeps sending while they are erased: whatever the order in which the writer
    sees the sends and the erasure, nothing of theirs is stored afterwards."""
    hello = {"identity": identity_token("racer", name="Rita Racer")}
    compliance = await server.token("compliance")
    async with server.visitor(hello=hello) as (tab, welcome):
        subject_id, visitor_id = welcome["account"]["id"], welcome["visitor_id"]
        conversation = (await _send(tab, "first"))["conversation_id"]

        async def keep_sending() -> None:
            for i in range(200):
                try:
                    await tab.send(
                        type="send",
                        client_msg_id=msg_id(),
                        conversation_id=conversation if i % 2 else None,
                        body=f"racing {i}",
                    )
                except Exception:  # the server closed the socket: the person is gone
                    return

        async with server.http(compliance) as http:
            sending = asyncio.create_task(keep_sending())
            r = await http.post(f"/api/v1/subjects/{subject_id}/erasure")
            await sending
        assert r.status_code == 200
        assert await tab.closed() == 1008
    await server.state.store.writer.idle()
    data_dir = Path(server.state.settings.data_dir)
    assert db_rows(data_dir, "SELECT count(*) FROM visitors WHERE id = ?", (visitor_id,)) == [(0,)]
    assert db_rows(
        data_dir, "SELECT count(*) FROM messages WHERE author_id = ?", (visitor_id,)
    ) == [(0,)]
    assert db_rows(
        data_dir,
        "SELECT count(*) FROM conversations WHERE visitor_id = ? OR account_id = ?",
        (visitor_id, subject_id),
    ) == [(0,)]
    assert db_rows(data_dir, "SELECT count(*) FROM visitor_sessions") == [(0,)]
