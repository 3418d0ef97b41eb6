"""The rule for staff passwords: at least 10 characters, and hard to guess.

"Hard to guess" is zxcvbn's estimate (Dropbox's password strength estimator) of
score 3 or more (about 10^8 guesses or more): it knows common passwords, names,
words, keyboard patterns, dates, repeats and l33t spelling, and is told the
person's email address and name so that "kari.nordmann1" is weak for Kari
Nordmann. zxcvbn counts a separator between words as a few guesses more
("kari.nordmann" would pass), so the password is also judged without its
separators, and the weaker of the two answers counts. A weak password is
refused with ``WeakPassword`` (``weak_password``, field ``password``) and
zxcvbn's own advice as the message.

Every place that sets a password applies it: ``POST /api/v1/agents``,
``/console/password``, accepting an invitation, and ``chatserver agent add``.
Signing in does not: a password set before this rule still works.
"""

from __future__ import annotations

import asyncio
import re

from zxcvbn import zxcvbn

from chatserver.errors import WeakPassword

MIN_LENGTH = 10
MIN_SCORE = 3
# zxcvbn refuses longer input, and its matching grows with the length: past this, the
# first 72 characters are judged (a strong start makes a strong password).
_JUDGED_CHARS = 72
_WORDS = re.compile(r"[^\W_]+", re.UNICODE)


def _user_inputs(values: tuple[str | None, ...]) -> list[str]:
    """The person's email and name, whole and word by word (``kari``, ``nordmann``)."""
    found: list[str] = []
    for value in values:
        if not value:
            continue
        found.append(value.lower())
        found += [w.lower() for w in _WORDS.findall(value) if len(w) > 2]
    return list(dict.fromkeys(found))


def weakness(password: str, *, email: str | None = None, name: str | None = None) -> str | None:
    """Why ``password`` is refused, as a sentence; None when it is good enough."""
    if len(password) < MIN_LENGTH:
        return f"The password is too short: use at least {MIN_LENGTH} characters."
    inputs = _user_inputs((email, name))
    judged = password[:_JUDGED_CHARS]
    result = zxcvbn(judged, user_inputs=inputs)
    joined = "".join(_WORDS.findall(judged))
    if joined != judged and len(joined) >= MIN_LENGTH // 2:
        # Words with dots, spaces or dashes between them are no harder than the words.
        other = zxcvbn(joined, user_inputs=inputs)
        if int(other["score"]) < int(result["score"]):
            result = other
    if int(result["score"]) >= MIN_SCORE:
        return None
    feedback = result.get("feedback") or {}
    warning = str(feedback.get("warning") or "").strip()
    suggestions = [str(s).strip() for s in feedback.get("suggestions") or () if str(s).strip()]
    if not suggestions:
        suggestions = ["Add another word or two. Uncommon words are better."]
    parts = ["The password is too easy to guess."]
    if warning:
        parts.append(warning if warning.endswith(".") else warning + ".")
    parts += [s if s.endswith(".") else s + "." for s in suggestions]
    return " ".join(parts)


def check(
    password: str,
    *,
    email: str | None = None,
    name: str | None = None,
    field: str = "password",
) -> None:
    """``WeakPassword`` (about body field ``field``) unless ``password`` follows the rule."""
    why = weakness(password, email=email, name=name)
    if why is not None:
        reason = "too_short" if len(password) < MIN_LENGTH else "invalid"
        raise WeakPassword(why, field=field, reason=reason)


async def check_async(
    password: str,
    *,
    email: str | None = None,
    name: str | None = None,
    field: str = "password",
) -> None:
    """``check`` off the event loop: zxcvbn takes a few milliseconds of CPU."""
    await asyncio.to_thread(check, password, email=email, name=name, field=field)
