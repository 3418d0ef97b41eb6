"""Static files served as a CDN would: compressed once (brotli and gzip), chosen by
``Accept-Encoding``, with a strong ``ETag`` and ``304 Not Modified`` on ``If-None-Match``.

A file is read and compressed the first time an app asks for it, and again only when
it changes on disk (size or modification time): once per process in production.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import brotli
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}


@dataclass(frozen=True)
class Asset:
    """One file and its compressed forms, each with its own strong ETag."""

    body: bytes
    media_type: str
    digest: str  # hex sha-256 of the uncompressed bytes
    encoded: dict[str, bytes]  # "br", "gzip": only the ones smaller than the original

    @classmethod
    def of(cls, body: bytes, media_type: str) -> Asset:
        encoded = {
            "br": brotli.compress(body, quality=11),
            "gzip": gzip.compress(body, compresslevel=9, mtime=0),
        }
        return cls(
            body=body,
            media_type=media_type,
            digest=hashlib.sha256(body).hexdigest(),
            encoded={k: v for k, v in encoded.items() if len(v) < len(body)},
        )

    @property
    def short_hash(self) -> str:
        """The first 12 hex digits of the digest: the version in ``/widget.<hash>.js``."""
        return self.digest[:12]

    def etag(self, encoding: str) -> str:
        # Strong, and distinct per encoding: each encoding is a different byte sequence.
        tag = self.digest[:32]
        return f'"{tag}"' if encoding == "identity" else f'"{tag}-{encoding}"'

    def choose(self, accept_encoding: str) -> str:
        """The encoding to send: brotli, else gzip, else none, as the client accepts."""
        accepted: dict[str, float] = {}
        for part in accept_encoding.split(","):
            name, _, params = part.strip().partition(";")
            quality = 1.0
            for param in params.split(";"):
                key, _, value = param.strip().partition("=")
                if key.strip().lower() == "q":
                    try:
                        quality = float(value)
                    except ValueError:
                        quality = 0.0
            if name.strip():
                accepted[name.strip().lower()] = quality
        for encoding in ("br", "gzip"):
            q = accepted.get(encoding, accepted.get("*", 0.0))
            if encoding in self.encoded and q > 0:
                return encoding
        return "identity"

    def response(self, request: Request | Headers, headers: dict[str, str]) -> Response:
        """200 with the chosen encoding, or 304 when the client already has this version."""
        request_headers = request if isinstance(request, Headers) else request.headers
        encoding = self.choose(request_headers.get("accept-encoding", ""))
        all_headers = {
            **headers,
            "ETag": self.etag(encoding),
            "Vary": "Accept-Encoding",
        }
        if self._matches(request_headers.get("if-none-match")):
            return Response(status_code=304, headers=all_headers)
        if encoding != "identity":
            all_headers["Content-Encoding"] = encoding
        body = self.encoded.get(encoding, self.body)
        return Response(body, media_type=self.media_type, headers=all_headers)

    def _matches(self, if_none_match: str | None) -> bool:
        if not if_none_match:
            return False
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        if "*" in tags:
            return True
        # Any encoding of these same bytes is current: the client's copy is fresh.
        return any(self.etag(e) in tags for e in ("identity", *self.encoded))


_cache: dict[Path, tuple[tuple[int, int], Asset]] = {}
_lock = threading.Lock()


def load(path: Path, media_type: str | None = None) -> Asset:
    """The file at ``path``, compressed; computed again only if the file has changed."""
    stat = path.stat()
    key = (stat.st_size, stat.st_mtime_ns)
    with _lock:
        cached = _cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    kind = media_type or MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    asset = Asset.of(path.read_bytes(), kind)
    with _lock:
        _cache[path] = (key, asset)
    return asset


class Folder:
    """An ASGI app for a folder of files, all loaded and compressed when it is made.

    Only the files there at start-up are served (no path from a request ever reaches
    the file system). ``Cache-Control: no-cache``: browsers keep the files and ask
    each time whether they are current, which costs a 304.
    """

    def __init__(self, root: Path, suffixes: tuple[str, ...] = tuple(MEDIA_TYPES)) -> None:
        self.files = {
            str(p.relative_to(root)): load(p)
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix in suffixes
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(405)
        path = scope["path"].removeprefix(scope.get("root_path", "")).lstrip("/")
        asset = self.files.get(path)
        if asset is None:
            raise HTTPException(404)
        response = asset.response(Headers(scope=scope), {"Cache-Control": "no-cache"})
        await response(scope, receive, send)
