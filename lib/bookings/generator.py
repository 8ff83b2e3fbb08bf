"""Realistic bookings in Python, drawn with the weights in `distributions`.

This is the Python side of `distributions.seed_select_sql`. The command line and the
dashboard's live stream of new bookings send these; Tinybird Local seeds in bulk with
the SQL. Both use the same weights, so the data agree.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator

from .distributions import (
    AGE_RANGE,
    AIRLINES,
    CITIES,
    EMAIL_DOMAINS,
    EXTRA_BAGS,
    FIRST_NAMES,
    LAST_NAMES,
    MEAL_CHOICES,
    PASSPORT_RANGE,
)


def iso_now(now: dt.datetime | None = None) -> str:
    """`Date.toISOString()` as Mockingbird sends it: milliseconds and a trailing Z."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{now.microsecond // 1000:03d}Z"


class BookingGenerator:
    """Realistic bookings; the same `seed` gives the same sequence (timestamps aside)."""

    def __init__(self, seed: int | None = None):
        self._rng = random.Random(seed)
        self._airlines, self._airline_weights = zip(*AIRLINES.items(), strict=True)
        self._meals, self._meal_weights = zip(*MEAL_CHOICES.items(), strict=True)
        self._bags, self._bag_weights = zip(*EXTRA_BAGS.items(), strict=True)

    def booking(self, timestamp: str | None = None) -> dict:
        """One booking as an Events API row; `timestamp` defaults to now."""
        rng = self._rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        origin, destination = rng.sample(CITIES, 2)
        return {
            "timestamp": timestamp or iso_now(),
            "transaction_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{rng.randint(1, 999)}@"
                     f"{rng.choice(EMAIL_DOMAINS)}",
            "age": rng.randint(*AGE_RANGE),
            "passport_number": rng.randint(*PASSPORT_RANGE),
            "flight_from": origin,
            "flight_to": destination,
            "extra_bags": rng.choices(self._bags, self._bag_weights)[0],
            "priority_boarding": rng.random() < 0.5,
            "meal_choice": rng.choices(self._meals, self._meal_weights)[0],
            "airline": rng.choices(self._airlines, self._airline_weights)[0],
        }

    def bookings(self, count: int) -> Iterator[dict]:
        """`count` bookings, each stamped as it is made."""
        for _ in range(count):
            yield self.booking()
