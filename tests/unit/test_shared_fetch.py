"""Viewers of one view share one fetch per interval; different scopes never share."""

from __future__ import annotations

import threading

import pytest

from lib.client.errors import ServerError
from lib.client.pipes import PipeResult
from lib.client.tokens import TokenSource
from lib.ui.shared_fetch import FRESH_SHARE, SharedFetches, cache_key
from tests.support.clock import FakeClock

CONNECTION = ("http://tinybird.test", "ws", "fingerprint")
KEY = "p.unused-signing-key-for-shared-fetch-tests"


def result(rows: list[dict]) -> PipeResult:
    return PipeResult(data=rows, meta=[], rows=len(rows), elapsed_seconds=0.001, rows_read=1,
                      round_trip_seconds=0.002)


class FakeClient:
    """Stands in for Tinybird's cloud: answers from a table, counting requests."""

    def __init__(self, tokens: TokenSource, answers: dict[str, list[dict]]):
        self.tokens = tokens
        self.answers = answers
        self.requests = 0

    def fetch(self, pipe: str, params: dict | None = None) -> PipeResult:
        self.requests += 1
        airline = (self.tokens._fixed_params or {}).get("airline", "all")
        return result(self.answers[airline])


def tenant_tokens(airline: str) -> TokenSource:
    return TokenSource(KEY, "ws", ["airline_daily_bookings"], fixed_params={"airline": airline})


def test_many_viewers_within_an_interval_cost_one_request():
    clock = FakeClock()
    shared = SharedFetches(clock)
    clients = [FakeClient(TokenSource(KEY, "ws", "top_airlines"), {"all": [{"n": 1}]})
               for _ in range(50)]
    answers = [shared.fetch_pipe(c, CONNECTION, "top_airlines", None, 5.0) for c in clients]
    assert sum(c.requests for c in clients) == 1
    assert all(a is answers[0] for a in answers)

    clock.advance(5.0 * FRESH_SHARE)  # the answer has aged past its share of the interval
    shared.fetch_pipe(clients[7], CONNECTION, "top_airlines", None, 5.0)
    assert sum(c.requests for c in clients) == 2 and clients[7].requests == 1


def test_concurrent_viewers_wait_for_the_one_fetch_in_flight():
    shared = SharedFetches(FakeClock())
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow_fetch() -> PipeResult:
        calls.append(1)
        started.set()
        assert release.wait(10)
        return result([{"n": 1}])

    key = cache_key(connection=CONNECTION, pipe="top_airlines", params=None, scope="s")
    outcomes = []
    first = threading.Thread(target=lambda: outcomes.append(shared.fetch(key, 5, slow_fetch)))
    first.start()
    assert started.wait(10)
    waiters = [threading.Thread(target=lambda: outcomes.append(shared.fetch(key, 5, slow_fetch)))
               for _ in range(10)]
    for waiter in waiters:
        waiter.start()
    release.set()
    for thread in [first, *waiters]:
        thread.join(10)
    assert len(calls) == 1 and len(outcomes) == 11
    assert all(o is outcomes[0] for o in outcomes)


def test_two_tenants_never_share_an_answer():
    shared = SharedFetches(FakeClock())
    answers = {"Fizz": [{"airline": "Fizz"}], "GAS": [{"airline": "GAS"}]}
    fizz = FakeClient(tenant_tokens("Fizz"), answers)
    gas = FakeClient(tenant_tokens("GAS"), answers)
    params = {"date_from": "2026-11-01", "date_to": "2026-11-25"}
    assert shared.fetch_pipe(fizz, CONNECTION, "airline_daily_bookings", params, 5).data == \
        answers["Fizz"]
    assert shared.fetch_pipe(gas, CONNECTION, "airline_daily_bookings", params, 5).data == \
        answers["GAS"]
    assert (fizz.requests, gas.requests) == (1, 1)
    # A second viewer of Fizz shares Fizz's answer, never GAS's.
    fizz_too = FakeClient(tenant_tokens("Fizz"), answers)
    assert shared.fetch_pipe(fizz_too, CONNECTION, "airline_daily_bookings", params, 5).data == \
        answers["Fizz"]
    assert fizz_too.requests == 0


@pytest.mark.parametrize("other", [
    {"connection": ("http://other.test", "ws", "fingerprint")},
    {"connection": ("http://tinybird.test", "ws", "another-signing-token")},
    {"pipe": "airline_meal_mix"},
    {"params": {"date_from": "2026-11-02"}},
    {"scope": "another"},
])
def test_the_key_tells_apart_everything_that_changes_the_answer(other):
    base = {"connection": CONNECTION, "pipe": "top_airlines",
            "params": {"date_from": "2026-11-01"}, "scope": "s"}
    assert cache_key(**base) == cache_key(**dict(base))
    assert cache_key(**base) != cache_key(**{**base, **other})


def test_a_failure_is_shared_for_the_interval_too():
    clock = FakeClock()
    shared = SharedFetches(clock)
    key = cache_key(connection=CONNECTION, pipe="top_airlines", params=None, scope="s")
    calls = []

    def failing() -> PipeResult:
        calls.append(1)
        raise ServerError("down", 503)

    assert shared.fetch(key, 5, failing).error.status == 503
    assert shared.fetch(key, 5, failing).error.status == 503
    assert len(calls) == 1  # an outage costs the API one request per interval, not one per viewer
    clock.advance(5)
    shared.fetch(key, 5, failing)
    assert len(calls) == 2
