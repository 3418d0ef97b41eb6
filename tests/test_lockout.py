"""Sign-in lock-out grows with failures and is cleared by a success."""

from __future__ import annotations

from chatserver.lockout import FREE_FAILURES, MAX_LOCK_SECONDS, LockOut


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_failures_are_free_then_waits_double() -> None:
    """Five failures cost nothing; the sixth locks 1 s, the seventh 2 s, and so on."""
    clock = FakeTime()
    lock = LockOut(clock)
    for _ in range(FREE_FAILURES):
        lock.failed("kari@example.no")
        assert lock.wait_seconds("kari@example.no") == 0
    lock.failed("kari@example.no")
    assert lock.wait_seconds("kari@example.no") == 1
    clock.now += 1
    assert lock.wait_seconds("kari@example.no") == 0
    lock.failed("kari@example.no")
    assert lock.wait_seconds("kari@example.no") == 2
    assert lock.wait_seconds("someone@else.no") == 0


def test_waits_are_capped_and_a_success_clears_them() -> None:
    """The wait never passes 15 minutes; signing in resets the count."""
    clock = FakeTime()
    lock = LockOut(clock)
    for _ in range(40):
        lock.failed("k")
    assert lock.wait_seconds("k") == MAX_LOCK_SECONDS
    lock.succeeded("k")
    assert lock.wait_seconds("k") == 0
