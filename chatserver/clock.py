"""Time and ids, passed into the core so tests can control them.

Times are integer microseconds since the Unix epoch inside the server and in
the store (exact, sortable, cheap); on the wire they are RFC 3339 UTC strings
with microseconds. Ids are UUIDv7: random, yet sorting by time.
"""

from __future__ import annotations

import os
import time


class Clock:
    """Wall-clock time in microseconds. Tests pass a subclass with a fixed or stepping time."""

    def now_us(self) -> int:
        return time.time_ns() // 1000


_ts_second = -1
_ts_prefix = ""


def format_ts(us: int) -> str:
    """``2026-11-25T10:04:05.123456Z`` for a time in microseconds."""
    global _ts_second, _ts_prefix
    seconds, micros = divmod(us, 1_000_000)
    if seconds != _ts_second:  # most calls fall in the same second as the one before
        _ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds))
        _ts_second = seconds
    return f"{_ts_prefix}{micros:06d}Z"


_last_v7 = 0
_pool = b""
_offset = 0


def _random_bytes(n: int) -> bytes:
    """os.urandom in blocks: one getrandom() call costs microseconds, here 4 KiB at a time."""
    global _pool, _offset
    if _offset + n > len(_pool):
        _pool, _offset = os.urandom(4096), 0
    _offset += n
    return _pool[_offset - n : _offset]


def uuid7(now_us: int | None = None) -> str:
    """A UUIDv7 string (RFC 9562): 48 bits of milliseconds, then randomness.

    Within one millisecond successive ids of this process still sort in order,
    so ids made by one writer follow creation order.
    """
    global _last_v7
    ms = (time.time_ns() // 1_000_000) if now_us is None else now_us // 1000
    # Unpredictable, though access never rests on an id being secret.
    rand = int.from_bytes(_random_bytes(10), "big") >> 6
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | (0x7 << 76) | (rand >> 62) << 64
    value |= (0b10 << 62) | (rand & 0x3FFF_FFFF_FFFF_FFFF)
    if value <= _last_v7 and (value >> 80) <= (_last_v7 >> 80):
        value = _last_v7 + 1
    _last_v7 = value
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
