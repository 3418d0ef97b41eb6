"""Which web origins may open the visitor socket: the settings' list plus the admins' list.

The settings' origins are fixed for the process; the admins' are kept in the
store, and every node reloads them when any node changes them (a broker event),
so a change takes effect everywhere without a restart.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from chatserver.errors import BadRequest
from chatserver.store.base import Store


def normalise_origin(text: str) -> str:
    """``scheme://host[:port]`` in lower case, or ``BadRequest``: an origin is nothing more."""
    parts = urlsplit(text.strip())
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
    ):
        raise BadRequest("an origin looks like https://www.example.com (scheme, host, port)")
    try:
        port = parts.port
    except ValueError:
        raise BadRequest("the origin's port is not a number") from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


class AllowedOrigins:
    def __init__(self, fixed: frozenset[str]) -> None:
        self.fixed = fixed
        self.added: frozenset[str] = frozenset()

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (origin in self.fixed or origin in self.added)

    async def reload(self, store: Store) -> None:
        self.added = frozenset(await store.allowed_origins())
