"""What ``chatserver serve`` writes to its log, and what it never writes: a client's address.

A client's IP address and port are personal data (P4), and a log is outside the
data map's reach: no retention rule, export or erasure finds them there. So:

- uvicorn's own access log is always off. Its lines (``127.0.0.1:40100 - "GET
  /path?query HTTP/1.1" 200``) carry the address, the port and the query string,
  which can hold tokens and search text.
- uvicorn writes its WebSocket handshake lines (``127.0.0.1:40100 - "WebSocket
  /ws/visitor" [accepted]``, ``… 403``) and its trace lines to ``uvicorn.error``,
  not to the access log; ``NoClientAddresses`` drops them.
- With ``access_log = "truncated"``, ``AccessLog`` writes a line of its own for
  each HTTP request and socket handshake: the client's IP truncated as the
  retention rule ``ip`` truncates stored IPs (IPv4 to /24, IPv6 to /48; no port),
  the method, the path without its query string, and the status.

The configuration reaches every worker of ``serve --workers N``: uvicorn applies
``log_config`` in each, and each worker's app is wrapped in ``worker.app``.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatserver.config import Settings
from chatserver.privacy.ip import truncate_ip

ACCESS_LOGGER = "chatserver.access"
access_log = logging.getLogger(ACCESS_LOGGER)


class NoClientAddresses(logging.Filter):
    """Drops uvicorn's lines that name a client's address.

    uvicorn formats the address in as the first argument of these messages:
    the WebSocket handshake lines (``'%s - "WebSocket %s" [accepted]'``, ``… 403``,
    ``… %d``) and the TRACE lines (``"%sWebSocket connection made"`` with a
    ``"host:port - "`` prefix, and the ASGI message logger's). Every other line of
    uvicorn's (start-up, shutdown, errors) names no client.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("uvicorn"):
            return True
        if record.levelno < logging.DEBUG:  # TRACE: "host:port - HTTP connection made" etc.
            return False
        message = record.msg if isinstance(record.msg, str) else ""
        return not message.startswith('%s - "')


def log_config(settings: Settings) -> dict[str, Any]:
    """uvicorn's logging configuration, without client addresses, plus our loggers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"no_client": {"()": "chatserver.logs.NoClientAddresses"}}
    config["formatters"]["chatserver_access"] = {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s %(message)s",
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["no_client"]
    config["handlers"]["chatserver_access"] = {
        "formatter": "chatserver_access",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
        "filters": ["no_client"],
    }
    # uvicorn's access log: no handler and no propagation, whatever else is set.
    config["loggers"]["uvicorn.access"] = {"handlers": [], "propagate": False}
    # Our own loggers (mail, webhooks, retention, …) in the same form as uvicorn's.
    config["loggers"]["chatserver"] = {
        "handlers": ["default"],
        "level": str(settings.log_level).upper(),
        "propagate": False,
    }
    # An access log the operator turned on is written whatever ``log_level`` says.
    on = settings.access_log == "truncated"
    config["loggers"][ACCESS_LOGGER] = {
        "handlers": ["chatserver_access"] if on else [],
        "level": "INFO" if on else "CRITICAL",
        "propagate": False,
    }
    return config


def client_ip(scope: Scope) -> str:
    """The client's IP truncated as retention truncates it, or ``-`` when unknown."""
    client = scope.get("client")
    if not client:
        return "-"
    return truncate_ip(str(client[0])) or "-"


class AccessLog:
    """ASGI middleware: one line per HTTP request and per socket handshake, at INFO on
    ``chatserver.access``: ``203.0.113.0 - "GET /healthz HTTP/1.1" 200`` or
    ``203.0.113.0 - "WebSocket /ws/visitor" 101`` (403 for a refused socket)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        logged = False

        def line(status: int) -> None:
            nonlocal logged
            logged = True
            path = scope.get("path", "")  # never the query string
            if kind == "http":
                request = (
                    f"{scope.get('method', '-')} {path} HTTP/{scope.get('http_version', '1.1')}"
                )
            else:
                request = f"WebSocket {path}"
            access_log.info('%s - "%s" %d', client_ip(scope), request, status)

        async def sending(message: Message) -> None:
            if not logged:
                what = message["type"]
                if what in ("http.response.start", "websocket.http.response.start"):
                    line(int(message["status"]))
                elif what == "websocket.accept":
                    line(101)
                elif what == "websocket.close":
                    line(403)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseException:
            if not logged:
                line(500)
            raise


def with_access_log(app: ASGIApp, settings: Settings) -> ASGIApp:
    """``app``, wrapped in the access log when ``access_log`` turns it on."""
    return AccessLog(app) if settings.access_log == "truncated" else app
