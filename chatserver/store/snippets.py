"""Inbox text shown beside a conversation: the preview of its last message, and the
snippet of a search hit as parts ``(text, hit)`` (so no client needs to parse markup).

The stores' search functions (FTS5 ``snippet()``, PostgreSQL ``ts_headline()``) mark
hits with two private-use characters; ``marked_parts`` splits their output on them.
"""

from __future__ import annotations

import re
import unicodedata

from chatserver.store.models import SnippetPart

MARK_START = "\ue000"
MARK_END = "\ue001"
ELLIPSIS = "…"
PREVIEW_CHARS = 140
# Roughly how many words a snippet holds (FTS5 counts tokens, ts_headline words).
SNIPPET_WORDS = 16
# What the stores trim off a body's start before taking its head for the preview.
LEADING_BLANKS = " \t\r\n\f\v"
# How much of a body's (trimmed) head they hand over for the preview.
PREVIEW_HEAD = 400

_MARKS = re.compile(f"({MARK_START}|{MARK_END})")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\S+")


def preview(head: str | None) -> str:
    """The first non-empty line of ``head``, trimmed, cut to 140 characters with "…"."""
    for line in (head or "").splitlines():
        line = line.strip()
        if line:
            if len(line) <= PREVIEW_CHARS:
                return line
            return line[: PREVIEW_CHARS - 1].rstrip() + ELLIPSIS
    return ""


def finish(parts: list[tuple[str, bool]]) -> tuple[SnippetPart, ...]:
    """Whitespace runs made one space, the ends trimmed, empty parts dropped, neighbours
    of the same kind joined."""
    out: list[list[object]] = []
    for text, hit in parts:
        text = _SPACE.sub(" ", text)
        if not text:
            continue
        if out and out[-1][1] == hit:
            out[-1][0] = str(out[-1][0]) + text
        else:
            out.append([text, hit])
    if out:
        out[0][0] = str(out[0][0]).lstrip()
        out[-1][0] = str(out[-1][0]).rstrip()
    return tuple(SnippetPart(text=str(t), hit=bool(h)) for t, h in out if t)


def marked_parts(text: str) -> tuple[SnippetPart, ...]:
    """Split a snippet marked with MARK_START … MARK_END into parts."""
    parts: list[tuple[str, bool]] = []
    hit = False
    for piece in _MARKS.split(text):
        if piece == MARK_START:
            hit = True
        elif piece == MARK_END:
            hit = False
        elif piece:
            parts.append((piece, hit))
    return finish(parts)


def has_marks(text: str) -> bool:
    return MARK_START in text or MARK_END in text


def plain_snippet(body: str, needle: str) -> tuple[SnippetPart, ...]:
    """A snippet around the first occurrence of ``needle`` (any case), marked as a hit:
    for messages the search index has not reached yet, matched by a plain substring."""
    found = re.search(re.escape(needle), body, re.IGNORECASE) if needle else None
    if found is None:
        words = list(_WORD.finditer(body))
        if len(words) <= SNIPPET_WORDS:
            return finish([(body, False)])
        return finish([(body[: words[SNIPPET_WORDS - 1].end()] + ELLIPSIS, False)])
    before, after = body[: found.start()], body[found.end() :]
    keep = SNIPPET_WORDS // 2
    starts = [w.start() for w in _WORD.finditer(before)]
    cut = starts[-keep] if len(starts) > keep else 0
    lead = (ELLIPSIS if cut > 0 else "") + before[cut:]
    ends = [w.end() for w in _WORD.finditer(after)]
    end = ends[keep - 1] if len(ends) > keep else len(after)
    tail = after[:end] + (ELLIPSIS if after[end:].strip() else "")
    return finish([(lead, False), (found.group(0), True), (tail, False)])


def fold(text: str) -> str:
    """``text`` without its accents, as the PostgreSQL search folds messages (migration 5)."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if not 0x300 <= ord(c) <= 0x36F)


def unfolded_parts(body: str, headline: str) -> tuple[SnippetPart, ...]:
    """The parts of a ``ts_headline`` made over ``fold(body)``, in the body's own letters.

    PostgreSQL searches the folded text (``café`` is found as ``cafe``), so its headline
    is of the folded text too; it is a piece of it, which is mapped back to the body
    character by character. Should that fail, the folded headline is shown as it is.
    """
    folded: list[str] = []
    origin: list[int] = []  # for each folded character, the body's character it came from
    for i, ch in enumerate(body):
        for f in fold(ch):
            folded.append(f)
            origin.append(i)
    plain: list[str] = []
    spans: list[tuple[int, int]] = []
    pos, start, hit = 0, 0, False
    for piece in _MARKS.split(headline):
        if piece == MARK_START:
            hit, start = True, pos
        elif piece == MARK_END:
            if hit and pos > start:
                spans.append((start, pos))
            hit = False
        else:
            plain.append(piece)
            pos += len(piece)
    text = "".join(plain)
    at = "".join(folded).find(text) if text else -1
    if at < 0:
        return marked_parts(headline)

    def back(a: int, b: int) -> tuple[int, int]:
        x, y = origin[at + a], origin[at + b - 1] + 1
        while y < len(body) and not fold(body[y]):
            y += 1  # the accents of the last letter
        return x, y

    first, last = back(0, len(text))
    parts: list[tuple[str, bool]] = []
    if body[:first].strip():
        parts.append((ELLIPSIS, False))
    cursor = first
    for a, b in spans:
        x, y = back(a, b)
        parts.append((body[cursor:x], False))
        parts.append((body[x:y], True))
        cursor = y
    parts.append((body[cursor:last], False))
    if body[last:].strip():
        parts.append((ELLIPSIS, False))
    return finish(parts)
