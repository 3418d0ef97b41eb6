"""A JSON body that does not fit its struct, told in words: which field, why, and how.

msgspec says what went wrong in its own terms: "Expected `str`, got `int` - at
`$.email`", "Object missing required field `email`", "Expected `str` matching
regex '^[a-z0-9_-]+$' - at `$.shortcut`". ``invalid_body`` turns that into a
``BadRequest`` whose ``field`` is the field's path in the body (``email``,
``notify.sound``; list indexes and dictionary keys are left out, so ``$.tags[3]``
is ``tags``), whose ``reason`` is one of ``chatserver.errors.REASONS``, and whose
message is a sentence a person can act on: "email: expected a string, got a
number", "email is required", "shortcut: too long (at most 32 characters)". A
message never shows a regular expression or msgspec's ``$.`` paths: a field with
a pattern is described by ``PATTERN_HINTS`` (keyed by the field's name), or else
said to have characters that are not allowed.
"""

from __future__ import annotations

import enum
import re
from typing import Any

import msgspec
import msgspec.inspect as mi

from chatserver.errors import BadRequest

# What a field with a pattern takes, in words, by the field's own name (the last part
# of its path). ``{field}`` is replaced with the whole path.
PATTERN_HINTS: dict[str, str] = {
    "email": "{field}: expected an email address, like name@example.com",
    "shortcut": "{field}: use only lower-case letters a to z, digits, hyphens and underscores",
    "start": "{field}: expected a time of day from 00:00 to 24:00, like 09:30",
    "end": "{field}: expected a time of day from 00:00 to 24:00, like 17:00",
    "closed_dates": "{field}: expected dates like 2026-12-24",
}

# msgspec's names of JSON types, as a sentence says them.
_EXPECTED = {
    "str": "a string",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "null": "null",
    "array": "a list",
    "object": "an object",
    "bytes": "a base64 string",
    "datetime": "a date and time (RFC 3339)",
    "date": "a date like 2026-12-24",
    "time": "a time of day",
    "uuid": "a UUID",
    "decimal": "a number",
}
_GOT = {**_EXPECTED, "int": "a number", "bool": "a boolean", "float": "a fractional number"}

_AT = re.compile(r"^(?P<what>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_TYPE = re.compile(r"^Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)`$")
_LENGTH = re.compile(r"^Expected `(?P<kind>[^`]*)` of length (?P<op>[<>]=?) (?P<n>\d+)$")
_PATTERN = re.compile(r"^Expected `[^`]*` matching regex ")
_RANGE = re.compile(r"^Expected `(?:int|float|decimal)` (?P<op>[<>]=?) (?P<n>-?[\d.e+-]+)$")
_MULTIPLE = re.compile(r"^Expected `(?:int|float|decimal)` that's a multiple of (?P<n>[\d.]+)$")
_ENUM = re.compile(r"^Invalid enum value ")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[([^\]]*)\]")


def invalid_body(exc: msgspec.ValidationError, shape: Any = None) -> BadRequest:
    """The ``BadRequest`` for a body of type ``shape`` that msgspec refused with ``exc``."""
    text = str(exc)
    match = _AT.match(text)
    assert match is not None  # the pattern matches any text
    what, path = match.group("what"), match.group("path") or "$"
    segments = _segments(path)
    at = _field(segments)

    if m := _MISSING.match(what):
        field = _join(at, m.group("name"))
        return BadRequest(f"{field} is required", field=field, reason="required")
    if m := _UNKNOWN.match(what):
        field = _join(at, m.group("name"))
        known = _field_names(shape, segments)
        hint = f" (known: {_list(known, 'and')})" if known else ""
        message = f"{field} is not a known field{hint}"
        return BadRequest(message, field=field, reason="unknown_field")
    if m := _TYPE.match(what):
        want, got = _say(m.group("want"), _EXPECTED), _say(m.group("got"), _GOT)
        return BadRequest(
            f"{at or 'the body'}: expected {want}, got {got}", field=at, reason="type"
        )
    if m := _LENGTH.match(what):
        return _length(at, m.group("kind"), m.group("op"), int(m.group("n")))
    if _PATTERN.match(what):
        name = at.rsplit(".", 1)[-1] if at else ""
        described = PATTERN_HINTS.get(name)
        message = (
            described.format(field=at)
            if described
            else f"{at or 'the body'} has characters that are not allowed"
        )
        return BadRequest(message, field=at, reason="pattern")
    if m := _RANGE.match(what):
        words = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}
        return BadRequest(
            f"{at or 'the body'}: must be {words[m.group('op')]} {m.group('n')}",
            field=at,
            reason="range",
        )
    if m := _MULTIPLE.match(what):
        return BadRequest(
            f"{at or 'the body'}: must be a multiple of {m.group('n')}", field=at, reason="range"
        )
    if _ENUM.match(what):
        allowed = _allowed_values(shape, segments)
        message = (
            f"{at or 'the body'}: must be one of {_list(allowed)}"
            if allowed
            else f"{at or 'the body'}: not one of the allowed values"
        )
        return BadRequest(message, field=at, reason="invalid")
    # Anything else msgspec says ("Invalid RFC3339 encoded datetime" ...), without its
    # backticks and paths.
    plain = what.replace("`", "").strip()
    plain = plain[:1].lower() + plain[1:]
    return BadRequest(f"{at or 'the body'}: {plain}", field=at, reason="invalid")


