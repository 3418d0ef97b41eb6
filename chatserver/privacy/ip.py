"""IP address truncation (P4, P8): keep the network, drop the host."""

from __future__ import annotations

import ipaddress

IPV4_PREFIX = 24
IPV6_PREFIX = 48


def truncate_ip(text: str) -> str | None:
    """The address with its host part zeroed: IPv4 to /24, IPv6 to /48.

    An IPv4-mapped IPv6 address (``::ffff:192.0.2.7``) is an IPv4 address in
    disguise and is cut to /24 like one, else /48 would keep it whole. Text
    that is not an address at all is dropped (None): it cannot be truncated,
    so it cannot be kept.
    """
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
