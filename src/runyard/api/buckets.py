"""Token buckets by name (an API key's hash, a client address), kept in bounded memory.

Each bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; a request takes
one. Buckets live in one ordered dict, least recently used first, so every operation is O(1):
a bucket idle for ``idle_seconds`` is dropped when the next new one is made, and past
``capacity`` buckets the least recently used goes. The state is this process's own: the event
loop is its only user, so it needs no lock.
"""

from __future__ import annotations

import math
from collections import OrderedDict


class TokenBuckets:
    def __init__(self, rate: float, burst: int, idle_seconds: float, capacity: int) -> None:
        if rate <= 0 or burst < 1 or capacity < 1:
            raise ValueError("a token bucket needs a positive rate, burst and capacity")
        self.rate = rate
        self.burst = float(burst)
        self.idle_seconds = idle_seconds
        self.capacity = capacity
        #: name → [tokens, time of the last refill]
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, name: str) -> bool:
        return name in self._buckets

    def take(self, name: str, now: float) -> float:
        """Take a token from ``name``'s bucket (a full one if it has none): 0.0 if there was
        one, else the seconds until there will be."""
        bucket = self._buckets.get(name)
        if bucket is None:
            self._make(name, now, self.burst - 1)
            return 0.0
        self._buckets.move_to_end(name)
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1:
            bucket[0] = tokens - 1
            return 0.0
        bucket[0] = tokens
        return (1 - tokens) / self.rate

    def add(self, name: str, now: float, tokens: float) -> None:
        """Give ``name`` a bucket holding ``tokens``, unless it has one."""
        if name not in self._buckets:
            self._make(name, now, min(self.burst, tokens))

    def _make(self, name: str, now: float, tokens: float) -> None:
        buckets = self._buckets
        # Each bucket is dropped at most once for every one made: O(1) amortized.
        while buckets:
            oldest = next(iter(buckets.values()))
            if len(buckets) < self.capacity and now - oldest[1] < self.idle_seconds:
                break
            buckets.popitem(last=False)
        buckets[name] = [tokens, now]


def whole_seconds(wait: float) -> int:
    """``Retry-After``: whole seconds, at least 1, never before a token is back."""
    return max(1, math.ceil(wait))
