"""Pipes whose nodes read another pipe by name, as on Tinybird.

The other pipe's published node is read with the request's parameters (they cascade),
a token for the endpoint reads through the pipes it uses and nothing more, and a cycle
or a read of a pipe that publishes nothing is a clear refusal, never a crash.
"""

from __future__ import annotations

import requests

from tests.server.test_api_datasources import assert_error
from tests.server.test_api_deploy import post_deploy, project_files
from tests.server.test_local_cli import cli
from tests.support.servers import make_project

SERVER_SEED_ROWS, SERVER_SEED = 2000, 7

COUNTS = """
NODE counts
SQL >
    %
    SELECT airline, count() AS bookings
    FROM events
    {% if defined(meal) %} WHERE meal_choice = {{String(meal)}} {% end %}
    GROUP BY airline
"""

TOP_FROM_COUNTS = """
TOKEN "top_from_counts_read" READ

NODE ranked
SQL >
    SELECT airline, bookings FROM airline_counts ORDER BY bookings DESC, airline LIMIT 3

TYPE endpoint
"""

# Two levels: a pipe that reads a pipe that reads a pipe, with a node of its own first.
CHAIN = """
NODE first
SQL >
    SELECT airline FROM top_from_counts

NODE endpoint
SQL >
    SELECT count() AS airlines FROM first

TYPE endpoint
"""

BY_AIRLINE = """
NODE only
SQL >
    %
    SELECT count() AS n FROM events WHERE airline = {{String(airline, required=True)}}

TYPE endpoint
"""

READS_BY_AIRLINE = """
NODE doubled
SQL >
    SELECT n * 2 AS doubled FROM by_airline

TYPE endpoint
"""

# A cycle hidden behind a required parameter, so start-up cannot see it and a request
# meets it.
CYCLE_A = """
NODE a
SQL >
    %
    SELECT * FROM cycle_b WHERE {{Int32(x, required=True)}} > 0
"""

CYCLE_B = """
NODE b
SQL >
    %
    SELECT * FROM cycle_a WHERE {{Int32(x, required=True)}} > 0
"""

SERVER_FILES = {
    "pipes/airline_counts.pipe": COUNTS,
    "pipes/top_from_counts.pipe": TOP_FROM_COUNTS,
    "pipes/chain_top.pipe": CHAIN,
    "pipes/by_airline.pipe": BY_AIRLINE,
    "pipes/reads_by_airline.pipe": READS_BY_AIRLINE,
    "pipes/cycle_a.pipe": CYCLE_A,
    "pipes/cycle_b.pipe": CYCLE_B,
}


def endpoint(server, pipe: str, token: str | None = None, **params) -> requests.Response:
    return requests.get(f"{server.url}/v0/pipes/{pipe}.json",
                        params={**params, "token": token or server.admin_token}, timeout=30)


def sql(server, q: str, token: str) -> requests.Response:
    return requests.get(f"{server.url}/v0/sql", params={"q": q, "token": token}, timeout=30)


def expected_top(server, meal: str | None = None) -> list[dict]:
    where = f"WHERE meal_choice = '{meal}'" if meal else ""
    rows = server.sql(f"SELECT airline, count() AS bookings FROM events {where} "
                      "GROUP BY airline ORDER BY bookings DESC, airline LIMIT 3")["data"]
    return [{"airline": r["airline"], "bookings": int(r["bookings"])} for r in rows]


def test_a_node_reads_another_pipes_published_node(server):
    response = endpoint(server, "top_from_counts")
    assert response.status_code == 200, response.text
    assert response.json()["data"] == expected_top(server)


def test_the_requests_parameters_cascade_to_the_pipe_read(server):
    response = endpoint(server, "top_from_counts", meal="vegan")
    assert response.status_code == 200, response.text
    assert response.json()["data"] == expected_top(server, "vegan")
    assert expected_top(server, "vegan") != expected_top(server)


def test_pipes_read_through_two_levels_beside_the_pipes_own_nodes(server):
    response = endpoint(server, "chain_top")
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [{"airlines": 3}]


def test_a_required_parameter_of_the_pipe_read_is_named_when_missing(server):
    response = endpoint(server, "reads_by_airline")
    assert_error(response, 400, "parameter 'airline' is required")
    response = endpoint(server, "reads_by_airline", airline="Fizz")
    assert response.status_code == 200, response.text
    n = server.count("events WHERE airline = 'Fizz'")
    assert n > 0 and response.json()["data"] == [{"doubled": 2 * n}]