def _segments(path: str) -> list[str]:
    """``$.a[0].b`` as ``["a", "[]", "b"]``: names, and ``[]`` for an index or key."""
    return [name if name else "[]" for name, _ in _SEGMENT.findall(path)]


def _field(segments: list[str]) -> str | None:
    names = [s for s in segments if s != "[]"]
    return ".".join(names) or None


def _join(at: str | None, name: str) -> str:
    return f"{at}.{name}" if at else name


def _say(types: str, words: dict[str, str]) -> str:
    """msgspec's ``int | null`` as "a whole number or null"."""
    parts = [words.get(t.strip(), f"a {t.strip()}") for t in types.split("|")]
    return " or ".join(dict.fromkeys(parts))


def _length(at: str | None, kind: str, op: str, n: int) -> BadRequest:
    field = at or "the body"
    if op.startswith("<"):
        limit = n if op == "<=" else n - 1
        if kind == "str":
            message = f"{field}: too long (at most {limit} character{'s' * (limit != 1)})"
        else:
            message = f"{field}: too many items (at most {limit})"
        return BadRequest(message, field=at, reason="too_long")
    least = n if op == ">=" else n + 1
    if kind == "str":
        message = (
            f"{field} must not be empty"
            if least == 1
            else f"{field}: too short (at least {least} characters)"
        )
    else:
        message = f"{field} must not be empty" if least == 1 else f"{field}: at least {least} items"
    return BadRequest(message, field=at, reason="too_short")


def _list(values: list[str], conjunction: str = "or") -> str:
    if len(values) <= 2:
        return f" {conjunction} ".join(values)
    return ", ".join(values[:-1]) + f" {conjunction} " + values[-1]


# ---------------------------------------------------------------- the shape, for hints


def _type_at(shape: Any, segments: list[str]) -> mi.Type | None:
    """The msgspec type at ``segments`` of ``shape``, when it can be told."""
    if shape is None:
        return None
    try:
        current: mi.Type = mi.type_info(shape)
    except (TypeError, ValueError):
        return None
    for segment in segments:
        found = None
        for t in _members(current):
            if segment == "[]":
                if isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
                    found = t.item_type
                elif isinstance(t, mi.DictType):
                    found = t.value_type
            elif isinstance(t, mi.StructType | mi.DataclassType | mi.TypedDictType):
                found = next((f.type for f in t.fields if f.encode_name == segment), None)
            if found is not None:
                break
        if found is None:
            return None
        current = found
    return current


def _members(t: mi.Type) -> list[mi.Type]:
    """A type's alternatives: the members of a union, each without its constraints."""
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        return [m for u in t.types for m in _members(u)]
    return [t]


def _field_names(shape: Any, segments: list[str]) -> list[str]:
    t = _type_at(shape, segments)
    for member in _members(t) if t is not None else []:
        if isinstance(member, mi.StructType | mi.DataclassType | mi.TypedDictType):
            return [f.encode_name for f in member.fields]
    return []


def _allowed_values(shape: Any, segments: list[str]) -> list[str]:
    t = _type_at(shape, segments)
    values: list[str] = []
    for member in _members(t) if t is not None else []:
        if isinstance(member, mi.LiteralType):
            values += [str(v) for v in member.values]
        elif isinstance(member, mi.EnumType):
            values += [str(m.value) for m in member.cls if isinstance(m, enum.Enum)]
        elif isinstance(member, mi.NoneType):
            values.append("null")
    return values
