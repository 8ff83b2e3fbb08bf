"""The pipe endpoints over HTTP: JSON shape, tokens, check order, parameters, formats."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
import requests

from tests.support.servers import make_project

TENANT_PIPE = """
TOKEN "airline_bookings_read" READ

DESCRIPTION >
    Bookings of one airline, newest first.

NODE filtered
SQL >
    %
    SELECT airline, meal_choice, timestamp
    FROM events
    WHERE airline = {{ String(airline, description="The airline", required=True) }}
    {% if defined(meal) %} AND meal_choice = {{ String(meal) }} {% end %}

NODE endpoint
SQL >
    %
    SELECT airline, count() AS bookings, max(timestamp) AS last_booking
    FROM filtered
    GROUP BY airline
    LIMIT {{ Int32(limit, 10, description="How many rows") }}

TYPE endpoint
"""

# The guide's first top_airlines.pipe (2024-05-31): a static READ token, one node and no
# TYPE line. Classic Tinybird publishes the last node of such a pipe as its endpoint.
CLASSIC_PIPE = """TOKEN "classic_top_airlines_read" READ

NODE endpoint
SQL >
    SELECT airline, count() AS bookings
    FROM events
    GROUP BY airline
    ORDER BY bookings DESC
    LIMIT 10
"""


SERVER_FILES = {
    "pipes/airline_bookings.pipe": TENANT_PIPE,
    "pipes/classic_top_airlines.pipe": CLASSIC_PIPE,
}
SERVER_SEED_ROWS, SERVER_SEED = 20000, 7

def get(server, path, token=None, **params):
    if token is not None:
        params["token"] = token
    return requests.get(f"{server.url}{path}", params=params, timeout=30)


def test_top_airlines_answers_tinybird_json_ranked_by_bookings(server):
    response = get(server, "/v0/pipes/top_airlines.json", server.jwt())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meta"] == [{"name": "airline", "type": "String"},
                            {"name": "bookings", "type": "UInt64"}]
    counts = [row["bookings"] for row in body["data"]]
    assert counts == sorted(counts, reverse=True)
    assert all(isinstance(c, int) for c in counts)  # 64-bit integers unquoted
    assert sum(counts) == 20000
    assert body["rows"] == len(body["data"]) == 7
    assert body["rows_before_limit_at_least"] == 7
    assert set(body["statistics"]) == {"elapsed", "rows_read", "bytes_read"}
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert len(response.headers["X-Request-ID"]) == 26


def test_bearer_header_works_and_query_token_wins(server):
    good = server.jwt()
    response = requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                            headers={"Authorization": f"Bearer {good}"}, timeout=30)
    assert response.status_code == 200
    response = requests.get(f"{server.url}/v0/pipes/top_airlines.json", params={"token": "bad"},
                            headers={"Authorization": f"Bearer {good}"}, timeout=30)
    assert response.status_code == 403


def test_guide_style_jwt_with_float_exp_and_iat_is_accepted(server):
    now = time.time()
    token = jwt.encode({"workspace_id": server.workspace.workspace_id, "name": "my_demo_jwt",
                        "exp": now + 600.123, "iat": int(now),
                        "scopes": [{"type": "PIPES:READ", "resource": "top_airlines"}]},
                       server.admin_token, algorithm="HS256")
    assert get(server, "/v0/pipes/top_airlines.json", token).status_code == 200


def test_scope_may_name_the_pipe_by_id(server):
    pipes = requests.get(f"{server.url}/v0/pipes", headers=server.admin_headers(),
                         timeout=30).json()["pipes"]
    pipe_id = next(p["id"] for p in pipes if p["name"] == "top_airlines")
    assert pipe_id.startswith("t_")
    assert get(server, "/v0/pipes/top_airlines.json", server.jwt(pipe_id)).status_code == 200


def _unsigned(claims: dict, alg: str = "none") -> str:
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims)}."


def _claims(server, **overrides):
    claims = {"workspace_id": server.workspace.workspace_id, "name": "t",
              "exp": int(time.time()) + 600,
              "scopes": [{"type": "PIPES:READ", "resource": "top_airlines"}]}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize("case,reason", [
    ("expired", "Signature has expired"),
    ("wrong_key", "Signature verification failed"),
    ("alg_none", "only HS256"),
    ("alg_hs512", "only HS256"),
    ("no_exp", '"exp"'),
    ("wrong_workspace", "Workspace with ID"),
    ("no_workspace", "Workspace ID missing"),
    ("garbage", "Malformed token"),
    ("unknown_static", "Token not found"),
    ("tampered", "Signature verification failed"),
])
def test_each_bad_token_is_a_403_naming_the_problem(server, case, reason):
    admin = server.admin_token
    if case == "expired":
        token = jwt.encode(_claims(server, exp=int(time.time()) - 5), admin, algorithm="HS256")
    elif case == "wrong_key":
        token = jwt.encode(_claims(server), "p.not-the-admin-token-but-long-enough-for-hs256",
                           algorithm="HS256")
    elif case == "alg_none":
        token = _unsigned(_claims(server))
    elif case == "alg_hs512":
        token = jwt.encode(_claims(server), admin * 2, algorithm="HS512")
    elif case == "no_exp":
        token = jwt.encode(_claims(server, exp=None), admin, algorithm="HS256")
    elif case == "wrong_workspace":
        token = jwt.encode(_claims(server, workspace_id="00000000-0000-0000-0000-000000000000"),
                           admin, algorithm="HS256")
    elif case == "no_workspace":
        token = jwt.encode(_claims(server, workspace_id=None), admin, algorithm="HS256")
    elif case == "garbage":
        token = "not-a-jwt"
    elif case == "unknown_static":
        token = "p.unknown"
    else:  # tampered: a valid token whose payload now asks for another pipe
        header, _, signature = server.jwt().split(".")
        claims = _claims(server, scopes=[{"type": "PIPES:READ", "resource": "airline_bookings"}])
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        token = f"{header}.{payload}.{signature}"
    response = get(server, "/v0/pipes/top_airlines.json", token)
    assert response.status_code == 403
    body = response.json()
    assert body["error"].startswith("invalid authentication token")
    assert reason in body["error"]
    assert token not in body["error"]
    assert body["documentation"].startswith("https://docs.tinybird.co")


def test_missing_token_is_403(server):
    response = get(server, "/v0/pipes/top_airlines.json")
    assert response.status_code == 403
    assert response.json()["error"] == "invalid authentication token"


def test_known_pipe_outside_scopes_is_403_unknown_pipe_is_404(server):
    token = server.jwt("top_airlines")
    response = get(server, "/v0/pipes/airline_bookings.json", token, airline="Fizz")
    assert response.status_code == 403
    assert "doesn't have access" in response.json()["error"]
    response = get(server, "/v0/pipes/no_such_pipe.json", token)
    assert response.status_code == 404
    assert response.json()["error"] == "The pipe 'no_such_pipe' does not exist"


def test_check_order_name_then_format(server):
    token = server.jwt()
    assert get(server, "/v0/pipes/bad-name!.json", token).status_code == 400
    response = get(server, "/v0/pipes/top_airlines.xml", token)
    assert response.status_code == 400
    assert "Format 'xml' not supported" in response.json()["error"]
    # Authentication comes before everything else.
    assert get(server, "/v0/pipes/no_such_pipe.xml", "bad").status_code == 403


def test_pipe_without_endpoint_is_404(server):
    response = get(server, "/v0/pipes/airline_bookings_totals_mv.json", server.admin_token)
    assert response.status_code == 404
    assert "does not have an endpoint yet" in response.json()["error"]


def test_classic_pipe_without_type_serves_its_last_node(server):
    static = server.workspace.tokens["classic_top_airlines_read"].token
    response = get(server, "/v0/pipes/classic_top_airlines.json", static)
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert rows and sum(r["bookings"] for r in rows) <= SERVER_SEED_ROWS
    assert [r["bookings"] for r in rows] == sorted((r["bookings"] for r in rows), reverse=True)
    expected = server.sql("SELECT airline, count() AS bookings FROM events GROUP BY airline "
                          "ORDER BY bookings DESC LIMIT 10")["data"]
    assert sorted(r["bookings"] for r in rows) == sorted(r["bookings"] for r in expected)


def test_static_read_token_reads_only_its_pipe(server):
    tokens = server.workspace.tokens
    static = tokens["top_airlines_read_static"].token
    assert get(server, "/v0/pipes/top_airlines.json", static).status_code == 200
    assert get(server, "/v0/pipes/airline_bookings.json", static,
               airline="Fizz").status_code == 403


def test_fixed_params_override_query_params(server):
    token = server.jwt("airline_bookings", fixed_params={"airline": "Fizz"})
    response = get(server, "/v0/pipes/airline_bookings.json", token, airline="BrianAir")
    assert response.status_code == 200, response.text
    assert [row["airline"] for row in response.json()["data"]] == ["Fizz"]
    expected = server.count("events WHERE airline = 'Fizz'")
    assert response.json()["data"][0]["bookings"] == expected


def test_multi_node_pipe_reads_earlier_node_and_optional_param(server):
    token = server.jwt("airline_bookings")
    everything = get(server, "/v0/pipes/airline_bookings.json", token, airline="GAS").json()
    vegan = get(server, "/v0/pipes/airline_bookings.json", token, airline="GAS",
                meal="vegan").json()
    assert everything["data"][0]["bookings"] == server.count("events WHERE airline = 'GAS'")
    assert vegan["data"][0]["bookings"] == server.count(
        "events WHERE airline = 'GAS' AND meal_choice = 'vegan'")


def test_missing_required_parameter_is_400_naming_it(server):
    response = get(server, "/v0/pipes/airline_bookings.json", server.jwt("airline_bookings"))
    assert response.status_code == 400
    assert "'airline'" in response.json()["error"]


def test_wrong_type_parameter_is_400_naming_it(server):
    response = get(server, "/v0/pipes/airline_bookings.json", server.jwt("airline_bookings"),
                   airline="GAS", limit="ten")
    assert response.status_code == 400
    assert "'limit'" in response.json()["error"]
    assert "Int32" in response.json()["error"]


def test_injection_attempt_stays_a_string_value(server):
    response = get(server, "/v0/pipes/airline_bookings.json", server.jwt("airline_bookings"),
                   airline="GAS' OR 1=1 --")
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


def test_post_takes_parameters_from_the_json_body(server):
    response = requests.post(f"{server.url}/v0/pipes/airline_bookings.json",
                             params={"token": server.jwt("airline_bookings")},
                             json={"airline": "Fizz", "limit": 1}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["airline"] == "Fizz"


def test_csv_and_ndjson_formats(server):
    token = server.jwt()
    csv = get(server, "/v0/pipes/top_airlines.csv", token)
    assert csv.status_code == 200
    lines = csv.text.strip().splitlines()
    assert lines[0] == '"airline","bookings"'
    assert len(lines) == 8
    ndjson = get(server, "/v0/pipes/top_airlines.ndjson", token)
    rows = [json.loads(line) for line in ndjson.text.strip().splitlines()]
    assert len(rows) == 7 and set(rows[0]) == {"airline", "bookings"}
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")


def test_options_preflight_is_204_with_cors(server):
    response = requests.options(f"{server.url}/v0/pipes/top_airlines.json", timeout=30)
    assert response.status_code == 204
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "GET" in response.headers["Access-Control-Allow-Methods"]


def test_browser_preflight_and_cross_origin_get(server):
    """What a browser sends: a full preflight is 204 with the CORS headers (Tinybird's
    status, not Starlette's 200), and the GET after it is readable from any origin."""
    origin = "https://dashboard.example"
    for path in ("/v0/pipes/top_airlines.json", "/v0/events"):
        preflight = requests.options(
            f"{server.url}{path}", timeout=30,
            headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status_code == 204, preflight.text
        assert preflight.content == b""
        assert preflight.headers["Access-Control-Allow-Origin"] == "*"
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        assert preflight.headers["Access-Control-Max-Age"] == "86400"
        assert len(preflight.headers["X-Request-ID"]) == 26
    response = requests.get(f"{server.url}/v0/pipes/top_airlines.json", timeout=30,
                            headers={"Origin": origin,
                                     "Authorization": f"Bearer {server.jwt()}"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Expose-Headers"] == "X-Tb-Warning"
    refused = get(server, "/v0/pipes/top_airlines.json", "not-a-token")
    assert refused.status_code == 403
    assert refused.headers["Access-Control-Allow-Origin"] == "*"


def test_jwt_rate_limit_gives_429_with_retry_after(server):
    token = server.jwt(name="limited", rps=2)
    statuses = []
    last = None
    for _ in range(8):
        last = get(server, "/v0/pipes/top_airlines.json", token)
        statuses.append(last.status_code)
        if last.status_code == 429:
            break
    assert statuses[0] == 200
    assert statuses[-1] == 429, statuses
    assert last.headers["Retry-After"].isdigit()
    assert last.headers["X-RateLimit-Limit"] == "3"
    assert last.json()["error"].startswith("Too many requests: retry after")
    # Another JWT name has its own budget.
    assert get(server, "/v0/pipes/top_airlines.json",
               server.jwt(name="other", rps=2)).status_code == 200


def test_sql_endpoint_limits_a_jwt_to_its_pipes(server):
    # Any token may use /v0/sql, for the resources it may read (test_sql_access.py).
    response = get(server, "/v0/sql", server.jwt(), q="SELECT count() FROM events")
    assert response.status_code == 403
    assert get(server, "/v0/sql", server.jwt(),
               q="SELECT count() AS n FROM top_airlines").json()["data"][0]["n"] == 7
    assert server.sql("SELECT count() AS n FROM events")["data"][0]["n"] == 20000


def test_engine_error_is_400_json(server):
    response = get(server, "/v0/sql", server.admin_token, q="SELECT * FROM no_such_table")
    assert response.status_code == 400
    assert "no_such_table" in response.json()["error"]


def test_pipes_and_datasources_listing(server):
    pipes = requests.get(f"{server.url}/v0/pipes", headers=server.admin_headers(),
                         timeout=30).json()["pipes"]
    tenant = next(p for p in pipes if p["name"] == "airline_bookings")
    params = {p["name"]: p for p in tenant["params"]}
    assert params["airline"]["required"] is True
    assert params["limit"]["default"] == 10 and params["limit"]["type"] == "Int32"
    datasources = requests.get(f"{server.url}/v0/datasources", headers=server.admin_headers(),
                               timeout=30).json()["datasources"]
    events = next(d for d in datasources if d["name"] == "events")
    assert len(events["columns"]) == 12
    assert events["statistics"]["row_count"] == 20000
    assert requests.get(f"{server.url}/v0/pipes", params={"token": server.jwt()},
                        timeout=30).status_code == 403


def test_query_over_the_time_limit_is_408(server_factory, tmp_path):
    project = make_project(tmp_path, {"pipes/slow.pipe": (
        "NODE endpoint\nSQL >\n    SELECT count() AS n FROM numbers(100000000000)\n\n"
        "TYPE endpoint\n")})
    slow = server_factory(project_dir=project, env={"TB_LOCAL_QUERY_TIMEOUT": "0.5"})
    response = get(slow, "/v0/pipes/slow.json", slow.jwt("slow"))
    assert response.status_code == 408
    assert "Timeout" in response.json()["error"]
    # The limit is for queries, not for bulk loads.
    seeded = requests.post(f"{slow.url}/v0/local/seed", params={"rows": 2_000_000},
                           headers=slow.admin_headers(), timeout=120)
    assert seeded.status_code == 200, seeded.text


def test_parquet_format(server):
    response = get(server, "/v0/pipes/top_airlines.parquet", server.jwt())
    assert response.status_code == 200
    assert response.content[:4] == b"PAR1"


def test_sql_endpoint_takes_post_bodies_and_explicit_formats(server):
    headers = server.admin_headers()
    raw = requests.post(f"{server.url}/v0/sql", data="SELECT 1 AS one", headers=headers,
                        timeout=30)
    assert raw.json()["data"] == [{"one": 1}]
    form = requests.post(f"{server.url}/v0/sql", data={"q": "SELECT 2 AS two"},
                         headers=headers, timeout=30)
    assert form.json()["data"] == [{"two": 2}]
    csv = get(server, "/v0/sql", server.admin_token, q="SELECT 'a format b' AS s FORMAT CSV")
    assert csv.text.strip() == '"a format b"'
    assert get(server, "/v0/sql", server.admin_token, q="  ;").status_code == 400


def test_q_runs_sql_over_the_endpoint_result(server):
    response = get(server, "/v0/pipes/top_airlines.json", server.jwt(),
                   q="SELECT count() AS airlines, sum(bookings) AS total FROM _")
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [{"airlines": 7, "total": 20000}]
    csv = get(server, "/v0/pipes/top_airlines.csv", server.jwt(),
              q="SELECT airline FROM _ ORDER BY airline LIMIT 2")
    assert csv.status_code == 200 and len(csv.text.strip().splitlines()) == 3


def test_q_sees_the_request_parameters_and_the_jwt_fixed_params(server):
    token = server.jwt(fixed_params={"meal_choice": "vegan"})
    vegan = server.sql("SELECT count() AS n FROM events WHERE meal_choice = 'vegan'")
    response = get(server, "/v0/pipes/top_airlines.json", token,
                   q="SELECT sum(bookings) AS total FROM _", meal_choice="halal")
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["total"] == vegan["data"][0]["n"]


def test_q_follows_the_select_only_rules_and_the_token_scopes(server):
    token = server.jwt()
    assert get(server, "/v0/pipes/top_airlines.json", token,
               q="% SELECT * FROM _").json()["error"] == "'q' parameter doesn't support templates"
    for q, status in [("DROP TABLE events", 400), ("SELECT * FROM system.tables", 400),
                      ("SELECT * FROM _; DROP TABLE events", 400),
                      ("SELECT count() FROM events", 403),
                      ("SELECT * FROM tinybird.pipe_stats_rt", 403)]:
        response = get(server, "/v0/pipes/top_airlines.json", token, q=q)
        assert response.status_code == status, (q, response.text)
    assert server.count("events") == 20000


def test_q_in_a_post_body(server):
    response = requests.post(f"{server.url}/v0/pipes/top_airlines.json",
                             params={"token": server.jwt()},
                             json={"q": "SELECT count() AS n FROM _"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [{"n": 7}]
