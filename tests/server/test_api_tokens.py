"""The Tokens API over HTTP: list, read, create (static and JWT), change, refresh, delete."""

from __future__ import annotations

import json
import signal
import time

import jwt
import requests

from lib.bookings.generator import BookingGenerator

SERVER_SEED_ROWS, SERVER_SEED = 2000, 11


def tokens_url(server, suffix=""):
    return f"{server.url}/v0/tokens{suffix}"


def create(server, name, *scopes, **extra):
    params = [("name", name), *[("scope", s) for s in scopes], *extra.items()]
    return requests.post(tokens_url(server), params=params, headers=server.admin_headers(),
                         timeout=30)


def test_list_shows_admin_and_datafile_tokens_with_documented_fields(server):
    response = requests.get(tokens_url(server), headers=server.admin_headers(), timeout=30)
    assert response.status_code == 200, response.text
    tokens = {t["name"]: t for t in response.json()["tokens"]}
    admin = tokens["admin token"]
    assert admin["token"] == server.admin_token
    assert admin["scopes"] == [{"type": "ADMIN"}]
    static = tokens["top_airlines_read_static"]
    assert set(static) >= {"id", "token", "name", "description", "scopes", "origin"}
    assert static["scopes"] == [{"type": "PIPES:READ", "resource": "top_airlines",
                                 "filter": ""}]
    assert static["origin"]["type"] == "P"
    assert static["origin"]["resource_id"].startswith("t_")


def test_management_needs_the_admin_token(server):
    static = server.workspace.tokens["top_airlines_read_static"].token
    for method, suffix in [("GET", ""), ("POST", "?name=x&scope=ADMIN"),
                           ("DELETE", "/top_airlines_read_static"),
                           ("POST", "/top_airlines_read_static/refresh")]:
        response = requests.request(method, tokens_url(server, suffix),
                                    headers={"Authorization": f"Bearer {static}"}, timeout=30)
        assert response.status_code == 403, (method, suffix, response.text)
        assert set(response.json()) == {"error", "documentation"}
    assert requests.get(tokens_url(server), timeout=30).status_code == 403
    assert requests.get(tokens_url(server), params={"token": server.jwt()},
                        timeout=30).status_code == 403


