"""Email: notices of offline messages to agents, and conversation transcripts to visitors.

Named ``mail`` so that it never shadows the standard library's ``email`` package.
``service.Mail`` is the feature (what is sent to whom, and when), ``outbox.Outbox``
sends in the background with retries, ``store.MailStore`` keeps the outbox and the
pending confirmations in SQLite (migration 11) and ``pg_store.PgMailStore`` in
PostgreSQL, ``render`` turns the Jinja2 templates
(English and Norwegian) into MIME messages, and ``web`` serves the confirmation link.
"""
