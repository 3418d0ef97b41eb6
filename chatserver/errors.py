"""Every error the server reports, each with one stable wire code.

::

    ChatError                 internal      500
    ├── BadRequest            bad_request   400
    │   ├── BadFrame          bad_frame     400  (a WebSocket frame that does not parse)
    │   └── WeakPassword      weak_password 400  (a new password that is too easy to guess)
    ├── TooLarge              too_large     413  (socket: close 1009)
    ├── UnsupportedType       unsupported_type 415 (an attachment's bytes are not an allowed type)
    ├── Unauthorized          unauthorized  401
    ├── Forbidden             forbidden     403
    │   └── VerificationRequired verification_required 403 (a "verified only" site)
    ├── NotFound              not_found     404
    ├── Conflict              conflict      409
    ├── RateLimited           rate_limited  429
    └── Unavailable           unavailable   503

The web layer turns them into ``{"error": {"code", "message"}}`` with the status,
and the socket layer into an ``error`` frame. Raise them from the core; never
build an error body by hand.

An error about one field of the input names it: ``field`` is its path in the
JSON body (``email``, ``notify.sound``, ``tags`` for any item of ``tags``), and
``reason`` says what kind of failure it is, one of ``REASONS``, so that a client
can put its own words next to that field. Both go into the HTTP error body
when set (``chatserver.validation`` makes them from a body that does not fit
its struct).
"""

from __future__ import annotations

# Stable names of the kinds of failure of one field (the HTTP error body's ``reason``).
REASONS = (
    "required",  # missing
    "type",  # of the wrong JSON type (a number where a string goes)
    "too_long",  # a string, list or object longer than allowed
    "too_short",  # shorter than allowed (an empty name)
    "pattern",  # characters that are not allowed
    "range",  # a number out of its range
    "unknown_field",  # a field the body may not have
    "invalid",  # anything else: not one of the allowed values, not a date ...
)


class ChatError(Exception):
    code = "internal"
    status = 500

    def __init__(
        self,
        message: str = "internal error",
        *,
        field: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # The input field at fault, if one is, and what is wrong with it (one of REASONS).
        self.field = field
        self.reason = reason


class BadRequest(ChatError):
    code = "bad_request"
    status = 400


class BadFrame(BadRequest):
    code = "bad_frame"


class WeakPassword(BadRequest):
    """A new password that is too short or too easy to guess (``chatserver.passwords``)."""

    code = "weak_password"


class TooLarge(ChatError):
    code = "too_large"
    status = 413


class UnsupportedType(ChatError):
    """An uploaded file whose bytes are not of a type the settings allow (never HTML or SVG)."""

    code = "unsupported_type"
    status = 415


class Unauthorized(ChatError):
    code = "unauthorized"
    status = 401


class Forbidden(ChatError):
    code = "forbidden"
    status = 403


class VerificationRequired(Forbidden):
    """This site takes verified visitors only: log in on the platform, then chat."""

    code = "verification_required"


class NotFound(ChatError):
    code = "not_found"
    status = 404


class Conflict(ChatError):
    code = "conflict"
    status = 409


class RateLimited(ChatError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        # Seconds; sent as Retry-After on HTTP.
        self.retry_after = retry_after


class Unavailable(ChatError):
    code = "unavailable"
    status = 503


ALL_CODES = tuple(
    cls.code
    for cls in (
        BadRequest,
        BadFrame,
        WeakPassword,
        TooLarge,
        UnsupportedType,
        Unauthorized,
        Forbidden,
        VerificationRequired,
        NotFound,
        Conflict,
        RateLimited,
        Unavailable,
        ChatError,
    )
)

# WebSocket close codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013
