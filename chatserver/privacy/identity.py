"""Verify the identity token the operator's platform signs for its logged-in user.

The token is a JWT (RFC 7519). The platform signs it either with ``HS256`` and
the per-site ``identity_secret``, or with ``RS256`` / ``ES256`` and a key
published in a JWKS (``identity_jwks``: a file path or an ``http(s)://`` URL).

Which algorithms are accepted comes from the configuration alone: ``HS256``
only with a secret, ``RS256`` / ``ES256`` only with a JWKS, and then only the
one algorithm that fits the key the ``kid`` names (RSA key: ``RS256``, EC P-256
key: ``ES256``). So ``alg: none`` and algorithm confusion (an ``HS256`` token
"signed" with a public key) have no way in.

Claims: ``sub`` (account id on the platform), ``aud`` (``site_id``), ``iat`` and
``exp`` (at most one hour apart) are required; ``name``, ``email``, ``phone``,
``idp`` and ``pid`` are optional strings. A national identity number (``pid``)
is never kept: only its keyed hash (HMAC-SHA256 with ``pid_pepper``).

Every refusal is ``Unauthorized`` with a plain reason that never repeats the
token or any of its values.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import msgspec

from chatserver.config import SettingsError
from chatserver.errors import Unauthorized

if TYPE_CHECKING:
    from chatserver.config import Settings

log = logging.getLogger(__name__)

LEEWAY_SECONDS = 60
MAX_LIFETIME_SECONDS = 3600
MAX_TOKEN_CHARS = 8192
JWKS_MIN_REFRESH_SECONDS = 30.0
JWKS_FETCH_TIMEOUT_SECONDS = 5.0
JWKS_MAX_BYTES = 1024 * 1024
# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash.
MIN_SECRET_BYTES = 32

MAX_SUB_CHARS = 255
OPTIONAL_CLAIM_MAX_CHARS: dict[str, int] = {
    "name": 200,
    "email": 320,
    "phone": 50,
    "idp": 50,
    "pid": 64,
}
_REQUIRED_CLAIMS = ["sub", "aud", "exp", "iat"]

NOT_CONFIGURED = "identity tokens are not configured on this server"
KEYS_UNAVAILABLE = "identity keys unavailable"
PID_NEEDS_PEPPER = "national id needs CHATSERVER_PID_PEPPER set"


class Identity(msgspec.Struct, frozen=True):
    """A verified person: who the platform says they are, and how it knows."""

    sub: str
    name: str | None
    email: str | None
    phone: str | None
    idp: str | None
    pid_hash: str | None
    issued_at: int
    expires_at: int


def pid_hash(pid: str, pepper: str) -> str:
    """The keyed hash a national identity number is stored and looked up by.

    Unkeyed, the hash of a national id is found by trying every valid number,
    so an empty pepper is refused rather than silently giving a weak hash.
    """
    if not pepper:
        raise ValueError("pid_hash needs a non-empty pepper")
    return hmac.new(pepper.encode(), pid.encode(), hashlib.sha256).hexdigest()


class _JwksError(Exception):
    """The JWKS could not be read, fetched or parsed."""


@dataclass(frozen=True)
class _KeySet:
    keys: tuple[jwt.PyJWK, ...] = ()
    by_kid: dict[str, jwt.PyJWK] = field(default_factory=dict)


# (mtime_ns, size, inode): changes whenever the file is rewritten or replaced.
_FileStamp = tuple[int, int, int]


def _algorithm_for(jwk: dict[str, Any]) -> str | None:
    """The one algorithm a published key may verify, or None for an unusable key.

    Decided from the key type, not from the key's or the token's ``alg``, so a
    JWKS entry cannot widen what the server accepts.
    """
    kty = jwk.get("kty")
    if kty == "RSA":
        algorithm = "RS256"
    elif kty == "EC" and jwk.get("crv") == "P-256":
        algorithm = "ES256"
    else:
        # "oct" keys are symmetric: a secret published in a key set is no secret.
        return None
    if jwk.get("alg", algorithm) != algorithm or jwk.get("use", "sig") != "sig":
        return None
    if "d" in jwk:
        # Private key material in a public key set is an operator mistake; using
        # it would still "work", and hide the leak.
        return None
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        return None
    return algorithm


def _parse_jwks(raw: bytes) -> _KeySet:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise _JwksError("not JSON") from err
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise _JwksError('not a JWKS (no "keys" list)')
    keys: list[jwt.PyJWK] = []
    by_kid: dict[str, jwt.PyJWK] = {}
    for entry in data["keys"]:
        if not isinstance(entry, dict):
            continue
        algorithm = _algorithm_for(entry)
        if algorithm is None:
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=algorithm)
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        if key.Algorithm.check_key_length(key.key) is not None:
            continue
        keys.append(key)
        if key.key_id is not None:
            by_kid.setdefault(key.key_id, key)
    if not keys:
        raise _JwksError("no usable RS256 or ES256 keys")
    return _KeySet(tuple(keys), by_kid)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only: never to ftp:// or anything else urllib knows."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not newurl.lower().startswith(("https://", "http://")):
            raise urllib.error.URLError("redirect away from http(s) refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def _fetch_url(url: str) -> bytes:
    """Blocking: run it in a thread."""
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "chatserver"}
    )
    try:
        with _OPENER.open(request, timeout=JWKS_FETCH_TIMEOUT_SECONDS) as response:
            body: bytes = response.read(JWKS_MAX_BYTES + 1)
    except urllib.error.HTTPError as err:
        # An HTTPError holds the open response; left to the collector it warns.
        err.close()
        raise _JwksError(f"HTTP {err.code}") from None
    except (OSError, ValueError) as err:
        raise _JwksError(str(err) or type(err).__name__) from None
    if len(body) > JWKS_MAX_BYTES:
        raise _JwksError("larger than 1 MB")
    return body


def _read_file(path: Path, known: _FileStamp | None) -> tuple[bytes, _FileStamp] | None:
    """Blocking: the file's bytes and stamp, or None when unchanged since ``known``."""
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp == known:
            return None
        if stat.st_size > JWKS_MAX_BYTES:
            raise _JwksError("larger than 1 MB")
        with path.open("rb") as handle:
            body = handle.read(JWKS_MAX_BYTES + 1)
    except OSError as err:
        raise _JwksError(err.strerror or type(err).__name__) from None
    if len(body) > JWKS_MAX_BYTES:
        raise _JwksError("larger than 1 MB")
    return body, stamp


