"""Versioned schema migrations for the SQLite store.

Each entry is applied once, in order, inside one transaction, and recorded in
``schema_migrations``. Never edit a released migration: add the next one.

Every table or column that holds personal data is described in
``docs/data-map.md``; export, erasure and retention must cover each one.
"""

from __future__ import annotations

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
    verified_at INTEGER,
    legal_hold  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX accounts_email ON accounts(email);
CREATE INDEX accounts_pid_hash ON accounts(pid_hash);

CREATE TABLE visitors (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    account_id   TEXT REFERENCES accounts(id) ON DELETE SET NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX visitors_account ON visitors(account_id);

CREATE TABLE visitor_sessions (
    id              TEXT PRIMARY KEY,
    visitor_id      TEXT NOT NULL REFERENCES visitors(id) ON DELETE CASCADE,
    ip              TEXT,
    ip_truncated_at INTEGER,
    user_agent      TEXT,
    device_class    TEXT,
    browser         TEXT,
    os              TEXT,
    page_url        TEXT,
    page_title      TEXT,
    referrer        TEXT,
    locale          TEXT,
    started_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    ended_at        INTEGER
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
    created_at    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    agent_id     TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    visitor_id      TEXT REFERENCES visitors(id) ON DELETE SET NULL,
    account_id      TEXT REFERENCES accounts(id) ON DELETE SET NULL,
    status          TEXT NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'pending', 'resolved')),
    assignee_id     TEXT REFERENCES agents(id) ON DELETE SET NULL,
    tags            TEXT NOT NULL DEFAULT '[]',
    last_seq        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_message_at INTEGER,
    closed_at       INTEGER,
    legal_hold      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX conversations_visitor ON conversations(visitor_id);
CREATE INDEX conversations_account ON conversations(account_id);
CREATE INDEX conversations_activity ON conversations(updated_at DESC, id DESC);
-- Not (status, updated_at): every message moves updated_at, and each index
-- holding it is one more page written per commit.
CREATE INDEX conversations_status ON conversations(status);
CREATE INDEX conversations_assignee ON conversations(assignee_id);

CREATE TABLE messages (
    -- Never reused (AUTOINCREMENT): the search index follows messages by it.
    n               INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    author_role     TEXT NOT NULL CHECK (author_role IN ('visitor', 'agent', 'system')),
    author_id       TEXT,
    kind            TEXT NOT NULL CHECK (kind IN ('text', 'note', 'event')),
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    client_msg_id   TEXT,
    UNIQUE (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_idempotency
    ON messages(author_role, author_id, client_msg_id) WHERE client_msg_id IS NOT NULL;

CREATE TABLE conversation_reads (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    reader_role     TEXT NOT NULL,
    reader_id       TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, reader_role, reader_id)
);

CREATE TABLE policy_versions (
    version      TEXT PRIMARY KEY,
    url          TEXT,
    published_at INTEGER NOT NULL
);

CREATE TABLE consents (
    id             TEXT PRIMARY KEY,
    policy_version TEXT NOT NULL REFERENCES policy_versions(version),
    visitor_id     TEXT REFERENCES visitors(id) ON DELETE CASCADE,
    account_id     TEXT REFERENCES accounts(id) ON DELETE CASCADE,
    accepted_at    INTEGER NOT NULL
);
CREATE INDEX consents_visitor ON consents(visitor_id);
CREATE INDEX consents_account ON consents(account_id);

CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    at         INTEGER NOT NULL,
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
    erased_at  INTEGER NOT NULL,
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
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
""",
    ),
    (
        4,
        "origins allowed by admins",
        """
CREATE TABLE allowed_origins (
    origin   TEXT PRIMARY KEY,
    added_at INTEGER NOT NULL
);
""",
    ),
    (
        5,
        "full-text search over messages, indexed behind the writer",
        """
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body, content='messages', content_rowid='n',
    tokenize='unicode61 remove_diacritics 2'
);
-- How far messages_fts has got: messages with a larger n are not in it yet.
CREATE TABLE fts_progress (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    last_n  INTEGER NOT NULL
);
INSERT INTO fts_progress (id, last_n) VALUES (1, 0);
-- A deleted message leaves the index too (erasure, retention); only rows that
-- were indexed, since an external-content index must be told exactly what it has.
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.n <= (SELECT last_n FROM fts_progress WHERE id = 1)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.n, old.body);
END;
""",
    ),
    (
        6,
        "privacy operations: verified fields, holds, rectifications, retention, exports, audit",
        """
