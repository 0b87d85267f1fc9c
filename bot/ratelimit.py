"""Per-caller rate limits: one token bucket in memory per API key (or per client address
while no keys exist). A bucket holds `burst` tokens and refills at `per_minute / 60` per
second; a request takes one token or is refused with the seconds until one is back
(HTTP 429 with `Retry-After`).

In memory and per process: a server run as several processes limits each separately.
"""

from __future__ import annotations

import math
import threading
import time

from bot.errors import SupportbotError


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

    def __init__(self, per_minute: float, burst: int, *, clock=time.monotonic):
        self.rate = per_minute / 60.0  # tokens per second
        self.burst = max(1, int(burst))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, last refill time)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def hit(self, caller: str) -> None:
        """Take one token for `caller`, or raise RateLimitedError."""
        if not self.enabled:
            return
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimitedError(
                    f"rate limit exceeded ({self.rate * 60:g} requests per minute, bursts of {self.burst}): "
                    f"retry in {math.ceil(wait)} s", wait)
            self._buckets[caller] = (tokens - 1.0, now)
            if len(self._buckets) > self.MAX_BUCKETS:
                self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        full = [c for c, (t, last) in self._buckets.items() if t + (now - last) * self.rate >= self.burst]
        for caller in full:
            del self._buckets[caller]
