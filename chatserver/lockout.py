"""Sign-in lock-out: after repeated failures for one email, wait before trying again.

Five failures in a row are free; each one after that locks the email for twice
as long as the last (1 s, 2 s, 4 s … at most 15 minutes). A success clears
it. Unknown emails are counted the same way, so the answer never tells whether
an email exists. Kept in memory, bounded, per process; with a Redis broker
``chatserver.shared.redis`` counts it for the whole cluster (and here alongside).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 5
MAX_LOCK_SECONDS = 900.0
MAX_TRACKED = 10_000


@dataclass(slots=True)
class _Record:
    failures: int = 0
    locked_until: float = 0.0


class LockOut:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def wait_seconds(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        record = self._records.get(key)
        if record is None:
            return 0.0
        return max(0.0, record.locked_until - self._clock())

    def failed(self, key: str) -> None:
        record = self._records.pop(key, None) or _Record()
        record.failures += 1
        if record.failures > FREE_FAILURES:
            lock = min(MAX_LOCK_SECONDS, 2.0 ** (record.failures - FREE_FAILURES - 1))
            record.locked_until = self._clock() + lock
        self._records[key] = record
        while len(self._records) > MAX_TRACKED:
            self._records.popitem(last=False)  # the longest quiet: forgotten first

    def succeeded(self, key: str) -> None:
        self._records.pop(key, None)
