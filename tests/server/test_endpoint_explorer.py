"""The endpoint explorer's logic: reading a pipe listing, and one call with a scoped JWT."""

from __future__ import annotations

import pytest

from lib.client.errors import AuthError
from lib.client.pipes import list_pipes
from lib.ui import endpoint_explorer
from lib.ui.endpoint_explorer import Endpoint, EndpointParam, call_endpoint, endpoints_from_listing

WRONG_KEY = "p.not-the-admin-token-but-long-enough-for-hs256"

LOCAL_SHAPE = [
    {"name": "b_pipe", "type": "endpoint", "endpoint": "/v0/pipes/b_pipe.json",
     "description": "Two\n  lines", "params": [
         {"name": "limit", "type": "Int32", "default": 10, "required": False,
          "description": "How many"},
         {"name": "limit", "type": "Int32", "default": 10, "required": False,
          "description": "declared twice"},
         {"name": "day", "type": "Date", "default": None, "required": True,
          "description": "Which day"}]},
    {"name": "a_mv", "type": "materialized", "endpoint": None, "params": []},
]
# Tinybird's cloud: `endpoint` holds the published node's id, parameters sit on nodes.
CLOUD_SHAPE = [
    {"id": "t_1", "name": "cloud_pipe", "endpoint": "t_node", "description": None,
     "nodes": [{"id": "t_node", "params": [{"name": "country", "type": "String"}]},
               {"id": "t_other", "params": [{"name": "country", "type": "String"},
                                            {"name": "year", "type": "Int16"}]}]},
    {"id": "t_2", "name": "draft", "endpoint": None, "nodes": []},
]


def test_only_published_endpoints_are_listed_with_their_parameters_once():
    endpoints = endpoints_from_listing(LOCAL_SHAPE + CLOUD_SHAPE)
    assert [e.name for e in endpoints] == ["b_pipe", "cloud_pipe"]
    b_pipe, cloud = endpoints
    assert b_pipe.description == "Two lines"
    assert b_pipe.params == (
        EndpointParam("limit", "Int32", 10, False, "How many"),
        EndpointParam("day", "Date", None, True, "Which day"),
    )
    assert [p.name for p in cloud.params] == ["country", "year"]
    assert cloud.description == ""


def test_param_rows_and_form_values():
    endpoint = endpoints_from_listing(LOCAL_SHAPE)[0]
    assert endpoint_explorer.param_rows(endpoint)[0] == {"parameter": "limit", "type": "Int32",
                                                "default": "10", "required": False,
                                                "description": "How many"}
    assert endpoint_explorer.param_rows(endpoint)[1]["default"] == ""
    values = {"limit": "  ", "day": " 2025-01-01 ", "token": "sneaky"}
    # Blank means "the default"; a name the endpoint does not declare is not sent.
    assert endpoint_explorer.request_params(endpoint, values) == {"day": "2025-01-01"}


def test_a_big_response_is_cut_for_the_page():
    from lib.client.pipes import PipeResult

    rows = [{"n": i} for i in range(endpoint_explorer.MAX_JSON_ROWS + 5)]
    body = {"meta": [], "data": rows, "rows": len(rows)}
    result = PipeResult(data=rows, meta=[], rows=len(rows), elapsed_seconds=None,
                        rows_read=None, round_trip_seconds=0.0, body=body)
    shown = endpoint_explorer.ExplorerCall("p", "u", result=result).shown_json()
    assert len(shown["data"]) == endpoint_explorer.MAX_JSON_ROWS and shown["rows"] == len(rows)
    assert len(body["data"]) == len(rows)  # the result itself is untouched


# -- against Tinybird Local --------------------------------------------------------------------


def client_for(server, pipe: str):
    return endpoint_explorer.explorer_client(server.url, server.workspace.workspace_id,
                                    server.admin_token, pipe, ttl_seconds=600)


def test_the_workspace_lists_its_endpoints_and_their_parameters(server):
    endpoints = {e.name: e for e in endpoint_explorer.load_endpoints(server.url,
                                                            server.admin_token)}
    assert set(endpoints) == {"top_airlines", "airline_daily_bookings", "airline_top_routes",
                              "airline_meal_mix"}  # the materialized pipe is not an endpoint
    routes = endpoints["airline_top_routes"]
    assert [(p.name, p.type, p.default, p.required) for p in routes.params] == [
        ("airline", "String", None, True), ("date_from", "Date", None, False),
        ("date_to", "Date", None, False), ("limit", "Int32", 10, False)]
    assert routes.param("limit").description == "How many routes to return (1-100)"
    assert [(p.name, p.type, p.required) for p in endpoints["top_airlines"].params] == [
        ("date_from", "DateTime", False), ("date_to", "DateTime", False),
        ("meal_choice", "String", False)]


def test_a_wrong_admin_token_is_an_auth_error_that_says_which_token(server):
    with pytest.raises(AuthError) as caught:
        list_pipes(server.url, WRONG_KEY)
    assert caught.value.status == 403
    assert "admin token" in caught.value.hint
    assert WRONG_KEY not in caught.value.message


def test_a_call_returns_rows_stats_and_a_url_without_the_token(server):
    endpoint = Endpoint("airline_top_routes", "", (
        EndpointParam("airline", "String", required=True), EndpointParam("limit", "Int32", 10)))
    client = client_for(server, endpoint.name)
    call = call_endpoint(client, endpoint, {"airline": "Fizz", "limit": "2"})
    assert call.error is None, call.error
    assert call.url == (f"{server.url}/v0/pipes/airline_top_routes.json"
                        "?airline=Fizz&limit=2")
    assert call.result.url == call.url
    assert call.result.elapsed_seconds is not None and call.result.rows_read is not None
    assert set(call.shown_json()) >= {"meta", "data", "rows", "statistics"}
    # The JWT may read this one endpoint and nothing else.
    claims = client.tokens.current.claims
    assert claims["scopes"] == [{"type": "PIPES:READ", "resource": "airline_top_routes"}]
    assert client.tokens.current.token not in call.url


def test_a_bad_parameter_is_the_servers_400_message(server):
    endpoint = Endpoint("airline_top_routes", "", (
        EndpointParam("airline", "String", required=True), EndpointParam("limit", "Int32", 10)))
    call = call_endpoint(client_for(server, endpoint.name), endpoint,
                         {"airline": "Fizz", "limit": "lots"})
    assert call.result is None
    assert call.error.status == 400
    assert call.error.message == "Error validating 'lots' to type Int32 (parameter 'limit')"
    assert "limit=lots" in call.url
    missing = call_endpoint(client_for(server, endpoint.name), endpoint, {})
    assert missing.error.status == 400 and "'airline'" in missing.error.message


def test_the_explorer_jwt_cannot_read_another_endpoint(server):
    client = client_for(server, "airline_meal_mix")
    with pytest.raises(AuthError):
        client.fetch("top_airlines")
