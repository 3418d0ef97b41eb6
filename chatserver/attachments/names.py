"""File names: what a client called a file, made safe to store, show and save.

The name is the one thing of a file the client decides, so it is treated as hostile:
no path, no control or invisible characters (a right-to-left override can show
``gpj.exe`` as ``exe.jpg``), a bounded length, and an extension that matches the type
the bytes were found to be, so that ``invoice.html`` holding text is saved as
``invoice.html.txt`` and never opened as a web page.
"""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import quote

from chatserver.clock import format_ts
from chatserver.privacy.export_files import _safe_name

MAX_NAME_CHARS = 200

EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "application/pdf": (".pdf",),
    "text/plain": (".txt", ".text", ".log", ".csv", ".md"),
}
_INVISIBLE = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"))


def clean_name(raw: str | bytes | None, mime: str) -> str:
    """A safe display name for a file of type ``mime`` that the client called ``raw``."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    name = unicodedata.normalize("NFC", raw or "")
    # Browsers send a bare name, but some old ones sent the whole client-side path.
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = " ".join(name.split())  # runs of white space of any kind: one space
    name = "".join("_" if unicodedata.category(c) in _INVISIBLE else c for c in name)
    name = name.strip(" .")
    if not name:
        name = "file"
    wanted = EXTENSIONS.get(mime, ())
    stem, dot, ext = name.rpartition(".")
    has_right_ext = bool(dot and stem) and "." + ext.lower() in wanted
    suffix = "" if has_right_ext or not wanted else wanted[0]
    budget = MAX_NAME_CHARS - len(suffix)
    if len(name) > budget:
        if has_right_ext:
            keep = budget - len(ext) - 1
            name = stem[:keep].rstrip(" .") + "." + ext
        else:
            name = name[:budget].rstrip(" .")
    return (name or "file") + suffix


def content_disposition(name: str, *, inline: bool) -> str:
    """``Content-Disposition`` with an ASCII fallback and the UTF-8 name (RFC 6266, 8187)."""
    kind = "inline" if inline else "attachment"
    ascii_name = (
        unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().replace('"', "")
    )
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c != "\\" else "_" for c in ascii_name)
    ascii_name = ascii_name.strip() or "file"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def zip_name(attachment_id: str, name: str) -> str:
    """The file's name inside the export ZIP (under ``files/``): unique by its id, and
    already what ``write_zip`` makes of it, so the JSON can name it before it is written."""
    return _safe_name(f"{attachment_id}-{name}")


def export_entry(row: dict[str, Any]) -> dict[str, Any]:
    """An attachment as the data-access export lists it (``row`` from ``export_rows``)."""
    return {
        "id": row["id"],
        "name": row["name"],
        "size": row["size"],
        "type": row["type"],
        "sha256": row["sha256"],
        "uploaded_at": format_ts(row["created_at"]),
        "file": "files/" + zip_name(row["id"], row["name"]),
    }
