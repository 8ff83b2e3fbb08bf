"""A clock tests move by hand, for token lifetimes and rate limits."""

from __future__ import annotations


class FakeClock:
    """A clock a test moves by hand: `clock.now += 61`."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
