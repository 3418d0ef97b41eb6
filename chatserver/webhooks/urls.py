"""Where a webhook may point, checked when it is registered and again at each delivery.

Registration refuses what can never work or should never be stored: schemes
other than http and https, user names and passwords in the URL (they would
show in logs and the console), fragments, and, unless ``webhook_allow_private``
is on, a literal loopback or private address.

Each delivery resolves the host itself, refuses it when any address it
resolves to is not public (again unless allowed), and then connects to that
very address: a DNS answer that changes between the check and the connection
(DNS rebinding) cannot steer the request into the server's own network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from chatserver.errors import BadRequest

MAX_URL_CHARS = 2048
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """A delivery may not go to this address; the message says why (for the log)."""


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address: not loopback, private, link-local, shared,
    reserved, documentation or multicast (IPv4 inside IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(url: str, *, allow_private: bool) -> str:
    """The URL as it will be stored, or ``BadRequest`` saying what is wrong with it."""
    if len(url) > MAX_URL_CHARS:
        raise BadRequest(f"url is longer than {MAX_URL_CHARS} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise BadRequest("url must be ASCII without spaces (write an IDN host in its xn-- form)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadRequest(f"url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise BadRequest("url must start with http:// or https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise BadRequest("url must not carry a user name or password: the secret signs requests")
    if parts.fragment or url.endswith("#"):
        raise BadRequest("url must not have a #fragment: it is never sent")
    host = parts.hostname or ""
    if not host:
        raise BadRequest("url has no host")
    if port == 0:
        raise BadRequest("url has port 0")
    address = _literal(host)
    if address is None and not _HOSTNAME.match(host):
        raise BadRequest("url has an invalid host name")
    if address is not None and not allow_private and not is_public(address):
        raise BadRequest(
            f"url points at {address}, a non-public address; the server refuses those "
            "unless webhook_allow_private is on"
        )
    return url


@dataclass(frozen=True)
class Target:
    """Where one delivery connects: ``url`` has the checked IP address in place of the
    host; ``host_header`` and ``sni`` carry the name the endpoint was registered with."""

    url: str
    host_header: str
    sni: str | None


def _netloc(address: IPAddress, port: int | None) -> str:
    host = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    return host if port is None else f"{host}:{port}"


async def resolve(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host and pin the request to one checked address, or ``Refused``."""
    parts: SplitResult = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port
    address = _literal(host)
    if address is not None:
        addresses = [address]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise Refused(f"cannot resolve {host}: {exc.strerror or exc}") from None
        addresses = []
        for info in infos:
            # Drop an IPv6 zone ("fe80::1%eth0"): link-local is refused anyway.
            found = _literal(str(info[4][0]).split("%", 1)[0])
            if found is not None and found not in addresses:
                addresses.append(found)
        if not addresses:
            raise Refused(f"{host} has no address")
    if not allow_private:
        # Every address must be public: otherwise an attacker's DNS could list a
        # public one for the check and an internal one for the connection.
        for found in addresses:
            if not is_public(found):
                raise Refused(
                    f"{host} resolves to {found}, a non-public address "
                    "(webhook_allow_private is off)"
                )
    pinned = parts._replace(netloc=_netloc(addresses[0], port))
    default_port = 443 if parts.scheme == "https" else 80
    host_header = host if port in (None, default_port) else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" if port in (None, default_port) else f"[{host}]:{port}"
    return Target(
        url=pinned.geturl(),
        host_header=host_header,
        sni=host if parts.scheme == "https" and address is None else None,
    )
