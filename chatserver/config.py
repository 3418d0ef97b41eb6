"""One table of settings, read from a TOML file and ``CHATSERVER_*`` variables.

Every setting is a row of ``SETTINGS``: its name, type, default and help. The
CLI help, validation and ``docs/operations.md`` all come from this table, and a
test fails when a row is missing from the docs. Environment variables win over
the file; the file wins over the defaults.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV_PREFIX = "CHATSERVER_"


class SettingsError(ValueError):
    """A setting has a value of the wrong type or outside its allowed range."""


class Duration(int):
    """A length of time in seconds, written ``90d``, ``12h``, ``30m``, ``45s``, ``2w`` or
    ``1y`` (365 days); ``off`` (or ``never``) means forever and reads as 0."""


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_duration(raw: Any) -> Duration:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return Duration(raw)
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in {"off", "never", "0"}:
            return Duration(0)
        number, unit = text[:-1], text[-1:]
        if unit in _UNITS and number.isdigit() and int(number) > 0:
            return Duration(int(number) * _UNITS[unit])
    raise ValueError(f"expected a duration such as 90d, 12h, 30m, 2w or 1y (or off), got {raw!r}")


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", str, "./chatserver-data", "Folder for the SQLite database and files."),
    Setting(
        "store",
        str,
        "",
        "Store URL: `sqlite:///path/to/chat.db` or `postgresql://user@host:port/db[?schema=name]` "
        "(several nodes sharing one database). Empty means `chat.db` inside `data_dir`.",
    ),
    Setting(
        "catch_up_interval",
        Duration,
        "5s",
        "With a Redis broker: how often a node asks the store whether its sockets missed a "
        "message (an event lost with a dead node or a cut connection) and sends it (`off`: never).",
    ),
    Setting(
        "workers",
        int,
        1,
        "Server processes on this host (`chatserver serve`), sharing the listening port. More "
        "than one needs a Redis broker, so that events reach every process.",
        minimum=1,
    ),
    Setting(
        "broker",
        str,
        "memory://",
        "Broker URL: `memory://` (one process) or `redis://host:port/db[?prefix=...]` "
        "(Redis pub/sub between several processes; channel prefix `chatserver:` by default).",
    ),
    Setting(
        "presence_ttl",
        float,
        15.0,
        "With a Redis broker: seconds within which the other nodes show a stopped node's "
        "agents offline (killed, or cut off from Redis). Each node renews its presence in "
        "Redis every third of it.",
        minimum=0.3,
    ),
    Setting(
        "allowed_origins",
        list,
        [],
        "Origins allowed to open the visitor socket (comma separated in the environment). "
        "Empty refuses every cross-origin visitor socket.",
    ),
    Setting("site_id", str, "default", "This chat site's id: the `aud` of identity tokens."),
    Setting("identity_secret", str, "", "HS256 secret for identity tokens from the platform."),
    Setting("identity_jwks", str, "", "JWKS file path or URL for RS256/ES256 identity tokens."),
    Setting("pid_pepper", str, "", "Secret key for the keyed hash of national identity numbers."),
    Setting(
        "secret_key",
        str,
        "",
        "Key that signs console sessions. Empty: one is made and kept in `data_dir/secret_key`.",
    ),
    Setting(
        "sqlite_synchronous",
        str,
        "FULL",
        "SQLite `synchronous` mode in WAL: FULL survives a power cut, NORMAL only a killed "
        "process (faster).",
        choices=("FULL", "NORMAL"),
    ),
    Setting(
        "group_commit_max",
        int,
        512,
        "Most writes that share one SQLite transaction.",
        minimum=1,
    ),
    Setting(
        "auto_assign",
        bool,
        True,
        "Give each new conversation to the next online agent (round-robin) who has fewer "
        "than `agent_capacity` open conversations; else it waits in Unassigned.",
    ),
    Setting(
        "agent_capacity",
        int,
        5,
        "Open or pending conversations an agent may hold before auto-assignment skips them.",
        minimum=1,
    ),
    Setting(
        "max_frame_bytes",
        int,
        65536,
        "Largest WebSocket frame accepted; a bigger one closes the socket with 1009.",
        minimum=256,
    ),
    Setting("max_body_chars", int, 10000, "Longest message body, in characters.", minimum=1),
    # Attachments (chatserver/attachments): files visitors and agents add to a conversation.
    Setting(
        "attachment_max_bytes",
        int,
        10_485_760,
        "Largest file one attachment may be, in bytes (10 MiB); a bigger upload is refused "
        "with 413 `too_large` as soon as it passes the limit.",
        minimum=1,
    ),
    Setting(
        "attachment_types",
        list,
        [
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "application/pdf",
            "text/plain",
        ],
        "Types of file that may be attached, as found from the file's bytes (never from its "
        "name); others get 415 `unsupported_type`. HTML and SVG are always refused. Empty "
        "turns attachments off.",
        choices=(
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "application/pdf",
            "text/plain",
        ),
    ),
    Setting(
        "rate_limit_per_second",
        float,
        20.0,
        "Frames per second a socket may send on average before `rate_limited`.",
        minimum=0.1,
    ),
    Setting("rate_limit_burst", int, 60, "Frames a socket may send in a burst.", minimum=1),
    Setting(
        "max_bad_frames",
        int,
        10,
        "Bad or throttled frames a socket may send before it is closed with 1008.",
        minimum=1,
    ),
    Setting(
        "hello_timeout",
        float,
        10.0,
        "Seconds a visitor socket has to send `hello` (closed with 1008 after).",
        minimum=0.05,
    ),
    Setting(
        "heartbeat_interval",
        float,
        20.0,
        "Seconds between WebSocket pings; a peer silent for as long again is dropped.",
        minimum=0.05,
    ),
    Setting(
        "ws_per_message_deflate",
        bool,
        False,
        "Per-message-deflate on sockets (costs 0.5–0.8 MB of memory a socket).",
    ),
    Setting(
        "max_unacked",
        int,
        64,
        "Sends a socket may have waiting for their commit; past it the socket is not read "
        "until some are acknowledged (back-pressure).",
        minimum=1,
    ),
    Setting(
        "send_queue_max",
        int,
        1000,
        "Frames waiting for a slow client before it is closed (1013) and must resume.",
        minimum=10,
    ),
    Setting(
        "policy_url",
        str,
        "",
        "Link to the privacy notice, used when a published policy version has no URL of its own.",
    ),
    Setting(
        "forwarded_allow_ips",
        str,
        "",
        "Reverse proxies (comma-separated IPs, or `*`) whose X-Forwarded-For/-Proto are "
        "believed: visitors' IPs and https come from them. Empty believes none.",
    ),
    Setting(
        "access_log",
        str,
        "off",
        "`off`: no log line names a client. `truncated`: a line per HTTP request and socket "
        "handshake with the method, the path without its query string, the status and the "
        "client's IP truncated as retention truncates it (IPv4 to /24, IPv6 to /48).",
        choices=("off", "truncated"),
    ),
    Setting("log_level", str, "info", "Log level.", choices=("debug", "info", "warning", "error")),
    Setting(
        "verified_only",
        bool,
        False,
        "Refuse anonymous chats: a visitor needs a valid identity token "
        "(`verification_required` otherwise).",
    ),
    Setting(
        "export_notes",
        bool,
        True,
        "Include agents' internal notes in a person's data export (P5).",
    ),
    Setting(
        "retention_anonymous",
        Duration,
        "90d",
        "Keep conversations never linked to a verified account this long after their last "
        "activity (`off` keeps them).",
    ),
    Setting(
        "retention_resolved",
        Duration,
        "365d",
        "Keep resolved conversations this long after they were resolved.",
    ),
    Setting(
        "retention_sessions",
        Duration,
        "90d",
        "Keep visitor sessions and their technical data (device, pages, referrer) this long; "
        "visitors with nothing left go with them.",
    ),
    Setting(
        "retention_ip",
        Duration,
        "30d",
        "Truncate session IP addresses (IPv4 to /24, IPv6 to /48) after this long.",
    ),
    Setting("retention_exports", Duration, "7d", "Keep export archives on disk this long."),
    Setting("retention_audit", Duration, "5y", "Keep audit log entries this long."),
    Setting(
        "retention_interval",
        Duration,
        "1h",
        "How often the server's retention sweeper runs (`off`: only `chatserver retention run`).",
    ),
    Setting(
        "retention_batch",
        int,
        500,
        "Rows a retention sweep deletes per transaction: small batches keep live chat fast.",
        minimum=1,
    ),
    # Webhooks (chatserver/webhooks): signed event deliveries to admins' endpoints.
    Setting(
        "retention_webhook_log",
        Duration,
        "30d",
        "Keep webhook deliveries (the delivery log, and any still pending) this long.",
    ),
    Setting(
        "retention_invitations",
        Duration,
        "30d",
        "Keep staff invitations this long after they were accepted, revoked or expired.",
    ),
    Setting(
        "webhook_allow_private",
        bool,
        False,
        "Let webhooks reach loopback, private, link-local and other non-public addresses "
        "(checked on every delivery, after DNS). Off guards the network behind the server "
        "(SSRF).",
    ),
    Setting(
        "webhook_max_attempts",
        int,
        12,
        "Attempts to deliver one webhook event before it is given up.",
        minimum=1,
    ),
    Setting(
        "webhook_retry_base",
        float,
        15.0,
        "Seconds before the first retry of a failed webhook delivery; each next wait "
        "doubles (plus up to half again of random jitter), up to 1 hour.",
        minimum=0.01,
    ),
    Setting(
        "webhook_timeout",
        float,
        10.0,
        "Seconds a webhook endpoint has to answer one delivery.",
        minimum=0.1,
    ),
    # Email (chatserver/mail): offline-message notices to agents, transcripts to visitors.
    Setting("smtp_host", str, "", "SMTP server for outgoing email. Empty turns email off."),
    Setting("smtp_port", int, 587, "SMTP server port (587 for STARTTLS, 465 for TLS).", minimum=1),
    Setting("smtp_username", str, "", "SMTP login; empty sends without logging in."),
    Setting("smtp_password", str, "", "SMTP password."),
    Setting(
        "smtp_security",
        str,
        "starttls",
        "`starttls` (required, never falls back to plain text), `tls` (implicit TLS, port "
        "465) or `none` (plain: only for a relay on the same host).",
        choices=("starttls", "tls", "none"),
    ),
    Setting("smtp_timeout", float, 30.0, "Seconds an SMTP connection may take.", minimum=0.1),
    Setting(
        "smtp_max_attempts",
        int,
        12,
        "Attempts to send one email before it is dropped (and logged).",
        minimum=1,
    ),
    Setting(
        "smtp_retry_seconds",
        float,
        30.0,
        "Wait before the first retry of a failed send; each next wait doubles, up to 1 hour.",
        minimum=0.05,
    ),
    Setting("mail_from", str, "", "The From address of every email; required with `smtp_host`."),
    Setting(
        "public_url",
        str,
        "",
        "The server's address as visitors and agents reach it (`https://chat.example.com`), "
        "for links in emails. Empty: no console links, and transcripts go to verified "
        "addresses only.",
    ),
    Setting(
        "offline_notify",
        str,
        "agents",
        "Who gets an email for a message left with the offline form: `agents` (every active "
        "agent and admin with an email), `admins`, or `off`.",
        choices=("agents", "admins", "off"),
    ),
    Setting(
        "mail_staff_locale",
        str,
        "en",
        "Language of emails to agents.",
        choices=("en", "nb"),
    ),
    Setting(
        "transcript_confirm_ttl",
        Duration,
        "24h",
        "How long a visitor's link to confirm a transcript address stays valid.",
        minimum=60,
    ),
    Setting(
        "transcript_requests_per_hour",
        int,
        5,
        "Transcript requests one visitor (and one IP address) may make in an hour.",
        minimum=1,
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def _defaults() -> dict[str, Any]:
    return {
        s.name: parse_duration(s.default) if s.type is Duration else s.default for s in SETTINGS
    }


def _cast(setting: Setting, raw: Any, source: str) -> Any:
    where = f"{setting.name} (from {source})"
    try:
        if setting.type is bool:
            if isinstance(raw, bool):
                value: Any = raw
            elif isinstance(raw, str) and raw.strip().lower() in {"1", "true", "yes", "on"}:
                value = True
            elif isinstance(raw, str) and raw.strip().lower() in {"0", "false", "no", "off", ""}:
                value = False
            else:
                raise SettingsError(f"{where}: expected true or false, got {raw!r}")
        elif setting.type is list:
            if isinstance(raw, str):
                value = [part.strip() for part in raw.split(",") if part.strip()]
            elif isinstance(raw, list) and all(isinstance(x, str) for x in raw):
                value = list(raw)
            else:
                raise SettingsError(f"{where}: expected a list of strings, got {raw!r}")
        elif setting.type is Duration:
            value = parse_duration(raw)
        elif setting.type is int:
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                raise SettingsError(f"{where}: expected an integer, got {raw!r}")
            value = int(raw)
        elif setting.type is float:
            if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                raise SettingsError(f"{where}: expected a number, got {raw!r}")
            value = float(raw)
        else:
            if not isinstance(raw, str):
                raise SettingsError(f"{where}: expected a string, got {raw!r}")
            value = raw
    except ValueError as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError(f"{where}: {exc}") from None
    if setting.choices is not None and isinstance(value, list):
        wrong = [item for item in value if item not in setting.choices]
        if wrong:
            raise SettingsError(
                f"{where}: {', '.join(wrong)} not allowed; choose from {', '.join(setting.choices)}"
            )
    elif setting.choices is not None:
        normal = value.upper() if setting.choices[0].isupper() else value.lower()
        if normal not in setting.choices:
            raise SettingsError(f"{where}: must be one of {', '.join(setting.choices)}")
        value = normal
    if setting.minimum is not None and value < setting.minimum:
        raise SettingsError(f"{where}: must be at least {setting.minimum}")
    return value


@dataclasses.dataclass(frozen=True)
class Settings:
    """The resolved settings. Build with ``Settings.load`` or ``Settings.from_mapping``."""

    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, Any] | None = None) -> Settings:
        """Defaults plus ``overrides`` (cast and checked like any other source)."""
        values = _defaults()
        for name, raw in (overrides or {}).items():
            if name not in _BY_NAME:
                raise SettingsError(f"unknown setting {name!r}")
            values[name] = _cast(_BY_NAME[name], raw, "arguments")
        return cls(values)

    @classmethod
    def load(
        cls, config_file: str | Path | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        environ = os.environ if environ is None else environ
        values = _defaults()
        if config_file is not None:
            with open(config_file, "rb") as fh:
                data = tomllib.load(fh)
            for name, raw in data.items():
                if name not in _BY_NAME:
                    raise SettingsError(f"unknown setting {name!r} in {config_file}")
                values[name] = _cast(_BY_NAME[name], raw, str(config_file))
        for setting in SETTINGS:
            if setting.env in environ:
                values[setting.name] = _cast(setting, environ[setting.env], setting.env)
        return cls(values)

    def replace(self, **changes: Any) -> Settings:
        merged = dict(self.values)
        for name, raw in changes.items():
            merged[name] = _cast(_BY_NAME[name], raw, "arguments")
        return Settings(merged)

    @property
    def store_url(self) -> str:
        if self.values["store"]:
            return str(self.values["store"])
        return "sqlite:///" + str(Path(self.values["data_dir"]) / "chat.db")


def settings_table_markdown() -> str:
    """The settings as a Markdown table, as written into docs/operations.md."""
    rows = ["| setting | environment | default | what |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = ",".join(s.default) if isinstance(s.default, list) else s.default
        rows.append(f"| `{s.name}` | `{s.env}` | `{default}` | {s.help} |")
    return "\n".join(rows)