def _number(payload: dict[str, Any], claim: str) -> float:
    value = payload[claim]
    # bool is an int to Python but not a NumericDate; JSON also lets NaN and
    # Infinity through Python's parser, which would defeat every comparison.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthorized(f"the {claim} claim must be a number of seconds")
    if isinstance(value, float) and not math.isfinite(value):
        raise Unauthorized(f"the {claim} claim must be a number of seconds")
    return value


def _optional(payload: dict[str, Any], claim: str) -> str | None:
    value = payload.get(claim)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Unauthorized(f"the {claim} claim must be a string")
    if len(value) > OPTIONAL_CLAIM_MAX_CHARS[claim]:
        raise Unauthorized(
            f"the {claim} claim is longer than {OPTIONAL_CLAIM_MAX_CHARS[claim]} characters"
        )
    return value


_DECODE_REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.InvalidAudienceError, "the token is not for this site"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not accepted"),
    (jwt.exceptions.InvalidSubjectError, "the sub claim must be a string"),
    (jwt.InvalidKeyError, "the token's signing key is not usable"),
    (jwt.DecodeError, "the token is malformed"),
)


def _refusal(err: Exception) -> Unauthorized:
    if isinstance(err, jwt.MissingRequiredClaimError):
        # err.claim is one of our own required names, never token content.
        return Unauthorized(f"the token has no {err.claim} claim")
    for kind, message in _DECODE_REFUSALS:
        if isinstance(err, kind):
            return Unauthorized(message)
    return Unauthorized("the token is not valid")


