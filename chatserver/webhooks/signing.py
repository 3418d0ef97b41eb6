"""The ``Chatserver-Signature`` header: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The HMAC key is the endpoint's secret (its UTF-8 bytes, ``whsec_`` prefix and
all) and the message is ``"<t>.<raw body>"``. Binding the time into the MAC
lets a receiver refuse an old delivery replayed by someone who captured it;
remembering the ``id`` of each body it accepted (for as long as the tolerance)
refuses a replay inside the window too.

``verify_signature`` uses nothing but the standard library so that receivers
written in Python can copy it as it is.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Chatserver-Signature"
TOLERANCE = 300


class InvalidSignature(ValueError):
    """The header is malformed, the MAC does not match, or the time is too far off."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, header: str, body: bytes, now: float, tolerance: int = TOLERANCE
) -> int:
    """Check a delivery; answers its timestamp, or raises ``InvalidSignature``.

    ``body`` must be the raw bytes as received (not re-encoded JSON), ``now``
    the receiver's Unix time. A timestamp more than ``tolerance`` seconds from
    ``now`` either way is refused. Several ``v1`` entries are allowed; one
    matching is enough.
    """
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise InvalidSignature("malformed signature header")
        if key == "t":
            if not value.isascii() or not value.isdigit() or len(value) > 12:
                raise InvalidSignature("malformed timestamp")
            timestamp = int(value)
        elif key == "v1":
            macs.append(value)
    if timestamp is None or not macs:
        raise InvalidSignature("the header needs t= and v1=")
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance: a replay, or a clock off")
    expected = sign(secret, timestamp, body).split(",v1=", 1)[1]
    if not any(hmac.compare_digest(expected.encode(), mac.encode()) for mac in macs):
        raise InvalidSignature("signature does not match")
    return timestamp
