"""Rate limits: a sliding window in memory (one process serves one installation).

Per user for requests, counts and the free routes that parse cohorts; failed
authentications per client address and over all addresses together (`AuthThrottle`): a
wrong token is never answered 401 more often than the limits allow."""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from typing import NamedTuple

__all__ = ["AuthThrottle", "RateLimiter", "Refusal"]


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

    def forget_idle(self) -> None:
        """Drop the keys with no event in the window (`_recent` forgets a key only when it
        is asked about again: addresses that knocked once would stay forever)."""
        now = time.monotonic()
        with self._lock:
            for key in [k for k, q in self._hits.items() if not q or q[-1] <= now - self.window]:
                del self._hits[key]

    def __len__(self) -> int:
        return len(self._hits)

    @staticmethod
    def retry_after(seconds: float) -> str:
        return str(max(1, math.ceil(seconds)))


class Refusal(NamedTuple):
    """A failed authentication over a limit: answered 429, not counted."""

    wait: float  # seconds until one more is answered
    limit: int  # the limit per minute that was reached
    scope: str  # "address" (the client's) or "server" (all addresses together)


class AuthThrottle:
    """Failed authentications: at most `per_address` a minute from one client address and
    `overall` a minute from all addresses together (addresses are cheap to an attacker on
    IPv6 or a botnet; the global cap bounds the failures answered whatever their number).

    Only failures are counted and refused: a request with a valid token is served whether
    or not its address (or the server) is over a limit, so guessing from an address shared
    with others (a proxy, a NAT) never locks them out. What makes guessing hopeless is the
    tokens' 256 bits, not the throttle; the throttle bounds how often a wrong token gets an
    answer other than 429, and the memory its bookkeeping takes (at most ~2 `overall` keys).
    """

    SERVER = "*"  # the key of the global count (no address is spelt so)

    def __init__(self, per_address: int, overall: int, window: float = 60.0) -> None:
        self.per_address = RateLimiter(per_address, window)
        self.overall = RateLimiter(overall, window)
        self._lock = threading.Lock()  # the two limits are checked and counted together

    def failed(self, address: str) -> Refusal | None:
        """A failed authentication from `address`: None when both limits allow one more
        (it is counted against both); else the `Refusal` of the first limit reached."""
        with self._lock:
            for scope, limiter, key in (
                ("address", self.per_address, address),
                ("server", self.overall, self.SERVER),
            ):
                wait = limiter.blocked(key)
                if wait is not None:
                    return Refusal(wait, limiter.limit, scope)
            self.per_address.hit(address)
            self.overall.hit(self.SERVER)
            # live keys are at most `overall` (each counted failure has one address)
            if len(self.per_address) > 2 * self.overall.limit:
                self.per_address.forget_idle()
            return None
