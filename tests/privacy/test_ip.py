"""IP truncation (P4, P8): IPv4 to /24, IPv6 to /48, and nothing kept that cannot be cut."""

from __future__ import annotations

import ipaddress

import pytest

from chatserver.privacy.ip import IPV4_PREFIX, IPV6_PREFIX, truncate_ip


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("192.0.2.77", "192.0.2.0"),
        ("10.1.2.3", "10.1.2.0"),
        ("203.0.113.255", "203.0.113.0"),
        ("192.0.2.0", "192.0.2.0"),
        ("0.0.0.0", "0.0.0.0"),
        (" 198.51.100.9\n", "198.51.100.0"),
    ],
)
def test_ipv4_is_cut_to_24(address: str, expected: str) -> None:
    """An IPv4 address keeps its first three octets; the host octet becomes 0."""
    assert truncate_ip(address) == expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("2001:db8:abcd:1234:5678:9abc:def0:1", "2001:db8:abcd::"),
        ("2001:db8:abcd:ffff::1", "2001:db8:abcd::"),
        ("2001:DB8:ABCD:12::9", "2001:db8:abcd::"),
        ("::1", "::"),
        ("2001:db8::", "2001:db8::"),
    ],
)
def test_ipv6_is_cut_to_48(address: str, expected: str) -> None:
    """An IPv6 address keeps its first 48 bits (three groups) and nothing of the rest."""
    assert truncate_ip(address) == expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("::ffff:192.0.2.7", "192.0.2.0"),
        ("::ffff:c000:0207", "192.0.2.0"),
        ("::FFFF:10.20.30.40", "10.20.30.0"),
    ],
)
def test_ipv4_mapped_ipv6_is_cut_like_ipv4(address: str, expected: str) -> None:
    """An IPv4-mapped IPv6 address is cut to the IPv4 /24, not to an IPv6 /48 that keeps it whole."""
    result = truncate_ip(address)
    assert result == expected
    # /48 of ::ffff:a.b.c.d would be "::" — and a /96-or-longer prefix would keep the host.
    assert result is not None and ipaddress.ip_address(result).version == 4


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("fe80::1%eth0", "fe80::"),
        ("2001:db8:1:2::5%3", "2001:db8:1::"),
        ("::ffff:10.0.0.1%en0", "10.0.0.0"),
    ],
)
def test_zone_ids_are_dropped(address: str, expected: str) -> None:
    """A scoped address (``%zone``) loses its zone id and is truncated like any other."""
    result = truncate_ip(address)
    assert result == expected
    assert result is not None and "%" not in result


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        "",
        "   ",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "192.0.2.7/24",
        "[2001:db8::1]",
        "2001:db8::1::2",
        "192.0.2.7:8080",
        "%eth0",
        "localhost",
    ],
)
def test_garbage_is_dropped(text: str) -> None:
    """Text that is not an address cannot be truncated, so nothing of it is kept (None)."""
    assert truncate_ip(text) is None


@pytest.mark.parametrize("address", ["192.0.2.77", "2001:db8:abcd:1234::1", "::ffff:192.0.2.7"])
def test_truncation_is_idempotent_and_keeps_the_network(address: str) -> None:
    """Truncating twice changes nothing more; the result is the network the address is in."""
    once = truncate_ip(address)
    assert once is not None
    assert truncate_ip(once) == once
    original = ipaddress.ip_address(address)
    if isinstance(original, ipaddress.IPv6Address) and original.ipv4_mapped is not None:
        original = original.ipv4_mapped
    prefix = IPV4_PREFIX if original.version == 4 else IPV6_PREFIX
    # strict=True: raises if the result still has host bits set.
    network = ipaddress.ip_network(f"{once}/{prefix}", strict=True)
    assert original in network
    assert once != str(original)
