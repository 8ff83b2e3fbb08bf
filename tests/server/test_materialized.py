"""`top_airlines` reads materialized totals: same answer as counting every booking."""

from __future__ import annotations

import json

import requests

from lib.bookings.generator import BookingGenerator
from tests.support.servers import make_project

RAW = "SELECT airline, count() AS bookings FROM events GROUP BY airline"


def endpoint_counts(server) -> dict[str, int]:
    response = requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                            params={"token": server.jwt()}, timeout=30)
    assert response.status_code == 200, response.text
    return {row["airline"]: row["bookings"] for row in response.json()["data"]}


def raw_counts(server) -> dict[str, int]:
    return {row["airline"]: int(row["bookings"]) for row in server.sql(RAW)["data"]}


def seed(server, rows):
    response = requests.post(f"{server.url}/v0/local/seed", params={"rows": rows},
                             headers=server.admin_headers(), timeout=120)
    assert response.status_code == 200, response.text


def test_totals_match_raw_counts_at_several_sizes_and_across_restarts(server_factory, tmp_path):
    server = server_factory(data_dir=tmp_path / "data")
    assert endpoint_counts(server) == {} == raw_counts(server)
    booking = BookingGenerator(seed=1).booking()
    requests.post(f"{server.url}/v0/events", params={"name": "events", "wait": "true"},
                  data=json.dumps(booking), headers=server.admin_headers(), timeout=30)
    assert endpoint_counts(server) == {booking["airline"]: 1}
    for rows in (999, 100_000):
        seed(server, rows)
        assert endpoint_counts(server) == raw_counts(server)
    assert sum(endpoint_counts(server).values()) == 101_000
    server.stop()
    restarted = server_factory(data_dir=tmp_path / "data")
    assert endpoint_counts(restarted) == raw_counts(restarted)
    assert sum(endpoint_counts(restarted).values()) == 101_000


def test_existing_events_are_back_filled_and_changed_views_rebuilt(server_factory, tmp_path):
    # A data dir with events but without the view: the view's first start back-fills.
    bare = make_project(tmp_path / "bare")
    (bare / "pipes" / "airline_bookings_totals_mv.pipe").unlink()
    (bare / "pipes" / "top_airlines.pipe").write_text(
        "NODE endpoint\nSQL >\n    SELECT 1 AS one\n\nTYPE endpoint\n")
    first = server_factory(project_dir=bare, data_dir=tmp_path / "data")
    seed(first, 5000)
    first.stop()
    second = server_factory(data_dir=tmp_path / "data")
    assert endpoint_counts(second) == raw_counts(second)
    second.stop()
    # The view's SQL changes: the totals are rebuilt from events, not added to.
    changed = make_project(tmp_path / "changed")
    mv = changed / "pipes" / "airline_bookings_totals_mv.pipe"
    mv.write_text(mv.read_text().replace("FROM events", "FROM events WHERE airline != 'Fizz'"))
    third = server_factory(project_dir=changed, data_dir=tmp_path / "data")
    expected = {k: v for k, v in raw_counts(third).items() if k != "Fizz"}
    assert endpoint_counts(third) == expected


def test_endpoint_reads_far_fewer_rows_than_events(server):
    seed(server, 50_000)
    response = requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                            params={"token": server.jwt()}, timeout=30)
    assert response.json()["statistics"]["rows_read"] < 1000


def test_rows_read_counts_the_rows_the_engine_read(server):
    """`statistics.rows_read`, and `read_rows` in `tinybird.pipe_stats_rt`, are what the
    engine read from storage, as on Tinybird: an endpoint that counts one airline's
    bookings reads at least that many rows."""
    seed(server, 20_000)
    airline, bookings = max(raw_counts(server).items(), key=lambda item: item[1])
    response = requests.get(f"{server.url}/v0/pipes/airline_top_routes.json",
                            params={"token": server.jwt("airline_top_routes", name="rows_probe"),
                                    "airline": airline}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["statistics"]["rows_read"] >= bookings
    logged = server.sql("SELECT read_rows, read_bytes FROM tinybird.pipe_stats_rt "
                        "WHERE token_name = 'rows_probe'")["data"]
    assert len(logged) == 1 and int(logged[0]["read_rows"]) >= bookings, logged
    assert int(logged[0]["read_bytes"]) > int(logged[0]["read_rows"]), logged


def test_a_removed_materialized_pipe_stops_feeding_its_target(server_factory, tmp_path):
    """A start with a project that no longer has a materialized pipe drops its view:
    rows inserted afterwards are not added to the totals it used to feed."""
    first = server_factory(data_dir=tmp_path / "data")
    seed(first, 1000)
    first.stop()
    without = make_project(tmp_path / "without")
    (without / "pipes" / "airline_bookings_totals_mv.pipe").unlink()
    second = server_factory(project_dir=without, data_dir=tmp_path / "data")
    seed(second, 500)
    totals = second.sql("SELECT sum(bookings) AS n FROM airline_bookings_totals")
    assert int(totals["data"][0]["n"]) == 1000
    assert second.count("events") == 1500