-- Which profile fields came from a verified identity: changing them needs approval (P6).
ALTER TABLE accounts ADD COLUMN verified_fields TEXT NOT NULL DEFAULT '[]';
ALTER TABLE visitors ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0;

CREATE TABLE rectifications (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    field        TEXT NOT NULL,
    old_value    TEXT,
    new_value    TEXT,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'applied', 'rejected')),
    requested_at INTEGER NOT NULL,
    requested_by TEXT,
    decided_at   INTEGER,
    decided_by   TEXT
);
CREATE INDEX rectifications_account ON rectifications(account_id, requested_at);

CREATE TABLE retention_runs (
    id          TEXT PRIMARY KEY,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    dry_run     INTEGER NOT NULL,
    ordered_by  TEXT,
    counts      TEXT NOT NULL DEFAULT '{}'
);

-- Export archives kept on disk for a while, so erasure and retention can find them.
CREATE TABLE export_files (
    id         TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    path       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX export_files_subject ON export_files(subject_id);

-- A keyed hash of the erased subject's id: a second erasure finds the first,
-- and nobody can tell from the row whom it was about.
ALTER TABLE tombstones ADD COLUMN subject_ref TEXT;
ALTER TABLE tombstones ADD COLUMN counts TEXT NOT NULL DEFAULT '{}';
-- The minimal proof of consent that outlives an erasure: versions and times only.
ALTER TABLE tombstones ADD COLUMN consent_proof TEXT NOT NULL DEFAULT '[]';
CREATE UNIQUE INDEX tombstones_subject_ref ON tombstones(subject_ref);

-- Where the audit chain starts once retention has removed its oldest entries.
CREATE TABLE audit_anchor (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
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
-- Files visitors and agents attach (chatserver/attachments/). The bytes live in the
-- attachment storage under `storage_key`; the row goes with its conversation or its
-- message (erasure, retention), and the trigger below remembers the key so that the
-- file is deleted from disk after the transaction that dropped the row committed.
CREATE TABLE attachments (
    id              TEXT PRIMARY KEY,
    -- NULL: uploaded by a visitor for the message that will start a conversation.
    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
    -- NULL until a message carrying it is stored.
    message_id      TEXT REFERENCES messages(id) ON DELETE CASCADE,
    uploader_role   TEXT NOT NULL CHECK (uploader_role IN ('visitor', 'agent')),
    uploader_id     TEXT NOT NULL,
    name            TEXT NOT NULL,
    size            INTEGER NOT NULL,
    type            TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    storage_key     TEXT NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL
);
CREATE INDEX attachments_conversation ON attachments(conversation_id);
CREATE INDEX attachments_message ON attachments(message_id);
CREATE INDEX attachments_unsent ON attachments(uploader_role, uploader_id, created_at)
    WHERE message_id IS NULL;

-- Files whose rows are gone, however they went (a cascade included): deleted from
-- disk and then from here, so a crash in between only delays the deletion.
CREATE TABLE attachment_trash (
    storage_key TEXT PRIMARY KEY,
    trashed_at  INTEGER NOT NULL
);
CREATE TRIGGER attachments_trash AFTER DELETE ON attachments
BEGIN
    INSERT OR IGNORE INTO attachment_trash (storage_key, trashed_at)
    VALUES (old.storage_key, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
END;
""",
    ),
    (
        8,
        "satisfaction ratings",
        """
-- One rating per conversation (chatserver/ratings.py): a second `rate` replaces
-- the first. It goes with its conversation (erasure, retention).
CREATE TABLE ratings (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
    visitor_id      TEXT REFERENCES visitors(id) ON DELETE SET NULL,
    agent_id        TEXT REFERENCES agents(id) ON DELETE SET NULL,
    score           INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment         TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX ratings_created ON ratings(created_at);
CREATE INDEX ratings_agent ON ratings(agent_id);
""",
    ),
    (
        9,
        "business hours",
        """
-- The one schedule (chatserver/business_hours.py). No row: always open.
CREATE TABLE business_hours (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    enabled      INTEGER NOT NULL,
    time_zone    TEXT NOT NULL,
    weekly       TEXT NOT NULL,
    closed_dates TEXT NOT NULL,
    updated_at   INTEGER NOT NULL
);
""",
    ),
    (
        10,
        "webhooks: endpoints, and a durable outbox that is also the delivery log",
        """
-- Endpoints admins registered (chatserver/webhooks). The secret signs every
-- delivery, so it is kept as it is: the server must be able to use it.
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
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

-- One row per event and endpoint, written when the event happens. `payload`
-- (the exact body sent) and `conversation_id` are kept only while the row is
-- pending: both are cleared once it is delivered or given up, and a pending
-- row goes with its conversation (erasure, retention).
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
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
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
-- Emails waiting to be sent (chatserver/mail): a row goes once its message is
-- accepted by the SMTP server, or after its last attempt. Rows about a
-- conversation or visitor go with it (erasure, retention).
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL
                    CHECK (kind IN ('offline_notice', 'transcript', 'confirmation')),
    recipient       TEXT NOT NULL,
    message         TEXT NOT NULL,
    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
    visitor_id      TEXT REFERENCES visitors(id) ON DELETE CASCADE,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox(next_attempt_at);
CREATE INDEX mail_outbox_conversation ON mail_outbox(conversation_id);
CREATE INDEX mail_outbox_visitor ON mail_outbox(visitor_id);

-- A transcript asked for by a visitor, sent only once the link mailed to
-- `email` is opened. Only the token's hash is kept; `email` is cleared once used
-- or expired.
CREATE TABLE mail_confirmations (
    token_hash      TEXT PRIMARY KEY,
    visitor_id      TEXT NOT NULL REFERENCES visitors(id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    email           TEXT,
    locale          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER
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
-- Who runs a singleton background job (the retention sweeper) until when
-- (Store.claim_job). A node that stops holds it until `until` passes.
CREATE TABLE job_leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  INTEGER NOT NULL
);
""",
    ),
    (
        13,
        "event messages: their structured data",
        """
-- The structured data of an event message (`kind = 'event'`, chatserver/timeline.py)
-- as JSON: `{"type": "assigned", "to": {...}, "by": {...}}` and the like. NULL for
-- every other message. It goes with its message (erasure, retention).
ALTER TABLE messages ADD COLUMN event TEXT;
""",
    ),
    (
        14,
        "staff: invitations, and each agent's preferences",
        """
-- An admin invites a new staff member by email (chatserver/invitations.py): the
-- link's token is kept only as its SHA-256, works once (`used_at`) until
-- `expires_at`, and stops working when revoked (`revoked_at`). Rows that ended
-- go after `retention_invitations`.
CREATE TABLE agent_invitations (
    id         TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('agent', 'admin', 'compliance')),
    token_hash TEXT NOT NULL UNIQUE,
    invited_by TEXT REFERENCES agents(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
);
CREATE INDEX agent_invitations_email ON agent_invitations(email);

-- The console's settings of each agent (chatserver/preferences.py), as JSON; NULL:
-- the defaults.
ALTER TABLE agents ADD COLUMN preferences TEXT;

-- The invitation email goes through the outbox: its kind check takes `invitation`.
-- SQLite cannot change a CHECK constraint, so the table is made anew (nothing
-- refers to it).
CREATE TABLE mail_outbox_new (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL
                    CHECK (kind IN ('offline_notice', 'transcript', 'confirmation', 'invitation')),
    recipient       TEXT NOT NULL,
    message         TEXT NOT NULL,
    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
    visitor_id      TEXT REFERENCES visitors(id) ON DELETE CASCADE,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
INSERT INTO mail_outbox_new (id, kind, recipient, message, conversation_id, visitor_id,
    attempts, next_attempt_at, last_error, created_at)
SELECT id, kind, recipient, message, conversation_id, visitor_id, attempts,
    next_attempt_at, last_error, created_at FROM mail_outbox;
DROP TABLE mail_outbox;
ALTER TABLE mail_outbox_new RENAME TO mail_outbox;
CREATE INDEX mail_outbox_due ON mail_outbox(next_attempt_at);
CREATE INDEX mail_outbox_conversation ON mail_outbox(conversation_id);
CREATE INDEX mail_outbox_visitor ON mail_outbox(visitor_id);
""",
    ),
)
