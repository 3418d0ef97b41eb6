"""Webhooks: signed deliveries of business events to endpoints admins register.

``signing`` signs and verifies (receivers may copy ``verify_signature``),
``urls`` checks where a delivery may go (SSRF), ``events`` shapes each event's
payload, ``store`` (SQLite) and ``pg_store`` (PostgreSQL) keep endpoints and the
durable outbox, ``dispatcher`` delivers with retries, and ``service`` ties them to
the hub. See ``docs/webhooks.md``.
"""
