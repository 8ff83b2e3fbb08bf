"""Requests-per-second limits, counted as Tinybird counts them (GCRA, like redis-cell).

A JWT with `limits: {"rps": n}` may make n requests per second with a burst of n, per
workspace, pipe and JWT `name`; the reported limit is burst + 1, as `CL.THROTTLE` does.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int  # whole seconds to wait; 0 when allowed

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._tat: dict[str, float] = {}  # theoretical arrival time per key
        self._lock = threading.Lock()

    def check(self, key: str, rate: float, period: float = 1.0) -> RateDecision:
        """Count one request under `key`, and say whether it may go on.

        Args:
            key: what the limit counts (workspace, pipe and JWT name).
            rate: requests allowed per `period`; the burst is as many.
            period: the period in seconds.

        Returns:
            Whether the request is allowed, with the headers to send either way.
        """
        burst = max(int(rate), 1)
        interval = period / rate
        tolerance = interval * burst
        with self._lock:
            now = self._clock()
            tat = max(self._tat.get(key, now), now)
            new_tat = tat + interval
            allow_at = new_tat - tolerance - interval
            if allow_at > now + 1e-9:  # float steps of 1/rate must not cost a request
                wait = allow_at - now
                return RateDecision(False, burst + 1, 0, math.ceil(tat - now),
                                    max(1, math.ceil(wait)))
            self._tat[key] = new_tat
            remaining = int((tolerance + interval - (new_tat - now)) / interval + 1e-9)
            return RateDecision(True, burst + 1, max(remaining, 0), math.ceil(new_tat - now), 0)
