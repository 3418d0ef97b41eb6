"""Console sign-in sessions: a signed cookie naming the agent, and its CSRF token.

The cookie is ``<agent id>.<issued at>.<HMAC-SHA256>`` under the server's secret
key; the agent is looked up on every use, so a deactivated agent is out at
once. The CSRF token is derived from the session cookie (double submit): JS
reads it from its own cookie and echoes it in ``X-CSRF-Token`` on every write,
which a cross-site page cannot do.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

SESSION_COOKIE = "chatserver_session"
CSRF_COOKIE = "chatserver_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600


def load_secret_key(configured: str, data_dir: str) -> bytes:
    """The configured key, else one made once and kept (mode 0600) in the data folder."""
    if configured:
        return configured.encode()
    path = Path(data_dir) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a name of its own, then linked into place: nodes that start
        # together on one data folder all end up with the first one's key, and none ever
        # reads a file another is still writing.
        draft = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: theirs is the key
        finally:
            draft.unlink()
    return path.read_text().strip().encode()


def _sign(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def make_session(key: bytes, agent_id: str, now: float | None = None) -> str:
    payload = f"{agent_id}.{int(now if now is not None else time.time())}"
    return f"{payload}.{_sign(key, payload)}"


def read_session(key: bytes, cookie: str | None, now: float | None = None) -> str | None:
    """The agent id of a valid, unexpired session cookie, else None."""
    if not cookie or len(cookie) > 256:
        return None
    payload, _, signature = cookie.rpartition(".")
    agent_id, _, issued = payload.rpartition(".")
    if not agent_id or not issued.isdigit():
        return None
    if not hmac.compare_digest(signature, _sign(key, payload)):
        return None
    if (now if now is not None else time.time()) - int(issued) > SESSION_SECONDS:
        return None
    return agent_id


def csrf_token(key: bytes, session_cookie: str) -> str:
    return _sign(key, "csrf:" + session_cookie)[:32]


def csrf_ok(key: bytes, session_cookie: str, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(header, csrf_token(key, session_cookie))