def test_a_token_may_read_itself(server):
    static = server.workspace.tokens["top_airlines_read_static"].token
    response = requests.get(tokens_url(server, f"/{static}"),
                            headers={"Authorization": f"Bearer {static}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "top_airlines_read_static"


def test_create_read_by_name_and_id_then_the_token_works_for_its_scopes_only(server):
    response = create(server, "pipe_reader", "PIPES:READ:top_airlines",
                      description="reads the ranking")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "pipe_reader" and body["description"] == "reads the ranking"
    assert body["token"].startswith("p.")
    assert body["origin"] == {"type": "C"}
    for key in ("pipe_reader", body["id"]):
        got = requests.get(tokens_url(server, f"/{key}"), headers=server.admin_headers(),
                           timeout=30)
        assert got.status_code == 200 and got.json()["token"] == body["token"]
    ok = requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                      params={"token": body["token"]}, timeout=30)
    assert ok.status_code == 200, ok.text
    assert sum(r["bookings"] for r in ok.json()["data"]) == 2000
    other = requests.get(f"{server.url}/v0/pipes/airline_daily_bookings.json",
                         params={"token": body["token"]}, timeout=30)
    assert other.status_code == 403


def test_created_append_token_works_on_the_events_api(server):
    token = create(server, "events_writer", "DATASOURCES:APPEND:events").json()["token"]
    before = server.count("events")
    response = requests.post(f"{server.url}/v0/events", params={"name": "events", "wait": "true"},
                             headers={"Authorization": f"Bearer {token}"},
                             data=json.dumps(BookingGenerator(seed=3).booking()) + "\n",
                             timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {"successful_rows": 1, "quarantined_rows": 0}
    assert server.count("events") == before + 1
    read = requests.get(f"{server.url}/v0/pipes/top_airlines.json", params={"token": token},
                        timeout=30)
    assert read.status_code == 403


def test_bad_requests_are_400(server):
    assert create(server, "", "ADMIN").status_code == 400
    assert create(server, "dup_a", "PIPES:READ:top_airlines").status_code == 200
    assert create(server, "dup_a", "PIPES:READ:top_airlines").status_code == 400
    assert create(server, "bad_scope", "PIPES:WRITE:top_airlines").status_code == 400
    missing = create(server, "missing_pipe", "PIPES:READ:nope")
    assert missing.status_code == 400 and "nope" in missing.json()["error"]
    assert create(server, "missing_ds", "DATASOURCES:READ:nope").status_code == 400
    sneaky = create(server, "sneaky", "DATASOURCES:READ:events:1 IN (SELECT 1 FROM system.one)")
    assert sneaky.status_code == 400, sneaky.text


def test_refresh_changes_the_value_and_the_old_one_stops_working(server):
    old = create(server, "to_refresh", "PIPES:READ:top_airlines").json()["token"]
    response = requests.post(tokens_url(server, "/to_refresh/refresh"),
                             headers=server.admin_headers(), timeout=30)
    assert response.status_code == 200, response.text
    new = response.json()["token"]
    assert new != old and new.startswith("p.")
    url = f"{server.url}/v0/pipes/top_airlines.json"
    assert requests.get(url, params={"token": old}, timeout=30).status_code == 403
    assert requests.get(url, params={"token": new}, timeout=30).status_code == 200


def test_update_replaces_scopes_and_description(server):
    token = create(server, "to_update", "PIPES:READ:top_airlines").json()["token"]
    response = requests.put(tokens_url(server, "/to_update"),
                            params=[("scope", "DATASOURCES:READ:events"),
                                    ("description", "now events")],
                            headers=server.admin_headers(), timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["scopes"] == [{"type": "DATASOURCES:READ", "resource": "events",
                                          "filter": ""}]
    url = f"{server.url}/v0/pipes/top_airlines.json"
    assert requests.get(url, params={"token": token}, timeout=30).status_code == 403


def test_delete_then_the_token_is_refused_and_gone(server):
    token = create(server, "to_delete", "PIPES:READ:top_airlines").json()["token"]
    response = requests.delete(tokens_url(server, "/to_delete"), headers=server.admin_headers(),
                               timeout=30)
    assert response.status_code == 204
    url = f"{server.url}/v0/pipes/top_airlines.json"
    assert requests.get(url, params={"token": token}, timeout=30).status_code == 403
    assert requests.get(tokens_url(server, "/to_delete"), headers=server.admin_headers(),
                        timeout=30).status_code == 404
    assert requests.delete(tokens_url(server, "/to_delete"), headers=server.admin_headers(),
                           timeout=30).status_code == 404


def test_the_admin_token_cannot_be_deleted_or_refreshed(server):
    for method, suffix in [("DELETE", "/admin token"), ("POST", "/admin token/refresh")]:
        response = requests.request(method, tokens_url(server, suffix),
                                    headers=server.admin_headers(), timeout=30)
        assert response.status_code == 403


def test_jwt_creation_as_tinybird_sdk_sends_it(server):
    exp = int(time.time()) + 600
    response = requests.post(tokens_url(server, "/"), params={"expiration_time": exp},
                             headers=server.admin_headers(),
                             json={"name": "vegan_view", "scopes": [
                                 {"type": "PIPES:READ", "resource": "top_airlines",
                                  "fixed_params": {"meal_choice": "vegan"}}],
                                 "limits": {"rps": 50}}, timeout=30)
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    claims = jwt.decode(token, server.admin_token, algorithms=["HS256"])
    assert claims["exp"] == exp and claims["name"] == "vegan_view"
    assert claims["workspace_id"] == server.workspace.workspace_id
    assert claims["limits"] == {"rps": 50}
    vegan = requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                         params={"token": token, "meal_choice": "halal"}, timeout=30)
    assert vegan.status_code == 200, vegan.text
    expected = server.sql("SELECT count() AS n FROM events WHERE meal_choice = 'vegan'")
    assert sum(r["bookings"] for r in vegan.json()["data"]) == expected["data"][0]["n"]


def test_jwt_creation_refuses_bad_requests(server):
    exp = int(time.time()) + 600
    cases = [
        ({"expiration_time": exp, "name": "x"}, {"scopes": []}),
        ({"expiration_time": exp, "name": "x"}, {"scopes": [{"type": "ADMIN"}]}),
        ({"expiration_time": exp, "name": "x"},
         {"scopes": [{"type": "PIPES:READ", "resource": "nope"}]}),
        ({"expiration_time": int(time.time()) - 10, "name": "x"},
         {"scopes": [{"type": "PIPES:READ", "resource": "top_airlines"}]}),
        ({"expiration_time": exp},
         {"scopes": [{"type": "PIPES:READ", "resource": "top_airlines"}]}),
    ]
    for params, body in cases:
        response = requests.post(tokens_url(server), params=params, json=body,
                                 headers=server.admin_headers(), timeout=30)
        assert response.status_code == 400, (params, body, response.text)


def test_created_tokens_survive_a_restart(server_factory, tmp_path):
    first = server_factory(data_dir=tmp_path / "data")
    created = create(first, "kept", "PIPES:READ:top_airlines", description="kept").json()
    assert first.stop(signal.SIGTERM) == 0
    second = server_factory(data_dir=tmp_path / "data")
    got = requests.get(tokens_url(second, "/kept"), headers=second.admin_headers(), timeout=30)
    assert got.status_code == 200
    assert got.json()["token"] == created["token"]
    assert got.json()["id"] == created["id"] and got.json()["description"] == "kept"
    response = requests.get(f"{second.url}/v0/pipes/top_airlines.json",
                            params={"token": created["token"]}, timeout=30)
    assert response.status_code == 200
