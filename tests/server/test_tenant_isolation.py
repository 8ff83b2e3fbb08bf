"""A partner's JWT pins `airline` with fixed_params: no request can read another airline."""

from __future__ import annotations

import pytest
import requests

TENANT_PIPES = ["airline_daily_bookings", "airline_top_routes", "airline_meal_mix"]


@pytest.fixture(scope="module")
def seeded(server):
    response = requests.post(f"{server.url}/v0/local/seed",
                             params={"rows": 30000, "seed": 11},
                             headers=server.admin_headers(), timeout=60)
    assert response.status_code == 200
    return server


def tenant_token(server, airline="Fizz"):
    return server.jwt(TENANT_PIPES, name=f"tenant_{airline}", fixed_params={"airline": airline})


def total(server, pipe, token, **params):
    response = requests.get(f"{server.url}/v0/pipes/{pipe}.json",
                            params={"token": token, **params}, timeout=30)
    assert response.status_code == 200, response.text
    return sum(row["bookings"] for row in response.json()["data"])


@pytest.mark.parametrize("pipe", TENANT_PIPES)
def test_tenant_sees_exactly_its_own_bookings(seeded, pipe):
    fizz = seeded.count("events WHERE airline = 'Fizz'")
    assert fizz > 0
    params = {"limit": 10000} if pipe == "airline_top_routes" else {}
    assert total(seeded, pipe, tenant_token(seeded), **params) == fizz


@pytest.mark.parametrize("override", [
    {"airline": "BrianAir"},
    {"airline": "' OR 1=1 OR airline = '"},
    {"AIRLINE": "BrianAir"},
    {"airline[]": "BrianAir"},
    {"airline": ["BrianAir", "GAS"]},
])
def test_no_query_parameter_overrides_the_pinned_airline(seeded, override):
    fizz = seeded.count("events WHERE airline = 'Fizz'")
    token = tenant_token(seeded)
    response = requests.get(f"{seeded.url}/v0/pipes/airline_daily_bookings.json",
                            params={"token": token, **override}, timeout=30)
    assert response.status_code == 200, response.text
    assert sum(r["bookings"] for r in response.json()["data"]) == fizz


def test_post_body_cannot_override_the_pinned_airline(seeded):
    fizz = seeded.count("events WHERE airline = 'Fizz'")
    response = requests.post(f"{seeded.url}/v0/pipes/airline_daily_bookings.json",
                             params={"token": tenant_token(seeded)},
                             json={"airline": "BrianAir"}, timeout=30)
    assert sum(r["bookings"] for r in response.json()["data"]) == fizz


def test_tenant_jwt_cannot_read_the_all_airlines_endpoint_or_sql(seeded):
    token = tenant_token(seeded)
    for path, params in [("/v0/pipes/top_airlines.json", {}),
                         ("/v0/sql", {"q": "SELECT count() FROM events"}),
                         ("/v0/pipes", {}), ("/v0/datasources", {})]:
        response = requests.get(f"{seeded.url}{path}", params={"token": token, **params},
                                timeout=30)
        assert response.status_code == 403, path


def test_without_fixed_params_the_airline_is_required(seeded):
    token = seeded.jwt(TENANT_PIPES)
    response = requests.get(f"{seeded.url}/v0/pipes/airline_top_routes.json",
                            params={"token": token}, timeout=30)
    assert response.status_code == 400
    assert "'airline'" in response.json()["error"]


def test_date_range_narrows_the_rows(seeded):
    token = tenant_token(seeded, "GAS")
    everything = total(seeded, "airline_daily_bookings", token)
    recent = total(seeded, "airline_daily_bookings", token, date_from="2100-01-01")
    assert everything > 0 and recent == 0
    response = requests.get(f"{seeded.url}/v0/pipes/airline_daily_bookings.json",
                            params={"token": token, "date_from": "yesterday"}, timeout=30)
    assert response.status_code == 400 and "'date_from'" in response.json()["error"]
