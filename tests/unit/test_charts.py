"""Chart builders and the dashboard's latency history, without a server.

The latency history is fed by a scripted client (a list of answers and failures): the
point here is what the session keeps, not how the endpoint is read, which
test_pipe_client and tests/app/test_top_airlines cover against a real server.
"""

from __future__ import annotations

import time

import pandas as pd
import pyarrow as pa
import pytest

from lib.client.errors import ServerError
from lib.client.pipes import PipeResult
from lib.client.tokens import TokenSource
from lib.ui import charts
from lib.ui.shared_fetch import LATENCY_HISTORY, LatencySample, SharedFetches
from lib.ui.top_airlines import DashboardSession


def result(elapsed: float | None, round_trip: float, at: float) -> PipeResult:
    return PipeResult(data=[{"airline": "Fizz", "bookings": 3}], meta=[], rows=1,
                      elapsed_seconds=elapsed, rows_read=7, round_trip_seconds=round_trip,
                      fetched_at=at)


class ScriptedClient:
    """Answers `fetch` from a script: a PipeResult is returned, an exception raised."""

    def __init__(self, script):
        self.script = list(script)

    def fetch(self, pipe, params=None):
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def session_with(script) -> DashboardSession:
    tokens = TokenSource("p.unused-signing-key-for-a-scripted-client", "ws", "top_airlines")
    return DashboardSession(host="http://scripted", pipe="top_airlines", tokens=tokens,
                            client=ScriptedClient(script), fetches=SharedFetches(),
                            connection=("http://scripted", "ws", "fingerprint"))


def test_latency_history_keeps_the_last_polls_only():
    polls = LATENCY_HISTORY + 15
    session = session_with(result(i / 1000, i / 500, 1000.0 + i) for i in range(polls))
    for _ in range(polls):
        session.poll()
    history = list(session.latency_history)
    assert len(history) == LATENCY_HISTORY
    assert history[0] == LatencySample(at=1015.0, elapsed_ms=15.0, round_trip_ms=30.0)
    assert history[-1].at == 1000.0 + polls - 1
    assert [s.at for s in history] == sorted(s.at for s in history)


def test_a_failed_poll_adds_no_latency_sample():
    session = session_with([result(0.002, 0.005, 1.0), ServerError("boom", 500),
                            result(None, 0.004, 3.0)])
    assert session.poll().error is None
    assert session.poll().error is not None
    session.poll()
    assert [(s.at, s.elapsed_ms) for s in session.latency_history] == [(1.0, 2.0), (3.0, None)]


def test_latency_chart_draws_server_time_and_round_trip_over_utc_time():
    now = time.time()
    chart = charts.latency_chart([LatencySample(now, 1.5, 4.0), LatencySample(now + 5, None, 3.0)])
    spec = chart.to_dict()
    assert spec["description"] == charts.LATENCY
    assert spec["mark"]["type"] == "line"
    assert spec["encoding"]["x"]["field"] == "time"
    assert spec["encoding"]["x"]["scale"]["type"] == "utc"
    assert spec["encoding"]["color"]["scale"]["domain"] == [charts.SERVER_SERIES,
                                                            charts.ROUND_TRIP_SERIES]
    frame = chart.data
    assert list(frame["series"]) == [charts.SERVER_SERIES, charts.ROUND_TRIP_SERIES,
                                     charts.ROUND_TRIP_SERIES]  # no server time: no point
    assert list(frame["ms"]) == [1.5, 4.0, 3.0]
    assert frame["time"].iloc[0] == pd.Timestamp(now, unit="s", tz="UTC")


def test_latency_chart_of_no_samples_is_empty_not_an_error():
    assert charts.latency_chart([]).data.empty


@pytest.mark.parametrize(("build", "rows", "description", "y"), [
    (charts.daily_bookings_chart, [{"day": "2025-01-02", "bookings": 4}], charts.DAILY_BOOKINGS,
     "bookings"),
    (charts.top_routes_chart, [{"flight_from": "Paris", "flight_to": "Rome", "bookings": 9}],
     charts.TOP_ROUTES, "route"),
    (charts.meal_mix_chart, [{"meal_choice": "vegan", "bookings": 2}], charts.MEAL_MIX,
     "meal_choice"),
    (charts.top_airlines_chart, [{"airline": "GAS", "bookings": 1}], charts.TOP_AIRLINES,
     "airline"),
])
def test_each_chart_names_itself_and_draws_its_rows(build, rows, description, y):
    chart = build(rows)
    spec = chart.to_dict()
    assert spec["description"] == description
    assert spec["encoding"]["y"]["field"] == y
    assert len(chart.data) == len(rows)
    assert build([]).data.empty  # an empty answer draws an empty chart


def test_routes_read_from_to_and_get_taller_with_more_routes():
    rows = [{"flight_from": f"A{i}", "flight_to": "B", "bookings": 10 - i} for i in range(8)]
    chart = charts.top_routes_chart(rows)
    assert list(chart.data["route"])[:2] == ["A0 → B", "A1 → B"]
    assert chart.to_dict()["height"] > charts.top_routes_chart(rows[:2]).to_dict()["height"]


def test_meal_mix_tooltip_carries_each_share():
    chart = charts.meal_mix_chart([{"meal_choice": "none", "bookings": 3},
                                   {"meal_choice": "vegan", "bookings": 1}])
    assert list(chart.data["share"]) == [0.75, 0.25]


def test_a_chart_is_built_once_per_distinct_answer():
    built = []

    def counting_chart(rows):
        built.append(rows)
        return charts.top_airlines_chart(rows)

    rows = [{"airline": "GAS", "bookings": 3}, {"airline": "Fizz", "bookings": 1}]
    first = charts.cached_spec(counting_chart, rows)
    again = charts.cached_spec(counting_chart, [dict(r) for r in rows])  # equal rows, new dicts
    assert len(built) == 1 and first == again and first is not again
    changed = charts.cached_spec(counting_chart, [{"airline": "GAS", "bookings": 4}])
    assert len(built) == 2 and changed != first


def test_a_cached_spec_carries_its_rows_as_arrow():
    rows = [{"airline": "GAS", "bookings": 3}]
    spec = charts.cached_spec(charts.top_airlines_chart, rows)
    assert spec["description"] == charts.TOP_AIRLINES
    (name, data), = spec["datasets"].items()
    assert spec["data"]["name"] == name
    table = pa.ipc.open_stream(data).read_all()
    assert [(r["airline"], r["bookings"]) for r in table.to_pylist()] == [("GAS", 3)]
    assert "view" not in spec.get("config", {})  # the page sizes the chart, not Altair's theme
