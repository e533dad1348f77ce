"""Rate limits: a sliding window in memory (one process serves one installation).

Per user for requests, counts and the free routes that parse cohorts; per client address
for failed authentications (a wrong token is never answered more than the limit allows)."""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        self.limit = per_minute
        self.window = window
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._hits[key]
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:  # forget idle keys: one entry per address that ever knocked would grow
            del self._hits[key]
            q = self._hits[key]
        return q

    def check(self, key: str) -> float | None:
        """None if allowed (and counted); else seconds until the next request is allowed."""
        now = time.monotonic()
        with self._lock:
            q = self._recent(key, now)
            if len(q) >= self.limit:
                return max(0.0, q[0] + self.window - now)
            q.append(now)
            return None

    def blocked(self, key: str) -> float | None:
        """Like `check`, without counting: seconds to wait if the limit is reached."""
        now = time.monotonic()
        with self._lock:
            q = self._recent(key, now)
            if len(q) >= self.limit:
                return max(0.0, q[0] + self.window - now)
            if not q:
                del self._hits[key]
            return None

    def hit(self, key: str) -> None:
        """Count one event (a failed authentication) against `key`."""
        with self._lock:
            self._recent(key, time.monotonic()).append(time.monotonic())

    @staticmethod
    def retry_after(seconds: float) -> str:
        return str(max(1, math.ceil(seconds)))
