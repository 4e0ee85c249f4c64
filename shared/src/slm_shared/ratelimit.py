"""Token buckets per key (an API key, a client address), pure: the caller passes the clock reading (monotonic
seconds). Intake's per-key request limit and every service's failed-authentication throttle use it.

Each request takes one token; a bucket holds at most `burst` tokens and refills at `rate` per second.
The buckets live in the process's memory: with N replicas a key gets up to N times the rate, which is
documented (docs/intake.md) and acceptable for protecting one replica from one noisy client.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`take(key, now)` -> 0.0 if the request may go ahead, else the seconds until a token is free."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str, now: float) -> float:
        if not self.enabled:
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=self.burst, updated=now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)  # the least recently used key starts afresh
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(self.burst, bucket.tokens + max(0.0, now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def wait(self, key: str, now: float) -> float:
        """The seconds until `key` has a token again, taking none: 0.0 if it has one now."""
        bucket = self._buckets.get(key)
        if not self.enabled or bucket is None:
            return 0.0
        tokens = min(self.burst, bucket.tokens + max(0.0, now - bucket.updated) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
