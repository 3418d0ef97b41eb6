"""Secrets: visitor and API tokens (random, stored as SHA-256) and agent passwords (argon2).

Tokens carry 256 random bits, so a fast hash is enough to keep the stored form
useless to a thief; passwords are low-entropy and get argon2, always hashed and
verified off the event loop (invariant 4).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

ROLES = ("agent", "admin", "compliance")
# What each role may do: an admin is also an agent; compliance is kept apart.
GRANTS: dict[str, frozenset[str]] = {
    "agent": frozenset({"agent"}),
    "admin": frozenset({"agent", "admin"}),
    "compliance": frozenset({"compliance"}),
}


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def may(role: str, need: str) -> bool:
    return need in GRANTS.get(role, frozenset())
