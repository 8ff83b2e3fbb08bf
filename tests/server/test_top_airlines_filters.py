"""`top_airlines` with a time window and a meal: exactly the filtered count(), from aggregates.

The endpoint sums the whole hours of the window from `airline_meal_buckets`, then single
seconds at its edges; each case compares it with a plain count() over `events` with the
same filters.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
import requests

from lib.bookings.generator import BookingGenerator
from lib.client.events import to_ndjson

SERVER_SEED_ROWS, SERVER_SEED = 20_000, 11
FORMAT = "%Y-%m-%d %H:%M:%S"


def endpoint(server, **params) -> requests.Response:
    return requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                        params={**params, "token": server.jwt()}, timeout=30)


def answer(server, **params) -> dict[str, int]:
    response = endpoint(server, **params)
    assert response.status_code == 200, response.text
    return {row["airline"]: int(row["bookings"]) for row in response.json()["data"]}


def counted(server, date_from=None, date_to=None, meal_choice=None) -> dict[str, int]:
    where = ["1"]
    # The bounds have the column's type: against a DateTime, the engine's part min-max
    # check turns `< 13:00:00` into `<= 12:59:59` and skips a part that starts at
    # 12:59:59.999 (ClickHouse issue 113993), so the reference itself would miss rows.
    if date_from:
        where.append(f"timestamp >= toDateTime64('{date_from}', 3, 'UTC')")
    if date_to:
        where.append(f"timestamp < toDateTime64('{date_to}', 3, 'UTC')")
    if meal_choice:
        where.append(f"meal_choice = '{meal_choice}'")
    rows = server.sql(f"SELECT airline, count() AS n FROM events WHERE {' AND '.join(where)} "
                      "GROUP BY airline ORDER BY n DESC, airline LIMIT 10")["data"]
    return {row["airline"]: int(row["n"]) for row in rows}


@pytest.fixture(scope="module")
def edges(server):
    """Bookings on and next to hour and minute boundaries, where a bucket mistake shows."""
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    hour -= dt.timedelta(hours=5)
    moments = []
    for offset in (dt.timedelta(0), dt.timedelta(minutes=1), dt.timedelta(hours=1)):
        for delta_ms in (-1, 0, 1, 999, 1000):
            moments.append(hour + offset + dt.timedelta(milliseconds=delta_ms))
    generator = BookingGenerator(seed=5)
    events = [generator.booking(m.strftime("%Y-%m-%dT%H:%M:%S.") + f"{m.microsecond // 1000:03d}Z")
              for m in moments]
    response = requests.post(f"{server.url}/v0/events", params={"name": "events", "wait": "true"},
                             data=to_ndjson(events), headers=server.admin_headers(), timeout=30)
    assert response.status_code == 200 and response.json()["successful_rows"] == len(events)
    return hour


def test_without_parameters_it_is_the_guides_count(server, edges):
    assert answer(server) == counted(server)


@pytest.mark.parametrize(("start", "length"), [
    (dt.timedelta(0), dt.timedelta(hours=1)),  # exactly one whole hour
    (dt.timedelta(0), dt.timedelta(minutes=1)),  # exactly one whole minute
    (dt.timedelta(milliseconds=1), dt.timedelta(seconds=1)),  # inside one minute
    (dt.timedelta(seconds=-1), dt.timedelta(hours=1, seconds=2)),  # hour plus partial edges
    (dt.timedelta(minutes=30), dt.timedelta(minutes=30)),  # ends on a whole hour
    (dt.timedelta(0), dt.timedelta(minutes=90)),  # starts on a whole hour
    (dt.timedelta(minutes=-3, seconds=30), dt.timedelta(hours=3, minutes=7)),
    (dt.timedelta(hours=-30), dt.timedelta(days=2)),
    (dt.timedelta(0), dt.timedelta(0)),  # an empty window
    (dt.timedelta(hours=2), dt.timedelta(hours=-1)),  # a window that ends before it starts
])
def test_windows_around_hour_and_minute_edges_match_the_raw_count(server, edges, start, length):
    date_from = edges + start
    params = {"date_from": date_from.strftime(FORMAT),
              "date_to": (date_from + length).strftime(FORMAT)}
    assert answer(server, **params) == counted(server, **params)


@pytest.mark.parametrize("bound", ["date_from", "date_to"])
@pytest.mark.parametrize("offset", [dt.timedelta(0), dt.timedelta(seconds=1),
                                    dt.timedelta(seconds=-1), dt.timedelta(minutes=-20)])
def test_a_window_open_at_one_end_matches_the_raw_count(server, edges, bound, offset):
    params = {bound: (edges + offset).strftime(FORMAT)}
    assert answer(server, **params) == counted(server, **params)


def test_random_windows_and_meals_match_the_raw_count(server, edges):
    rng = random.Random(7)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for _ in range(25):
        start = now - dt.timedelta(seconds=rng.randint(0, 32 * 86400))
        end = start + dt.timedelta(seconds=rng.choice(
            [1, 59, 61, 3599, 3601, 7201, rng.randint(0, 9 * 86400)]))
        params = {"date_from": start.strftime(FORMAT), "date_to": end.strftime(FORMAT),
                  "meal_choice": rng.choice(["vegan", "none", "kosher"])}
        for dropped in rng.sample(["date_from", "date_to", "meal_choice", None], 1):
            params.pop(dropped, None)
        assert answer(server, **params) == counted(server, **params), params


def test_a_meal_alone_filters_every_booking(server, edges):
    assert answer(server, meal_choice="vegan") == counted(server, meal_choice="vegan")
    assert answer(server, meal_choice="no such meal") == {}


@pytest.mark.parametrize(("name", "value"), [("date_from", "yesterday"),
                                              ("date_to", "2025-13-01 00:00:00")])
def test_a_malformed_time_is_a_400_naming_the_parameter(server, name, value):
    response = endpoint(server, **{name: value})
    assert response.status_code == 400
    assert name in response.json()["error"] or value in response.json()["error"]
