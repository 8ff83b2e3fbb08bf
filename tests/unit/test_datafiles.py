"""Datafile parsing: the real files, every supported setting, and errors with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib.tinybird_local.datafile_sql import create_table_sql, pipe_sql
from lib.tinybird_local.datafiles import (
    DatafileError,
    load_project,
    parse_datasource,
    parse_pipe,
)
from tests.support.servers import PROJECT_DIR


def test_real_events_datasource_has_the_guides_twelve_columns():
    ds = parse_datasource(PROJECT_DIR / "datasources" / "events.datasource")
    assert [c.name for c in ds.columns] == [
        "age", "airline", "email", "extra_bags", "flight_from", "flight_to", "meal_choice",
        "name", "passport_number", "priority_boarding", "timestamp", "transaction_id",
    ]
    types = {c.name: c.type for c in ds.columns}
    assert types["age"] == "Int16" and types["passport_number"] == "Int32"
    assert types["priority_boarding"] == "UInt8"
    assert types["timestamp"].startswith("DateTime64(3")
    assert all(c.json_path == f"$.{c.name}" for c in ds.columns)
    assert ds.engine == "MergeTree" and ds.sorting_key.startswith("airline")


def test_real_top_airlines_pipe_matches_the_guide():
    pipe = parse_pipe(PROJECT_DIR / "pipes" / "top_airlines.pipe")
    assert pipe.is_endpoint
    assert [t.name for t in pipe.tokens] == ["top_airlines_read_static"]
    sql = pipe.output_node.sql
    assert "FROM airline_bookings_totals" in sql and "sum(bookings) AS bookings" in sql
    assert "LIMIT 10" in sql and "ORDER BY bookings DESC" in sql
    # The totals are the guide's count() per airline, kept by a materialized pipe.
    mv = parse_pipe(PROJECT_DIR / "pipes" / "airline_bookings_totals_mv.pipe")
    assert mv.type == "materialized" and mv.target_datasource == "airline_bookings_totals"
    assert "count() AS bookings" in mv.output_node.sql


def test_classic_pipe_without_type_publishes_its_last_node(tmp_path):
    # The guide's original top_airlines.pipe (2024-05-31) had no TYPE line.
    path = tmp_path / "top_airlines.pipe"
    path.write_text('TOKEN "top_airlines_read_static" READ\n\nNODE first\nSQL >\n    SELECT 1 AS a'
                    "\n\nNODE endpoint\nSQL >\n    SELECT a FROM first\n")
    pipe = parse_pipe(path)
    assert pipe.type == "endpoint" and pipe.is_endpoint
    assert pipe.output_node.name == "endpoint"


def test_datasource_settings_defaults_and_json_paths(tmp_path):
    path = tmp_path / "things.datasource"
    path.write_text(
        'DESCRIPTION >\n    Things.\n\nTOKEN "things_append" APPEND\n\n'
        "SCHEMA >\n"
        "    `id` UInt64 `json:$.id`,\n"
        "    `tags` Array(String) `json:$.meta.tags[:]` DEFAULT [],\n"
        "    `at` DateTime DEFAULT now() `json:$.at`,\n"
        "    price Decimal(10, 2)\n\n"
        'ENGINE "ReplacingMergeTree"\n'
        'ENGINE_PARTITION_KEY "toYYYYMM(at)"\n'
        'ENGINE_SORTING_KEY "id"\n'
        'ENGINE_TTL "at + INTERVAL 30 DAY"\n'
        'ENGINE_SETTINGS "index_granularity=8192"\n'
    )
    ds = parse_datasource(path)
    cols = {c.name: c for c in ds.columns}
    assert cols["tags"].type == "Array(String)" and cols["tags"].default == "[]"
    assert cols["at"].default == "now()" and cols["at"].json_path == "$.at"
    assert cols["price"].type == "Decimal(10, 2)" and cols["price"].json_keys == ("price",)
    assert ds.tokens[0].permission == "APPEND"
    sql = create_table_sql(ds)
    for fragment in ("ReplacingMergeTree()", "PARTITION BY toYYYYMM(at)", "ORDER BY (id)",
                     "TTL at + INTERVAL 30 DAY", "SETTINGS index_granularity=8192",
                     "`tags` Array(String) DEFAULT []"):
        assert fragment in sql


@pytest.mark.parametrize("text,line,reason", [
    ("SCHEMA >\n    `a` Int32,\n    `b`\n", 3, "cannot read column"),
    ("SCHEMA >\n    `a` Int32\nENGINE_FOO \"x\"\n", 3, "unknown datasource setting"),
    ("SCHEMA >\n    `a` Int32 `json:a`\n", 2, "must start with '$'"),
    ("SCHEMA >\n    `a` Int32,\n    `a` String\n", 1, "defined twice"),
    ("ENGINE \"MergeTree\"\n", 1, "no SCHEMA"),
    ("SCHEMA >\n", 1, "no indented block"),
])
def test_malformed_datasource_names_file_line_and_reason(tmp_path, text, line, reason):
    path = tmp_path / "bad.datasource"
    path.write_text(text)
    with pytest.raises(DatafileError) as info:
        parse_datasource(path)
    assert info.value.line == line
    assert reason in info.value.reason
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text,reason", [
    ("SQL >\n    SELECT 1\n", "SQL must follow a NODE"),
    ("NODE a\nSQL >\n    SELECT 1\nTYPE stream\n", "unknown pipe TYPE"),
    ("NODE a\nSQL >\n    SELECT 1\nTYPE materialized\n", "DATASOURCE target"),
    ("NODE a\nSQL >\n    SELECT 1\nNODE a\nSQL >\n    SELECT 2\n", "defined twice"),
    ("NODE a\nDESCRIPTION >\n    x\n", "has no SQL"),
    ("", "no NODE"),
])
def test_malformed_pipe_is_refused_with_reason(tmp_path, text, reason):
    path = tmp_path / "bad.pipe"
    path.write_text(text)
    with pytest.raises(DatafileError, match=reason):
        parse_pipe(path)


def test_project_refuses_dangling_materialized_target(tmp_path):
    (tmp_path / "p.pipe").write_text(
        "NODE a\nSQL >\n    SELECT 1 AS x\nTYPE materialized\nDATASOURCE nowhere\n")
    with pytest.raises(DatafileError, match="'nowhere' not found"):
        load_project(tmp_path)


def test_missing_project_dir_is_an_error(tmp_path):
    with pytest.raises(DatafileError, match="does not exist"):
        load_project(tmp_path / "absent")


def test_nodes_become_ctes_so_later_nodes_read_earlier_ones(tmp_path):
    path = Path(tmp_path) / "p.pipe"
    path.write_text("NODE first\nSQL >\n    SELECT 1 AS x\n\n"
                    "NODE second\nSQL >\n    WITH 2 AS y SELECT x, y FROM first\n")
    sql = pipe_sql(parse_pipe(path), {})
    assert sql.startswith("WITH `first` AS (\nSELECT 1 AS x\n),")
    assert sql.rstrip().endswith("2 AS y SELECT x, y FROM first")
