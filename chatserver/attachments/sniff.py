"""What a file is, decided from its bytes: never from the name or the header the client sent.

``sniff`` looks at the first bytes of a file and names one of the types this server
knows (``KNOWN_TYPES``), or one it refuses whatever the settings say (``NEVER``), or
``application/octet-stream``. ``TextGuard`` then follows a plain-text file to its
end, because a file that starts as harmless text may turn into markup or binary later.

HTML and SVG are never accepted, however they are named: a browser given either one
runs the scripts inside it. Text that carries their markup is refused too.
"""

from __future__ import annotations

import codecs
import re

from chatserver.errors import UnsupportedType

# How much of the start of a file ``sniff`` needs to decide.
SNIFF_BYTES = 1024

KNOWN_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
)
# Raster images a browser only ever draws: the one kind a download may show inline.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
NEVER = frozenset({"text/html", "image/svg+xml", "application/xml"})
OCTET_STREAM = "application/octet-stream"

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)

# The WHATWG MIME sniffing standard's HTML signatures (section 7.1): a tag name followed by
# a space or ">" at the start of the text, after white space. Browsers that sniff take
# such text as HTML.
_HTML_START = re.compile(
    rb"<(?:!doctype html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p"
    rb"|!--)[ \t\n\f\r>]",
    re.IGNORECASE,
)
_XML_START = re.compile(rb"<\?xml|<svg[\s>/]", re.IGNORECASE)
# Markup that makes a document HTML or SVG wherever it stands in it.
_MARKUP = re.compile(
    r"<(?:script|svg|html|iframe|object|embed)[\s>/]|<!doctype\s|<\?xml", re.IGNORECASE
)
_MARKUP_CARRY = 16  # longer than the longest match, so one split across chunks is still seen
# Controls that do not occur in text: a file with them is binary, whatever it claims.
_BINARY = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
_BOMS = (codecs.BOM_UTF8,)


def sniff(head: bytes) -> str:
    """The type of a file that starts with ``head`` (ideally ``SNIFF_BYTES`` of it)."""
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if not _is_text(head):
        return OCTET_STREAM
    text = head
    for bom in _BOMS:
        if text.startswith(bom):
            text = text[len(bom) :]
    text = text.lstrip(b" \t\n\f\r")
    if _XML_START.match(text):
        if re.search(rb"<svg[\s>/]", head, re.IGNORECASE):
            return "image/svg+xml"
        return "application/xml"
    if _HTML_START.match(text):
        return "text/html"
    if _MARKUP.search(head.decode("utf-8", "ignore")):
        return "text/html"
    return "text/plain"


def _is_text(head: bytes) -> bool:
    """UTF-8 (a character cut at the end of ``head`` is fine) without binary controls."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        text = decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return not _BINARY.search(text)


def refuse(mime: str, allowed: frozenset[str]) -> None:
    """``UnsupportedType`` unless ``mime`` is allowed (HTML and SVG never are)."""
    if mime in NEVER:
        raise UnsupportedType("HTML, SVG and XML files are not accepted, whatever their name")
    if mime not in allowed:
        kinds = ", ".join(sorted(allowed)) or "none"
        what = "its type is not recognised" if mime == OCTET_STREAM else f"it is {mime}"
        raise UnsupportedType(f"this file cannot be attached ({what}); accepted: {kinds}")


class TextGuard:
    """Follows a ``text/plain`` upload to its end: UTF-8 throughout, no binary controls,
    no HTML or SVG markup anywhere (even across chunk boundaries)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._tail = ""

    def feed(self, data: bytes, *, final: bool = False) -> None:
        try:
            text = self._decoder.decode(data, final=final)
        except UnicodeDecodeError:
            raise UnsupportedType("a text file must be UTF-8 throughout") from None
        if _BINARY.search(text):
            raise UnsupportedType("this file is not plain text: it holds binary data")
        window = self._tail + text
        if _MARKUP.search(window):
            raise UnsupportedType("text with HTML or SVG markup is not accepted")
        self._tail = window[-_MARKUP_CARRY:]
