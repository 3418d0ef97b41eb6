"""Delivers the outbox: at least once, signed, retried with exponential backoff.

One task per server takes pending deliveries as they fall due (a few at a
time), POSTs each to its endpoint with a fresh timestamp and signature and the
same body and id as every earlier attempt, and logs the outcome. A 2xx answer
delivers it; anything else (another status, a timeout, a refused address) is
retried after ``webhook_retry_base`` seconds, then twice that, and so on up to
an hour, each wait stretched by a random 0-50 % so that endpoints coming back
after an outage are not hit by every sender at once; after
``webhook_max_attempts`` the delivery is given up. A shutdown in the middle of
an attempt leaves the delivery pending: it is given back (``release``) and sent
again after the restart.

Every node runs this over the same outbox. Taking deliveries is a claim with a
lease (``WebhookOutbox.due``): a delivery being attempted here is not taken by
another node, and one whose node died mid-attempt is taken again once the lease
(longer than any attempt can take) has run out: at least once, never lost. The
loop looks at the outbox at least every ``IDLE_POLL`` seconds even when nothing
woke it, so work queued or abandoned by other nodes is found.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import httpx

from chatserver import __version__
from chatserver.clock import Clock
from chatserver.config import Settings
from chatserver.webhooks.signing import HEADER, sign
from chatserver.webhooks.store import Attempt, Due, WebhookOutbox
from chatserver.webhooks.urls import Refused, resolve

log = logging.getLogger(__name__)

MAX_DELAY = 3600.0
CONCURRENCY = 8
ERROR_CHARS = 200
# After the outbox could not be read: wait this long (or for new work) before trying again.
STORE_RETRY = 1.0
# Look at the outbox at least this often (s): other nodes queue work and leases run out.
IDLE_POLL = 30.0
# A claimed delivery is held by this node for at least this long (s), and for at least
# four times the attempt timeout (an attempt is a lookup and a POST, each bounded by it).
MIN_LEASE = 60.0


def backoff(attempts: int, base: float, rand: float) -> float:
    """Seconds to wait after ``attempts`` failed attempts (1, 2, …); ``rand`` in [0, 1).

    The jitter only lengthens a wait, by at most half, so each wait is still
    longer than the one before (until the cap).
    """
    delay = min(MAX_DELAY, base * 2 ** (attempts - 1))
    return delay * (1 + rand / 2)


class Dispatcher:
    def __init__(
        self,
        outbox: WebhookOutbox,
        settings: Settings,
        clock: Clock,
        *,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.outbox = outbox
        self.clock = clock
        self.allow_private = bool(settings.webhook_allow_private)
        self.max_attempts = int(settings.webhook_max_attempts)
        self.base = float(settings.webhook_retry_base)
        self.timeout = float(settings.webhook_timeout)
        self.concurrency = concurrency
        self.lease_us = int(max(MIN_LEASE, 4 * self.timeout) * 1_000_000)
        self._wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._claims: dict[str, Due] = {}
        # No pooled connections: each request goes to an address checked just before
        # (``urls.resolve``), and a pooled TLS connection to one host name must never
        # carry another name's request. No proxies from the environment either: they
        # would connect to whatever the host name resolves to for them.
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_keepalive_connections=0),
            follow_redirects=False,
            trust_env=False,
        )

    def wake(self) -> None:
        """New or changed work: look at the outbox now rather than at the next due time."""
        self._wake.set()

    async def close(self) -> None:
        claims = list(self._claims.values())
        for task in list(self._inflight.values()):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        await self.client.aclose()
        # What was being attempted is due again at once (for a restart, or another node),
        # not only when its lease runs out. Attempts that were logged are left as they are.
        try:
            await self.outbox.release(claims, self.clock.now_us())
        except Exception as exc:  # the leases run out by themselves
            log.warning("webhook deliveries not given back at shutdown: %s", exc)

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                timeout = await self._dispatch_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook outbox unreadable; trying again")
                timeout = STORE_RETRY
            if timeout is None or timeout > 0:
                wait = IDLE_POLL if timeout is None else min(timeout, IDLE_POLL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def _dispatch_due(self) -> float | None:
        """Start what is due; answers how long to wait (None: until woken)."""
        free = self.concurrency - len(self._inflight)
        if free <= 0:
            return None  # an attempt finishing wakes the loop
        skip = set(self._inflight)
        now = self.clock.now_us()
        due = await self.outbox.due(now, skip=skip, limit=free, lease_until=now + self.lease_us)
        for delivery in due:
            task = asyncio.get_running_loop().create_task(self._attempt(delivery))
            self._inflight[delivery.id] = task
            self._claims[delivery.id] = delivery
        if len(due) == free:
            return 0.0  # perhaps more is due already
        upcoming = await self.outbox.next_due(skip=set(self._inflight))
        if upcoming is None:
            return None
        return max(0.0, (upcoming - self.clock.now_us()) / 1e6)

    async def _attempt(self, due: Due) -> None:
        try:
            at = self.clock.now_us()
            started = time.perf_counter()
            status_code, error = await self.send(due)
            took = int((time.perf_counter() - started) * 1000)
            attempts = due.attempts + 1
            next_at: int | None = None
            if status_code is not None and 200 <= status_code < 300:
                status = "delivered"
            elif attempts >= self.max_attempts:
                status = "failed"
                log.warning("webhook delivery %s given up after %d attempts", due.id, attempts)
            else:
                status = "pending"
                wait = backoff(attempts, self.base, random.random())
                next_at = self.clock.now_us() + int(wait * 1_000_000)
            await self.outbox.record_attempt(
                due.id,
                Attempt(at=at, status_code=status_code, error=error, duration_ms=took),
                status=status,
                next_attempt_at=next_at,
            )
        except asyncio.CancelledError:
            raise  # shutting down: the delivery stays pending and goes after a restart
        except Exception:
            log.exception("webhook delivery %s: could not record the attempt", due.id)
            # Hold it (in flight) a while, then give it back to be tried again; if even
            # that fails, its lease runs out by itself.
            await asyncio.sleep(STORE_RETRY)
            with contextlib.suppress(Exception):
                await self.outbox.release([due], self.clock.now_us())
        finally:
            self._inflight.pop(due.id, None)
            self._claims.pop(due.id, None)
            self._wake.set()

    async def send(self, due: Due) -> tuple[int | None, str | None]:
        """POST one delivery; answers the status code, or None and what went wrong."""
        try:
            async with asyncio.timeout(self.timeout):
                target = await resolve(due.url, allow_private=self.allow_private)
        except TimeoutError:
            return None, f"timeout: the host name did not resolve within {self.timeout:g} s"
        except Refused as exc:
            return None, f"refused: {exc}"[:ERROR_CHARS]
        except (OSError, ValueError) as exc:  # a URL stored before its rules got stricter
            return None, f"refused: {type(exc).__name__}: {exc}"[:ERROR_CHARS]
        timestamp = self.clock.now_us() // 1_000_000
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": f"chatserver-webhooks/{__version__}",
            HEADER: sign(due.secret, timestamp, due.payload),
            "Chatserver-Event": due.event_type,
            "Chatserver-Delivery": due.id,
        }
        extensions: dict[str, Any] = {"sni_hostname": target.sni} if target.sni else {}
        try:
            # The whole exchange, not each read, is bounded: a trickling answer cannot
            # hold a delivery slot for longer. Only the status is read, never the body.
            async with asyncio.timeout(self.timeout):
                request = self.client.build_request(
                    "POST", target.url, content=due.payload, headers=headers, extensions=extensions
                )
                response = await self.client.send(request, stream=True)
                await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return None, f"timeout: no answer within {self.timeout:g} s"
        except Exception as exc:
            # Whatever went wrong on the way, it is this attempt's outcome: logged and
            # retried like a refusal, never left due (the loop would take it again at once).
            return None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        if 300 <= response.status_code < 400:
            return response.status_code, "redirects are not followed: register the final URL"
        return response.status_code, None
