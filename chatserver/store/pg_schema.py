"""Versioned schema migrations for the PostgreSQL store.

The same numbers as ``chatserver.store.migrations`` (the SQLite ones), each the
PostgreSQL translation of its namesake, so ``schema_version`` means the same on
both stores. Table and column names are the SQLite ones; times are BIGINT
(µs since the epoch); flags stay INTEGER 0/1 and JSON stays TEXT, so SQL
fragments and row mappers are shared with the SQLite store. Never edit a
released migration: add the next one, here and in ``migrations.py``.

Differences from SQLite, each on purpose:

- ``messages.n`` is an identity column (SQLite's AUTOINCREMENT: never reused).
- Search has no separate index table: ``messages.body_tsv`` is a stored
  generated column with a GIN index, so it is written in the message's own
  transaction and a deleted message leaves it at once (no ``fts_progress``).
- ``policy_versions.n`` stands in for SQLite's implicit ``rowid`` (the
  tie-break between two versions published in the same microsecond).
- SQLite triggers are plpgsql trigger functions.
"""

from __future__ import annotations

from typing import Any

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "initial schema",
        """
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    sub         TEXT NOT NULL UNIQUE,
    name        TEXT,
    email       TEXT,
    phone       TEXT,
    pid_hash    TEXT,
    verified_by TEXT,
    verified_at BIGINT,
    legal_hold  INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX accounts_email ON accounts(email);
CREATE INDEX accounts_pid_hash ON accounts(pid_hash);

CREATE TABLE visitors (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    account_id   TEXT REFERENCES accounts(id) ON DELETE SET NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX visitors_account ON visitors(account_id);

CREATE TABLE visitor_sessions (
    id              TEXT PRIMARY KEY,
    visitor_id      TEXT NOT NULL REFERENCES visitors(id) ON DELETE CASCADE,
    ip              TEXT,
    ip_truncated_at BIGINT,
    user_agent      TEXT,
    device_class    TEXT,
    browser         TEXT,
    os              TEXT,
    page_url        TEXT,
    page_title      TEXT,
    referrer        TEXT,
    locale          TEXT,
    started_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    ended_at        BIGINT
);
CREATE INDEX visitor_sessions_visitor ON visitor_sessions(visitor_id, started_at);

CREATE TABLE agents (
    id            TEXT PRIMARY KEY,
    email         TEXT UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('agent', 'admin', 'compliance')),
    kind          TEXT NOT NULL DEFAULT 'human' CHECK (kind IN ('human', 'bot')),
    password_hash TEXT,
    active        INTEGER NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    agent_id     TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    visitor_id      TEXT REFERENCES visitors(id) ON DELETE SET NULL,
    account_id      TEXT REFERENCES accounts(id) ON DELETE SET NULL,
    status          TEXT NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'pending', 'resolved')),
    assignee_id     TEXT REFERENCES agents(id) ON DELETE SET NULL,
    tags            TEXT NOT NULL DEFAULT '[]',
    last_seq        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    last_message_at BIGINT,
    closed_at       BIGINT,
    legal_hold      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX conversations_visitor ON conversations(visitor_id);
CREATE INDEX conversations_account ON conversations(account_id);
CREATE INDEX conversations_activity ON conversations(updated_at DESC, id DESC);
CREATE INDEX conversations_status ON conversations(status);
CREATE INDEX conversations_assignee ON conversations(assignee_id);

CREATE TABLE messages (
    -- Never reused, like SQLite's AUTOINCREMENT.
    n               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    author_role     TEXT NOT NULL CHECK (author_role IN ('visitor', 'agent', 'system')),
    author_id       TEXT,
    kind            TEXT NOT NULL CHECK (kind IN ('text', 'note', 'event')),
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    client_msg_id   TEXT,
    UNIQUE (conversation_id, seq)
);
-- Also what makes a retried message idempotent across nodes (INSERT … ON CONFLICT).
CREATE UNIQUE INDEX messages_idempotency
    ON messages(author_role, author_id, client_msg_id) WHERE client_msg_id IS NOT NULL;

CREATE TABLE conversation_reads (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    reader_role     TEXT NOT NULL,
    reader_id       TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, reader_role, reader_id)
);

CREATE TABLE policy_versions (
    version      TEXT PRIMARY KEY,
    url          TEXT,
    published_at BIGINT NOT NULL,
    -- SQLite's rowid: the order of publication when two share a microsecond.
    n            BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE consents (
    id             TEXT PRIMARY KEY,
    policy_version TEXT NOT NULL REFERENCES policy_versions(version),
    visitor_id     TEXT REFERENCES visitors(id) ON DELETE CASCADE,
    account_id     TEXT REFERENCES accounts(id) ON DELETE CASCADE,
    accepted_at    BIGINT NOT NULL
);
CREATE INDEX consents_visitor ON consents(visitor_id);
CREATE INDEX consents_account ON consents(account_id);

CREATE TABLE audit_log (
    seq        BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    at         BIGINT NOT NULL,
    actor_role TEXT,
    actor_id   TEXT,
    action     TEXT NOT NULL,
    subject_id TEXT,
    details    TEXT NOT NULL DEFAULT '{}',
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

CREATE TABLE tombstones (
    id         TEXT PRIMARY KEY,
    erased_at  BIGINT NOT NULL,
    ordered_by TEXT
);
""",
    ),
    (
        2,
        "contact left with an offline message",
        """
ALTER TABLE conversations ADD COLUMN contact_email TEXT;
""",
    ),
    (
        3,
        "canned responses",
        """
CREATE TABLE canned_responses (
    id         TEXT PRIMARY KEY,
    shortcut   TEXT NOT NULL UNIQUE,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
""",
    ),
    (
        4,
        "origins allowed by admins",
        """
CREATE TABLE allowed_origins (
    origin   TEXT PRIMARY KEY,
    added_at BIGINT NOT NULL
);
""",
    ),
    (
        5,
        "full-text search over messages",
        """
-- Written with the row and dropped with it: no index lagging behind the writer.
-- 'simple' does no stemming and no stop words, like SQLite's unicode61; the accents
-- are taken off first (café finds cafe and back), like its remove_diacritics.
-- postgres.tsquery() folds the words searched for the same way.
ALTER TABLE messages ADD COLUMN body_tsv tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', regexp_replace(normalize(coalesce(body, ''), NFD),
                                         '[\\u0300-\\u036f]', '', 'g'))
) STORED;
CREATE INDEX messages_body_tsv ON messages USING GIN (body_tsv);
""",
    ),
    (
        6,
        "privacy operations: verified fields, holds, rectifications, retention, exports, audit",
        """
ALTER TABLE accounts ADD COLUMN verified_fields TEXT NOT NULL DEFAULT '[]';
ALTER TABLE visitors ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0;

CREATE TABLE rectifications (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    field        TEXT NOT NULL,
    old_value    TEXT,
    new_value    TEXT,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'applied', 'rejected')),
    requested_at BIGINT NOT NULL,
    requested_by TEXT,
    decided_at   BIGINT,
    decided_by   TEXT
);
CREATE INDEX rectifications_account ON rectifications(account_id, requested_at);

CREATE TABLE retention_runs (
    id          TEXT PRIMARY KEY,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    dry_run     INTEGER NOT NULL,
    ordered_by  TEXT,
    counts      TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE export_files (
    id         TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    path       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX export_files_subject ON export_files(subject_id);

ALTER TABLE tombstones ADD COLUMN subject_ref TEXT;
ALTER TABLE tombstones ADD COLUMN counts TEXT NOT NULL DEFAULT '{}';
ALTER TABLE tombstones ADD COLUMN consent_proof TEXT NOT NULL DEFAULT '[]';
CREATE UNIQUE INDEX tombstones_subject_ref ON tombstones(subject_ref);

CREATE TABLE audit_anchor (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX conversations_closed ON conversations(closed_at) WHERE status = 'resolved';
CREATE INDEX visitor_sessions_seen ON visitor_sessions(last_seen_at);
CREATE INDEX visitor_sessions_ip ON visitor_sessions(started_at) WHERE ip_truncated_at IS NULL;
CREATE INDEX audit_log_at ON audit_log(at);
""",
    ),
    (
        7,
        "attachments",
        """
CREATE TABLE attachments (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
    message_id      TEXT REFERENCES messages(id) ON DELETE CASCADE,
    uploader_role   TEXT NOT NULL CHECK (uploader_role IN ('visitor', 'agent')),
    uploader_id     TEXT NOT NULL,
    name            TEXT NOT NULL,
    size            BIGINT NOT NULL,
    type            TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    storage_key     TEXT NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL
);
CREATE INDEX attachments_conversation ON attachments(conversation_id);
CREATE INDEX attachments_message ON attachments(message_id);
CREATE INDEX attachments_unsent ON attachments(uploader_role, uploader_id, created_at)
    WHERE message_id IS NULL;

CREATE TABLE attachment_trash (
    storage_key TEXT PRIMARY KEY,
    trashed_at  BIGINT NOT NULL
);
-- Files whose rows are gone, however they went (a cascade included).
CREATE FUNCTION attachments_trash() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO attachment_trash (storage_key, trashed_at)
    VALUES (old.storage_key, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
    ON CONFLICT DO NOTHING;
    RETURN old;
END
$$;
CREATE TRIGGER attachments_trash AFTER DELETE ON attachments
    FOR EACH ROW EXECUTE FUNCTION attachments_trash();
""",
    ),
    (
        8,
        "satisfaction ratings",
        """
CREATE TABLE ratings (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
    visitor_id      TEXT REFERENCES visitors(id) ON DELETE SET NULL,
    agent_id        TEXT REFERENCES agents(id) ON DELETE SET NULL,
    score           INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment         TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX ratings_created ON ratings(created_at);
CREATE INDEX ratings_agent ON ratings(agent_id);
""",
    ),
    (
        9,
        "business hours",
        """
CREATE TABLE business_hours (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    enabled      INTEGER NOT NULL,
    time_zone    TEXT NOT NULL,
    weekly       TEXT NOT NULL,
    closed_dates TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);
""",
    ),
    (
        10,
        "webhooks: endpoints, and a durable outbox that is also the delivery log",
        """
CREATE TABLE webhooks (
    id                   TEXT PRIMARY KEY,
    url                  TEXT NOT NULL,
    secret               TEXT NOT NULL,
    events               TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    include_message_body INTEGER NOT NULL DEFAULT 0,
    include_notes        INTEGER NOT NULL DEFAULT 0,
    active               INTEGER NOT NULL DEFAULT 1,
    created_by           TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
    payload         TEXT,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    attempt_log     TEXT NOT NULL DEFAULT '[]',
    next_attempt_at BIGINT,
    created_at      BIGINT NOT NULL,
    finished_at     BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries(webhook_id, created_at);
CREATE INDEX webhook_deliveries_conversation ON webhook_deliveries(conversation_id);
CREATE INDEX webhook_deliveries_age ON webhook_deliveries(created_at);
""",
    ),
    (
        11,
        "email: outbox and transcript confirmations",
        """
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL
                    CHECK (kind IN ('offline_notice', 'transcript', 'confirmation')),
    recipient       TEXT NOT NULL,
    message         TEXT NOT NULL,
    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
    visitor_id      TEXT REFERENCES visitors(id) ON DELETE CASCADE,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox(next_attempt_at);
CREATE INDEX mail_outbox_conversation ON mail_outbox(conversation_id);
CREATE INDEX mail_outbox_visitor ON mail_outbox(visitor_id);

CREATE TABLE mail_confirmations (
    token_hash      TEXT PRIMARY KEY,
    visitor_id      TEXT NOT NULL REFERENCES visitors(id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    email           TEXT,
    locale          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);
CREATE INDEX mail_confirmations_expiry ON mail_confirmations(expires_at);
CREATE INDEX mail_confirmations_visitor ON mail_confirmations(visitor_id);
CREATE INDEX mail_confirmations_conversation ON mail_confirmations(conversation_id);
""",
    ),
    (
        12,
        "job leases: one node at a time runs a background sweep",
        """
CREATE TABLE job_leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
""",
    ),
    (
        13,
        "event messages: their structured data",
        """
ALTER TABLE messages ADD COLUMN event TEXT;
""",
    ),
    (
        14,
        "staff: invitations, and each agent's preferences",
        """
CREATE TABLE agent_invitations (
    id         TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('agent', 'admin', 'compliance')),
    token_hash TEXT NOT NULL UNIQUE,
    invited_by TEXT REFERENCES agents(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT
);
CREATE INDEX agent_invitations_email ON agent_invitations(email);

ALTER TABLE agents ADD COLUMN preferences TEXT;

ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check
    CHECK (kind IN ('offline_notice', 'transcript', 'confirmation', 'invitation'));
""",
    ),
)


def quote_ident(name: str) -> str:
    """``name`` as a PostgreSQL identifier (a schema from the store URL)."""
    return '"' + name.replace('"', '""') + '"'


async def migrate(conn: Any, schema: str | None = None) -> list[int]:
    """Create ``schema`` if asked for and apply pending migrations; answers the versions applied.

    ``conn`` is an ``asyncpg.Connection`` whose search_path already names the
    schema. Everything happens in one transaction under an advisory lock keyed
    on the schema, so nodes starting together wait for the first to finish and
    then find nothing left to do; a failed migration leaves no half of itself.
    """
    async with conn.transaction():
        target = schema if schema is not None else await conn.fetchval("SELECT current_schema()")
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"chatserver:{target}")
        if schema is not None:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
        )
        applied = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        done: list[int] = []
        for version, name, sql in MIGRATIONS:
            if version in applied:
                continue
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES "
                "($1, $2, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)",
                version,
                name,
            )
            done.append(version)
        return done
