"""Per-caller rate limits: one token bucket per API key (or per client address while no
keys exist, or per /chat visitor). A bucket holds `burst` tokens and refills at
`per_minute / 60` per second; a request takes one token or is refused with the seconds
until one is back (HTTP 429 with `Retry-After`).

Given an engine, the buckets live in the database (storage.repositories.rate_limits), so
the limit holds across every worker and host on it: a caller over the limit is refused
whichever worker it reaches. The process keeps its own copy of each bucket as a fast
path that only ever refuses: it counts this process's requests alone and is set to the
shared bucket's level after each database call, so it never holds fewer tokens than the
shared one; when it is empty, the shared one is too. Without an engine (or while the
database cannot be reached) the in-process buckets alone decide.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from core.errors import SupportbotError

log = logging.getLogger(__name__)


class RateLimitedError(SupportbotError):
    """Too many requests from one caller (HTTP 429)."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def retry_after(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


class RateLimiter:
    MAX_BUCKETS = 100_000  # idle buckets are dropped beyond this (a full bucket is the default anyway)

    FORGET_EVERY = 1000  # shared buckets: delete the namespace's full ones every this many requests

    def __init__(self, per_minute: float, burst: int, *, clock=time.monotonic, engine=None, namespace: str = "api"):
        self.rate = per_minute / 60.0  # tokens per second
        self.burst = max(1, int(burst))
        self.clock = clock
        self.engine = engine  # shared buckets in this database; None: this process only
        self.namespace = namespace
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, last refill time)
        self._lock = threading.Lock()
        self._hits = 0
        self._warned_at = -math.inf

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def hit(self, caller: str) -> None:
        """Take one token for `caller`, or raise RateLimitedError."""
        if not self.enabled:
            return
        if self.engine is not None:
            self._refuse_if_empty(caller)  # the fast path: no database call for a caller already over
            try:
                taken = self._take_shared(caller)
            except Exception as exc:  # noqa: BLE001 - any database error: limit this process alone
                self._warn(exc)
            else:
                if not taken.allowed:
                    raise self._refusal(taken.wait_s)
                return
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                raise self._refusal((1.0 - tokens) / self.rate)
            self._buckets[caller] = (tokens - 1.0, now)
            if len(self._buckets) > self.MAX_BUCKETS:
                self._forget_full(now)

    def _refusal(self, wait: float) -> RateLimitedError:
        return RateLimitedError(f"rate limit exceeded ({self.rate * 60:g} requests per minute, bursts of {self.burst}): "
                                f"retry in {math.ceil(wait)} s", wait)

    def _refuse_if_empty(self, caller: str) -> None:
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                raise self._refusal((1.0 - tokens) / self.rate)

    def _take_shared(self, caller: str):
        from storage.repositories import rate_limits

        taken = rate_limits.take(self.engine, key=f"{self.namespace}:{caller}", rate=self.rate, burst=self.burst)
        now = self.clock()
        with self._lock:
            self._buckets[caller] = (taken.tokens, now)  # the shared level: never below it
            self._hits += 1
            forget = self._hits % self.FORGET_EVERY == 0
            if len(self._buckets) > self.MAX_BUCKETS:
                self._forget_full(now)
        if forget:
            rate_limits.forget_full(self.engine, namespace=self.namespace, rate=self.rate, burst=self.burst)
        return taken

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning("rate limits: the database is unreachable (%s); limiting per process meanwhile", exc)

    def _forget_full(self, now: float) -> None:
        full = [c for c, (t, last) in self._buckets.items() if t + (now - last) * self.rate >= self.burst]
        for caller in full:
            del self._buckets[caller]
