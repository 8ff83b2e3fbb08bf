"""The tenant view's logic: the pinned JWT, the three endpoints, and the live peek.

The peek's verdict is checked both ways on made-up answers (a pinned server and one that
leaks), then against a real Tinybird Local, where it must say "pinned".
"""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from lib.client.errors import BadRequest
from lib.ui import tenant_view
from lib.ui.tenant_view import PeekOutcome, fetch_report, peek, request_params, tenant_client
from lib.ui.view_state import ViewState, utc_today

SEED_ROWS = 20000


def view(airline: str = "Fizz", days: int = 30, top: int = 5) -> ViewState:
    today = utc_today()
    return ViewState(airline, today - dt.timedelta(days=days - 1), today, top, 5.0)


# -- without a server --------------------------------------------------------------------------


def test_jwt_names_are_one_per_airline_and_safe():
    assert tenant_view.jwt_name("Skittish Airways") == "tenant_skittish_airways"
    assert tenant_view.jwt_name("Fizz") == "tenant_fizz"
    assert tenant_view.jwt_name("!!!") == "tenant_unnamed"


def test_the_page_never_sends_airline_itself():
    shown = view(top=7)
    for pipe in tenant_view.TENANT_PIPES:
        assert "airline" not in request_params(shown, pipe)
    assert request_params(shown, tenant_view.ROUTES_PIPE)["limit"] == "7"
    assert "limit" not in request_params(shown, tenant_view.DAILY_PIPE)


def outcome(before, answered, after=None) -> PeekOutcome:
    return PeekOutcome("Fizz", "GAS", "http://x/v0/pipes/p.json?airline=GAS", before, answered,
                       before if after is None else after)


def test_an_answer_equal_to_the_tenants_own_is_pinned():
    days = {"2025-01-01": 3, "2025-01-02": 5}
    assert outcome(days, dict(days)).pinned
    assert "Fizz's own numbers" in outcome(days, dict(days)).verdict


def test_bookings_arriving_during_the_peek_still_count_as_pinned():
    assert outcome({"d1": 3, "d2": 5}, {"d1": 3, "d2": 6}, {"d1": 3, "d2": 7}).pinned
    assert outcome({"d1": 3}, {"d1": 3, "d2": 1}, {"d1": 3, "d2": 1}).pinned  # a new day


def test_another_airlines_numbers_are_caught():
    leak = outcome({"d1": 3, "d2": 5}, {"d1": 9, "d2": 14})
    assert not leak.pinned
    assert "not Fizz's own" in leak.verdict
    assert not outcome({"d1": 3}, {"d1": 3, "d9": 1}).pinned  # a day Fizz has no bookings on
    assert not outcome({"d1": 3, "d2": 5}, {"d1": 2, "d2": 5}).pinned  # fewer than Fizz's own
    failed = PeekOutcome("Fizz", "GAS", "u", error=BadRequest("bad", 400))
    assert not failed.pinned and "could not be sent" in failed.verdict


def test_weighted_meal_averages():
    from lib.client.pipes import PipeResult

    meals = PipeResult(data=[{"meal_choice": "none", "bookings": 3, "priority_share": 1.0},
                             {"meal_choice": "vegan", "bookings": 1, "priority_share": 0.0}],
                       meta=[], rows=2, elapsed_seconds=None, rows_read=None,
                       round_trip_seconds=0.0)
    assert tenant_view.TenantReport(meals=meals).meal_average("priority_share") == 0.75
    assert tenant_view.TenantReport().meal_average("priority_share") is None


# -- against Tinybird Local --------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(server):
    response = requests.post(f"{server.url}/v0/local/seed",
                             params={"rows": SEED_ROWS, "seed": 5},
                             headers=server.admin_headers(), timeout=60)
    assert response.status_code == 200, response.text
    return server


def client_for(server, airline: str):
    return tenant_client(server.url, server.workspace.workspace_id, server.admin_token, airline,
                         ttl_seconds=600)


def sql_count(server, airline: str, shown: ViewState, extra: str = "") -> int:
    q = (f"SELECT count() AS n FROM events WHERE airline = '{airline}' AND toDate(timestamp) "
         f"BETWEEN '{shown.date_from}' AND '{shown.date_to}' {extra}")
    return int(server.sql(q)["data"][0]["n"])


def test_the_report_holds_the_tenants_bookings_only(seeded):
    shown = view("Fizz", top=3)
    client = client_for(seeded, "Fizz")
    report = fetch_report(client, shown)
    assert report.error is None
    fizz = sql_count(seeded, "Fizz", shown)
    assert 0 < fizz < seeded.count("events")
    assert report.total_bookings == fizz
    assert sum(r["bookings"] for r in report.meals.data) == fizz
    assert len(report.routes.data) == 3
    busiest = report.routes.data[0]
    assert busiest["bookings"] == sql_count(
        seeded, "Fizz", shown, f"AND flight_from = '{busiest['flight_from']}' "
                               f"AND flight_to = '{busiest['flight_to']}'")
    # One JWT for the three endpoints, pinned to Fizz, and no request named the airline.
    assert client.tokens.mint_count == 1
    scopes = client.tokens.current.claims["scopes"]
    assert {s["resource"] for s in scopes} == set(tenant_view.TENANT_PIPES)
    assert all(s["fixed_params"] == {"airline": "Fizz"} for s in scopes)
    assert all("airline=" not in r.url for r in (report.daily, report.routes, report.meals))


def test_the_date_range_narrows_the_report(seeded):
    today = utc_today()
    one_day = ViewState("GAS", today - dt.timedelta(days=3), today - dt.timedelta(days=3), 5, 5)
    report = fetch_report(client_for(seeded, "GAS"), one_day)
    assert report.total_bookings == sql_count(seeded, "GAS", one_day)
    assert [r["day"] for r in report.daily.data] == [one_day.date_from.isoformat()]


def test_peeking_at_another_airline_answers_with_the_tenants_own_rows(seeded):
    shown = view("Fizz")
    client = client_for(seeded, "Fizz")
    result = peek(client, shown, "BrianAir")
    assert result.error is None and result.pinned, result.verdict
    assert "airline=BrianAir" in result.url and "token" not in result.url
    assert result.answered_total == sql_count(seeded, "Fizz", shown)
    assert result.answered_total != sql_count(seeded, "BrianAir", shown)
    assert client.tokens.mint_count == 1


def test_peek_reuses_the_pages_own_answer(seeded):
    shown = view("Red Balloon")
    client = client_for(seeded, "Red Balloon")
    report = fetch_report(client, shown)
    sent = client.requests_sent
    assert peek(client, shown, "GAS", own=report.daily).pinned
    assert client.requests_sent == sent + 1  # only the peek itself: nothing changed meanwhile


def test_a_refused_request_is_a_report_error_not_an_exception(seeded):
    broken = tenant_client(seeded.url, seeded.workspace.workspace_id,
                           "p.not-the-admin-token-but-long-enough-for-hs256", "Fizz",
                           ttl_seconds=600)
    report = fetch_report(broken, view())
    assert report.error is not None and report.error.status == 403
    assert report.daily is None
    assert not peek(broken, view(), "GAS").pinned
