"""Satisfaction ratings and business hours in the PostgreSQL store (migrations 8 and 9):
the counterpart of ``sqlite_ratings``.

Mixed into ``PostgresStore``, which provides ``writer`` (a ``PgWriter``) and ``_rows``.
A rating is personal data of the visitor who gave it: it lives and dies with its
conversation (ON DELETE CASCADE), so erasure and retention take it along.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgspec

from chatserver import timeline
from chatserver.business_hours import Schedule
from chatserver.errors import Conflict, NotFound
from chatserver.store.models import Rating
from chatserver.store.pg_messages import append_event
from chatserver.store.sqlite_ratings import RATING_COLUMNS, RatingReads

if TYPE_CHECKING:
    import asyncpg

    from chatserver.store.pg_writer import PgTx, PgWriter

# The UTC day of a time in µs, as SQLite's ``date(t / 1000000, 'unixepoch')`` writes it.
_UTC_DAY = "to_char(to_timestamp(r.created_at / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


class PgRatings(RatingReads):
    writer: PgWriter

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
        conversation is resolved: checked with the conversation's row locked until the
        commit, so a reopening on another node cannot slip past, and two ratings of one
        conversation take turns (the second one sees the first). The same transaction
        stores the `rated` event message (``rating.events``).
        """

        async def op(conn: asyncpg.Connection, tx: PgTx) -> tuple[Rating, bool]:
            row = await conn.fetchrow(
                "SELECT status, assignee_id FROM conversations WHERE id = $1 FOR NO KEY UPDATE",
                conversation_id,
            )
            if row is None:
                raise NotFound("no such conversation")
            if row[0] != "resolved":
                raise Conflict("a conversation can be rated once it is resolved")
            replaced = await conn.fetchval(
                "SELECT 1 FROM ratings WHERE conversation_id = $1", conversation_id
            )
            rating = Rating(
                conversation_id=conversation_id,
                visitor_id=visitor_id,
                agent_id=row[1],
                score=score,
                comment=comment,
                created_at=now,
            )
            await conn.execute(
                f"INSERT INTO ratings ({RATING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (conversation_id) DO UPDATE SET visitor_id = excluded.visitor_id, "
                "agent_id = excluded.agent_id, score = excluded.score, "
                "comment = excluded.comment, created_at = excluded.created_at",
                conversation_id,
                visitor_id,
                row[1],
                score,
                comment,
                now,
            )
            line = timeline.rated(score, comment)
            event = await append_event(conn, tx, conversation_id, line, now)
            return msgspec.structs.replace(rating, events=(event,)), replaced is not None

        return await self.writer.run(op)

    async def csat_rows(self, start: int, end: int) -> dict[str, list[Any]]:
        """Ratings given in [start, end), grouped: by score, by agent (with name), by UTC day.

        Counts and sums only, so nothing about one rating leaves the store here. The
        same shapes as the SQLite store's: plain ints, days as ``YYYY-MM-DD``.
        """
        window = "r.created_at >= $1 AND r.created_at < $2"
        happy = "count(*) FILTER (WHERE r.score >= 4)"
        by_score = await self._rows(
            f"SELECT r.score, count(*) FROM ratings r WHERE {window} GROUP BY 1 ORDER BY 1",
            (start, end),
        )
        by_agent = await self._rows(
            f"SELECT r.agent_id, a.name, count(*), sum(r.score)::bigint, {happy} "
            "FROM ratings r JOIN agents a ON a.id = r.agent_id "
            f"WHERE {window} GROUP BY r.agent_id, a.name ORDER BY a.name, r.agent_id",
            (start, end),
        )
        by_day = await self._rows(
            f"SELECT {_UTC_DAY}, count(*), sum(r.score)::bigint, {happy} "
            f"FROM ratings r WHERE {window} GROUP BY 1 ORDER BY 1",
            (start, end),
        )
        return {
            "by_score": [tuple(r) for r in by_score],
            "by_agent": [tuple(r) for r in by_agent],
            "by_day": [tuple(r) for r in by_day],
        }

    # ------------------------------------------------------------ business hours

    async def save_business_hours(self, schedule: Schedule, now: int) -> None:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            await conn.execute(
                "INSERT INTO business_hours (id, enabled, time_zone, weekly, closed_dates, "
                "updated_at) VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET "
                "enabled = excluded.enabled, time_zone = excluded.time_zone, "
                "weekly = excluded.weekly, closed_dates = excluded.closed_dates, "
                "updated_at = excluded.updated_at",
                int(schedule.enabled),
                schedule.time_zone,
                msgspec.json.encode(schedule.weekly).decode(),
                json.dumps(schedule.closed_dates),
                now,
            )

        await self.writer.run(op)
