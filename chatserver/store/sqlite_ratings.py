"""Satisfaction ratings and business hours in the SQLite store (migrations 8 and 9).

Mixed into ``SQLiteStore``, which provides ``writer`` and ``_rows``. A rating
is personal data of the visitor who gave it: it lives and dies with its
conversation (ON DELETE CASCADE), so erasure and retention take it along.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

import msgspec

from chatserver import timeline
from chatserver.business_hours import Schedule, Week
from chatserver.errors import Conflict, NotFound
from chatserver.store.models import Rating
from chatserver.store.writer import Tx

if TYPE_CHECKING:
    from chatserver.store.writer import GroupCommitWriter

RATING_COLUMNS = "conversation_id, visitor_id, agent_id, score, comment, created_at"


class RatingReads:
    """Rating and business-hours reads both stores answer with the same SQL."""

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    async def rating(self, conversation_id: str) -> Rating | None:
        rows = await self._rows(
            f"SELECT {RATING_COLUMNS} FROM ratings WHERE conversation_id = ?", (conversation_id,)
        )
        return Rating(*rows[0]) if rows else None

    async def business_hours(self) -> tuple[Schedule, int] | None:
        """The stored schedule and when it was saved; None when nobody set one."""
        rows = await self._rows(
            "SELECT enabled, time_zone, weekly, closed_dates, updated_at "
            "FROM business_hours WHERE id = 1"
        )
        if not rows:
            return None
        enabled, time_zone, weekly, closed_dates, updated_at = rows[0]
        schedule = Schedule(
            enabled=bool(enabled),
            time_zone=time_zone,
            weekly=msgspec.json.decode(weekly, type=Week),
            closed_dates=json.loads(closed_dates),
        )
        return schedule, updated_at


class SQLiteRatings(RatingReads):
    writer: GroupCommitWriter

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    # ------------------------------------------------------------ ratings

    async def save_rating(
        self,
        conversation_id: str,
        *,
        visitor_id: str,
        score: int,
        comment: str | None,
        now: int,
    ) -> tuple[Rating, bool]:
        """Rate a resolved conversation; a later rating replaces the earlier one.

        Answers the rating and whether it replaced one. ``Conflict`` unless the
        conversation is resolved: checked in the storing transaction, so a
        reopening in between cannot slip past. The same transaction stores the `rated`
        event message (``rating.events``).
        """

        def op(conn: sqlite3.Connection, tx: Tx) -> tuple[Rating, bool]:
            from chatserver.store.sqlite import append_event  # sqlite.py imports this module

            row = conn.execute(
                "SELECT status, assignee_id FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if row is None:
                raise NotFound("no such conversation")
            if row[0] != "resolved":
                raise Conflict("a conversation can be rated once it is resolved")
            replaced = conn.execute(
                "SELECT 1 FROM ratings WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()
            rating = Rating(
                conversation_id=conversation_id,
                visitor_id=visitor_id,
                agent_id=row[1],
                score=score,
                comment=comment,
                created_at=now,
            )
            conn.execute(
                f"INSERT INTO ratings ({RATING_COLUMNS}) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT (conversation_id) DO UPDATE SET visitor_id = excluded.visitor_id, "
                "agent_id = excluded.agent_id, score = excluded.score, "
                "comment = excluded.comment, created_at = excluded.created_at",
                (conversation_id, visitor_id, row[1], score, comment, now),
            )
            event = append_event(conn, tx, conversation_id, timeline.rated(score, comment), now)
            return msgspec.structs.replace(rating, events=(event,)), replaced is not None

        return await self.writer.run(op)

    async def csat_rows(self, start: int, end: int) -> dict[str, list[Any]]:
        """Ratings given in [start, end), grouped: by score, by agent (with name), by UTC day.

        Counts and sums only, so nothing about one rating leaves the store here.
        """
        window = "r.created_at >= ? AND r.created_at < ?"
        by_score = await self._rows(
            f"SELECT r.score, count(*) FROM ratings r WHERE {window} GROUP BY 1 ORDER BY 1",
            (start, end),
        )
        by_agent = await self._rows(
            "SELECT r.agent_id, a.name, count(*), sum(r.score), sum(r.score >= 4) "
            "FROM ratings r JOIN agents a ON a.id = r.agent_id "
            f"WHERE {window} GROUP BY r.agent_id ORDER BY a.name, r.agent_id",
            (start, end),
        )
        by_day = await self._rows(
            "SELECT date(r.created_at / 1000000, 'unixepoch'), count(*), sum(r.score), "
            f"sum(r.score >= 4) FROM ratings r WHERE {window} GROUP BY 1 ORDER BY 1",
            (start, end),
        )
        return {
            "by_score": [tuple(r) for r in by_score],
            "by_agent": [tuple(r) for r in by_agent],
            "by_day": [tuple(r) for r in by_day],
        }

    # ------------------------------------------------------------ business hours

    async def save_business_hours(self, schedule: Schedule, now: int) -> None:
        await self.writer.run(
            lambda conn, tx: conn.execute(
                "INSERT INTO business_hours (id, enabled, time_zone, weekly, closed_dates, "
                "updated_at) VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "enabled = excluded.enabled, time_zone = excluded.time_zone, "
                "weekly = excluded.weekly, closed_dates = excluded.closed_dates, "
                "updated_at = excluded.updated_at",
                (
                    int(schedule.enabled),
                    schedule.time_zone,
                    msgspec.json.encode(schedule.weekly).decode(),
                    json.dumps(schedule.closed_dates),
                    now,
                ),
            )
        )
