"""Templates to messages: Jinja2 (HTML autoescaped) in English and Norwegian, and MIME.

Every email is a ``multipart/alternative`` of a plain-text part and an HTML part,
both from templates named ``<name>.<locale>.txt`` and ``<name>.<locale>.html``. The
text template holds the subject in a ``subject`` block and the text in ``body``,
so one file per language says everything a translator needs to see.
"""

from __future__ import annotations

import email.policy
import re
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

LOCALES = ("en", "nb")

# Norwegian in any of its written forms (and the macro tag "no") reads the nb templates.
_NORWEGIAN = re.compile(r"^(nb|no|nn)(\b|[-_])", re.IGNORECASE)

# Stricter than the offline form's check: the address goes into a To header and to an
# SMTP server, so no spaces, brackets, quotes or separators, and a dotted domain.
_EMAIL = re.compile(
    r"^[^@\s<>()\[\],;:\"\\]{1,64}@(?=.{1,253}$)(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}$"
)


def pick_locale(raw: str | None) -> str:
    """``nb`` for Norwegian tags (``nb``, ``no``, ``nn``, ``nb-NO`` …), else ``en``."""
    return "nb" if raw and _NORWEGIAN.match(raw.strip()) else "en"


def valid_address(address: str) -> bool:
    return bool(_EMAIL.fullmatch(address))


def format_time(us: int, locale: str) -> str:
    """A UTC time as a reader of that language writes it (emails have no time zone of
    the reader, so UTC is said)."""
    t = time.gmtime(us // 1_000_000)
    if locale == "nb":
        return time.strftime("%d.%m.%Y kl. %H:%M UTC", t)
    return time.strftime("%Y-%m-%d %H:%M UTC", t)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class Renderer:
    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("chatserver.mail", "templates"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def render(self, name: str, locale: str, **context: Any) -> Rendered:
        locale = locale if locale in LOCALES else "en"
        text = self.env.get_template(f"{name}.{locale}.txt")
        ctx = text.new_context(context)
        subject = " ".join("".join(text.blocks["subject"](ctx)).split())
        body = "".join(text.blocks["body"](ctx)).strip() + "\n"
        html = self.env.get_template(f"{name}.{locale}.html").render(
            subject=subject, lang=locale, **context
        )
        return Rendered(subject=subject, text=body, html=html)

    def page(self, locale: str, **context: Any) -> str:
        """The web page a confirmation link opens."""
        locale = locale if locale in LOCALES else "en"
        return self.env.get_template(f"page.{locale}.html").render(lang=locale, **context)


def compose(rendered: Rendered, *, mail_from: str, to: str, reply_to: str | None = None) -> str:
    """The whole message as the SMTP server gets it (7-bit: parts are encoded)."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = rendered.subject
    msg["From"] = mail_from
    msg["To"] = to
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Date"] = formatdate(usegmt=True)
    # Given a domain, make_msgid does not look up this host's name (a DNS query).
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"
    msg["Message-ID"] = make_msgid(domain=domain)
    # RFC 3834: no out-of-office replies to these.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg.as_string()


def envelope_sender(mail_from: str) -> str:
    return parseaddr(mail_from)[1]
