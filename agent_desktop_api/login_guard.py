"""Login rate limits: attempts per client address, failed attempts per user name (`limits`, moving windows).

In memory, per process: a password-guessing flood is refused with 429 before any argon2 work is spent on it.
The `limits` library has the same API over Redis, which a cluster of API processes would share.
"""

from __future__ import annotations

import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class LoginGuard:
    def __init__(self, per_address: str, failures_per_user: str) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_address: RateLimitItem = parse(per_address)
        self._per_user: RateLimitItem = parse(failures_per_user)

    def attempt(self, address: str) -> float | None:
        """Count one login attempt from `address`; seconds to wait if it is over its limit, else None."""
        if self._limiter.hit(self._per_address, "address", address):
            return None
        return self._retry_after(self._per_address, "address", address)

    def locked(self, user: str) -> float | None:
        """Seconds until `user` may try again after too many failures, else None."""
        if self._limiter.test(self._per_user, "user", user):
            return None
        return self._retry_after(self._per_user, "user", user)

    def failed(self, user: str) -> None:
        self._limiter.hit(self._per_user, "user", user)

    def _retry_after(self, item: RateLimitItem, *key: str) -> float:
        reset = self._limiter.get_window_stats(item, *key).reset_time
        return max(1.0, reset - time.time())