def test_a_cycle_is_a_400_naming_it(server):
    response = endpoint(server, "cycle_a", x=1)
    assert_error(response, 400, "pipes read each other in a cycle "
                                "(cycle_a -> cycle_b -> cycle_a)")


def test_a_jwt_for_the_endpoint_reads_through_it_and_nothing_more(server):
    token = server.jwt("top_from_counts")
    response = endpoint(server, "top_from_counts", token=token)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == expected_top(server)
    assert endpoint(server, "airline_counts", token=token).status_code == 403
    answer = sql(server, "SELECT sum(bookings) AS n FROM top_from_counts", token)
    assert answer.status_code == 200, answer.text
    assert int(answer.json()["data"][0]["n"]) == sum(r["bookings"] for r in expected_top(server))
    assert_error(sql(server, "SELECT * FROM airline_counts", token), 403,
                 "lacks READ on Pipe 'airline_counts'")
    assert_error(sql(server, "SELECT count() FROM events", token), 403,
                 "lacks READ on Data Source 'events'")


def test_fixed_params_cascade_to_the_pipe_read_and_win_over_the_request(server):
    token = server.jwt("top_from_counts", fixed_params={"meal": "halal"})
    response = endpoint(server, "top_from_counts", token=token, meal="vegan")
    assert response.status_code == 200, response.text
    assert response.json()["data"] == expected_top(server, "halal")
    answer = sql(server, "SELECT airline, bookings FROM top_from_counts", token)
    assert answer.status_code == 200, answer.text
    assert [r["airline"] for r in answer.json()["data"]] == \
        [r["airline"] for r in expected_top(server, "halal")]


def test_the_static_token_of_the_endpoint_reads_through_it(server):
    static = server.workspace.tokens["top_from_counts_read"].token
    response = endpoint(server, "top_from_counts", token=static)
    assert response.status_code == 200, response.text
    assert endpoint(server, "airline_counts", token=static).status_code == 403


def test_serve_stops_on_a_cycle_or_a_read_of_a_materialized_pipe(tmp_path):
    cycle = make_project(tmp_path / "one", {
        "pipes/loop_a.pipe": "NODE a\nSQL >\n    SELECT * FROM loop_b\n",
        "pipes/loop_b.pipe": "NODE b\nSQL >\n    SELECT * FROM loop_a\n"})
    result = cli("serve", "--project-dir", cycle, "--data-dir", tmp_path / "d1", "--port", 0)
    assert result.returncode == 1
    assert "loop_a.pipe:1:" in result.stderr and "cycle (loop_a -> loop_b -> loop_a)" in \
        result.stderr
    assert "Traceback" not in result.stderr
    materialized = make_project(tmp_path / "two", {
        "pipes/reads_mv.pipe": "NODE r\nSQL >\n    SELECT * FROM airline_bookings_totals_mv\n"})
    result = cli("serve", "--project-dir", materialized, "--data-dir", tmp_path / "d2",
                 "--port", 0)
    assert result.returncode == 1
    assert "reads_mv.pipe:1:" in result.stderr
    assert "publishes no node (it is materialized): read its data source " \
        "'airline_bookings_totals' instead" in result.stderr


def test_a_deployment_may_add_a_pipe_that_reads_another_and_a_cycle_is_named(server_factory):
    running = server_factory()
    reads = {"pipes/top_three.pipe": "NODE t\nSQL >\n    SELECT * FROM top_airlines LIMIT 3\n\n"
                                     "TYPE endpoint\n"}
    response = post_deploy(running, project_files(reads), auto_promote="true")
    assert response.status_code == 200, response.text
    served = endpoint(running, "top_three")
    assert served.status_code == 200, served.text
    loop = {"pipes/loop_a.pipe": "NODE a\nSQL >\n    SELECT * FROM loop_b\n",
            "pipes/loop_b.pipe": "NODE b\nSQL >\n    SELECT * FROM loop_a\n"}
    response = post_deploy(running, project_files(loop), check="true")
    assert response.status_code == 400, response.text
    assert "cycle (loop_a -> loop_b -> loop_a)" in response.text
