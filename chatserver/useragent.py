"""Technical data from a User-Agent header (P4): device class, browser, OS.

ua-parser's regexes cost a millisecond or more per string, so parsing runs in
a thread (invariant 4) and results are cached by string: most visitors share a
handful of browsers.
"""

from __future__ import annotations

import asyncio

import msgspec
from ua_parser import parse


class Device(msgspec.Struct, frozen=True):
    device_class: str | None
    browser: str | None
    os: str | None


def describe(user_agent: str) -> Device:
    if not user_agent:
        return Device(None, None, None)
    result = parse(user_agent[:1024])
    browser = result.user_agent.family if result.user_agent else None
    os_name = result.os.family if result.os else None
    device = result.device
    family = (device.family or "") if device else ""
    brand = (device.brand or "") if device else ""
    if family == "Spider":
        device_class = "bot"
    elif (
        "iPad" in family
        or "Tablet" in brand
        or "Tablet" in family
        or (os_name == "Android" and "Mobile" not in user_agent)
    ):
        device_class = "tablet"
    elif "Mobile" in user_agent or os_name in ("iOS", "Android"):
        device_class = "mobile"
    elif os_name is not None:
        device_class = "desktop"
    else:
        device_class = None
    return Device(device_class, browser, os_name)


# Strings already parsed, answered without a thread hand-off; cleared when full,
# since losing entries only costs a parse.
_cache: dict[str, Device] = {}
_CACHE_MAX = 2048


async def describe_async(user_agent: str) -> Device:
    hit = _cache.get(user_agent)
    if hit is not None:
        return hit
    device = await asyncio.to_thread(describe, user_agent)
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[user_agent] = device
    return device


def warm_up() -> None:
    """Load ua-parser's regexes (about 0.25 s) before the first visitor waits for them."""
    describe("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36")