class IdentityVerifier:
    """Checks identity tokens against this site's secret and/or key set."""

    def __init__(
        self,
        *,
        site_id: str,
        secret: str = "",
        jwks: str = "",
        pid_pepper: str = "",
        min_refresh_seconds: float = JWKS_MIN_REFRESH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if secret and len(secret.encode()) < MIN_SECRET_BYTES:
            raise SettingsError(
                f"identity_secret must be at least {MIN_SECRET_BYTES} bytes (RFC 7518 3.2)"
            )
        self._site_id = site_id
        self._secret = secret
        self._jwks = jwks
        self._pid_pepper = pid_pepper
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._jwks_url = jwks if jwks.lower().startswith(("https://", "http://")) else ""
        self._jwks_path = Path(os.path.expanduser(jwks)) if jwks and not self._jwks_url else None
        self._keys = _KeySet()
        self._keys_failed = False
        self._file_stamp: _FileStamp | None = None
        self._last_refresh: float | None = None
        # Bumped when a load attempt ends, so callers that queued behind it
        # see that it happened and do not fetch again.
        self._generation = 0
        self._refresh_lock = asyncio.Lock()
        if self._jwks_path is not None:
            # A local file is cheap to read now; a URL waits for the first token
            # because fetching it here would block whoever builds the verifier.
            self._load_keys_now()

    @classmethod
    def from_settings(cls, settings: Settings) -> IdentityVerifier:
        return cls(
            site_id=settings.site_id,
            secret=settings.identity_secret,
            jwks=settings.identity_jwks,
            pid_pepper=settings.pid_pepper,
        )

    @property
    def enabled(self) -> bool:
        return bool(self._secret or self._jwks)

    async def verify(self, token: str) -> Identity:
        """The identity in ``token``; ``Unauthorized`` saying why when it is refused."""
        if not self.enabled:
            raise Unauthorized(NOT_CONFIGURED)
        if not isinstance(token, str) or not token:
            raise Unauthorized("the token is empty")
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized(f"the token is longer than {MAX_TOKEN_CHARS} characters")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise Unauthorized("the token is malformed") from None

        algorithm = header.get("alg")
        key: str | jwt.PyJWK
        if algorithm == "HS256" and self._secret:
            key = self._secret
        elif algorithm in ("RS256", "ES256") and self._jwks:
            key = await self._signing_key(header.get("kid"))
            if key.algorithm_name != algorithm:
                raise Unauthorized("the token's algorithm does not fit its signing key")
        else:
            raise Unauthorized("the token's algorithm is not accepted on this server")

        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                # Only ever the one algorithm the server picked for this key.
                algorithms=[algorithm],
                audience=self._site_id,
                options={
                    "require": _REQUIRED_CLAIMS,
                    # Times are checked below against the injectable clock.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as err:
            raise _refusal(err) from None
        return self._identity(payload)

    def _identity(self, payload: dict[str, Any]) -> Identity:
        sub = payload["sub"]
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("the sub claim must be a non-empty string")
        if len(sub) > MAX_SUB_CHARS:
            raise Unauthorized(f"the sub claim is longer than {MAX_SUB_CHARS} characters")

        issued_at = _number(payload, "iat")
        expires_at = _number(payload, "exp")
        now = self._clock()
        if issued_at > now + LEEWAY_SECONDS:
            raise Unauthorized("the token is issued in the future")
        if payload.get("nbf") is not None and _number(payload, "nbf") > now + LEEWAY_SECONDS:
            raise Unauthorized("the token is not valid yet")
        if expires_at <= now - LEEWAY_SECONDS:
            raise Unauthorized("the token has expired")
        if expires_at < issued_at:
            raise Unauthorized("the token expires before it is issued")
        if expires_at - issued_at > MAX_LIFETIME_SECONDS:
            raise Unauthorized("the token is valid for more than one hour")

        name, email, phone, idp, pid = (
            _optional(payload, claim) for claim in ("name", "email", "phone", "idp", "pid")
        )
        hashed: str | None = None
        if pid is not None:
            if not self._pid_pepper:
                raise Unauthorized(PID_NEEDS_PEPPER)
            hashed = pid_hash(pid, self._pid_pepper)
        return Identity(
            sub=sub,
            name=name,
            email=email,
            phone=phone,
            idp=idp,
            pid_hash=hashed,
            issued_at=int(issued_at),
            expires_at=int(expires_at),
        )

    async def _signing_key(self, kid: Any) -> jwt.PyJWK:
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("the token's key id (kid) must be a string")
        key = self._pick(kid)
        if key is None:
            await self._refresh()
            key = self._pick(kid)
        if key is not None:
            return key
        if self._keys_failed:
            raise Unauthorized(KEYS_UNAVAILABLE)
        if kid is None:
            raise Unauthorized("the token names no signing key (kid)")
        raise Unauthorized("the token's signing key is not known")

    def _pick(self, kid: str | None) -> jwt.PyJWK | None:
        keys = self._keys
        if kid is None:
            # Without a kid there is no choosing; only an unambiguous set will do.
            return keys.keys[0] if len(keys.keys) == 1 else None
        return keys.by_kid.get(kid)

    async def _refresh(self) -> None:
        """Reload the key set, at most once per ``min_refresh_seconds``.

        Unknown kids cost an attacker nothing, so without the limit each one
        would be a request to the platform's JWKS URL.
        """
        seen = self._generation
        async with self._refresh_lock:
            if self._generation != seen:
                return
            now = self._clock()
            last = self._last_refresh
            if last is not None and 0 <= now - last < self._min_refresh:
                return
            self._last_refresh = now
            try:
                if self._jwks_url:
                    await self._fetch_keys()
                else:
                    await asyncio.to_thread(self._load_keys_now)
            finally:
                self._generation += 1

    async def _fetch_keys(self) -> None:
        try:
            raw = await asyncio.to_thread(_fetch_url, self._jwks_url)
            keys = _parse_jwks(raw)
        except _JwksError as err:
            self._failed(err)
            return
        self._keys, self._keys_failed = keys, False

    def _load_keys_now(self) -> None:
        """Read the JWKS file if it changed. Blocking: at start, else in a thread."""
        assert self._jwks_path is not None
        try:
            loaded = _read_file(self._jwks_path, self._file_stamp)
            if loaded is None:
                return
            raw, stamp = loaded
            keys = _parse_jwks(raw)
        except _JwksError as err:
            self._failed(err)
            return
        self._keys, self._keys_failed, self._file_stamp = keys, False, stamp

    def _failed(self, err: _JwksError) -> None:
        # The old keys stay: a platform's JWKS outage must not sign everyone out.
        self._keys_failed = True
        log.warning("identity keys could not be loaded from %s: %s", self._jwks, err)
