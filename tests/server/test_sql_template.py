"""Pipe templates: Tinybird's functions, undefined parameters, and values that stay data."""

from __future__ import annotations

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.tinybird_local.datafile_sql import pipe_sql
from lib.tinybird_local.datafiles import load_project
from lib.tinybird_local.sql_template import (
    TemplateError,
    declared_params,
    quote_string,
    render_sql,
)
from tests.support.servers import PROJECT_DIR

SERVER_SEED_ROWS = 2000
SERVER_FILES = {
    # Each value comes back as it was sent, through a bound query parameter.
    "pipes/echo.pipe": (
        "NODE endpoint\nSQL >\n    %\n    SELECT {{ String(v, '') }} AS v,"
        " {{ Array(items, 'String', '') }} AS items, {{ v }} = {{ String(v, '') }} AS same"
        "\n\nTYPE endpoint\n"),
    # ClickHouse takes only a literal after COLLATE: this pipe is rendered with literals.
    "pipes/collated.pipe": (
        "NODE endpoint\nSQL >\n    %\n    SELECT arrayJoin(['b', 'a', 'C']) AS s"
        " ORDER BY s COLLATE {{ String(locale, 'en') }}\n\nTYPE endpoint\n"),
}


def render(body: str, **params) -> str:
    return render_sql("%\n" + body, params).strip()


def test_untemplated_sql_is_left_alone():
    assert render_sql("SELECT '{{ x }}'", {"x": "1"}) == "SELECT '{{ x }}'"


def test_typed_functions_render_literals():
    assert render("{{ String(s) }}", s="a'b\\c") == "'a\\'b\\\\c'"
    assert render("{{ Int32(n) }}", n="-42") == "-42"
    assert render("{{ UInt8(n) }}", n="255") == "255"
    assert render("{{ Float64(f) }}", f="1.5") == "1.5"
    assert render("{{ Boolean(b) }}", b="true") == "1"
    assert render("{{ Date(d) }}", d="2024-06-01") == "'2024-06-01'"
    assert render("{{ DateTime(t) }}", t="2024-06-01T12:00:00Z") == "'2024-06-01 12:00:00'"
    assert render("{{ DateTime64(t) }}", t="2024-06-01 12:00:00.5") == \
        "'2024-06-01 12:00:00.500'"
    assert render("{{ Array(a, 'Int32') }}", a="1,2,3") == "[1,2,3]"
    assert render("{{ Array(a, 'String') }}", a="x,y'") == "['x','y\\'']"
    assert render("{{ column(c, 'airline') }}", c="email") == "`email`"


def test_defaults_apply_when_parameter_is_not_sent():
    assert render("LIMIT {{ Int32(limit, 10) }}") == "LIMIT 10"
    assert render("{{ Array(a, 'Int8', default='1,2') }}") == "[1,2]"
    assert render("{{ column(c, 'airline') }}") == "`airline`"


def test_undefined_parameter_is_falsy_not_a_name_error():
    sql = "SELECT 1 {% if defined(x) %} WHERE a = {{ String(x) }} {% end %}"
    assert render(sql) == "SELECT 1"
    assert "WHERE a = 'v'" in render(sql, x="v")
    assert render("{% if not y %}none{% else %}{{ Int8(y) }}{% end %}") == "none"


def test_elif_chain():
    sql = ("{% if kind == 'a' %}A{% elif kind == 'b' %}B{% else %}other{% end %}")
    assert render(sql, kind="a") == "A"
    assert render(sql, kind="b") == "B"
    assert render(sql) == "other"


@pytest.mark.parametrize("body,params,needle", [
    ("{{ Int32(n) }}", {"n": "ten"}, "'n'"),
    ("{{ UInt8(n) }}", {"n": "256"}, "UInt8"),
    ("{{ Int8(n) }}", {"n": "1.5"}, "'n'"),
    ("{{ Float32(f) }}", {"f": "nan"}, "'f'"),
    ("{{ Date(d) }}", {"d": "2024-13-01"}, "'d'"),
    ("{{ Boolean(b) }}", {"b": "maybe"}, "'b'"),
    ("{{ String(s, required=True) }}", {}, "'s' is required"),
    ("{{ String(s) }}", {}, "'s' is not defined"),
    ("{{ column(c) }}", {"c": "a; DROP TABLE events"}, "'c'"),
    ("{{ Array(a, 'Int32') }}", {"a": "1,x"}, "'a'"),
    ("{{ x }}", {}, "'x' is not defined"),
])
def test_bad_values_are_template_errors_naming_the_parameter(body, params, needle):
    with pytest.raises(TemplateError) as info:
        render(body, **params)
    assert needle in str(info.value)


def test_bare_parameter_prints_as_a_quoted_string():
    assert render("WHERE a = {{ x }}", x="1 OR 1=1") == "WHERE a = '1 OR 1=1'"


def test_request_cannot_shadow_template_functions():
    assert render("{{ Int32(n) }}", n="1", Int32="evil") == "1"


def test_syntax_error_in_template_is_a_template_error():
    with pytest.raises(TemplateError, match="Template Syntax Error"):
        render("{% if x %}unclosed")


def test_declared_params_read_types_defaults_and_descriptions():
    sql = ("%\nSELECT * FROM t WHERE a = {{ String(airline, description='Which airline', "
           "required=True) }}\nLIMIT {{ Int32(limit, 10, description='Rows') }}\n"
           "{% if defined(day) %} AND d = {{ Date(day) }} {% end %}")
    specs = {p.name: p for p in declared_params(sql)}
    assert specs["airline"].required and specs["airline"].description == "Which airline"
    assert specs["limit"].default == 10 and specs["limit"].type == "Int32"
    assert specs["day"].type == "Date" and not specs["day"].required


def test_binding_puts_text_values_outside_the_sql():
    binds: dict[str, str] = {}
    body = ("%\nSELECT {{ String(s) }}, {{ DateTime(t) }}, {{ Date(d) }}, {{ s }},"
            " {{ Array(a, 'String') }}, {{ Array(n, 'Int32') }}, {{ Int32(i) }}")
    sql = render_sql(body, {"s": "x'y", "t": "2024-06-01T12:00:00Z", "d": "2024-06-01",
                            "a": "p,q", "n": "1,2", "i": "7"}, binds).strip()
    assert sql == ("SELECT {_tb_p0:String}, {_tb_p1:String}, {_tb_p2:String}, {_tb_p3:String},"
                   " [{_tb_p4:String},{_tb_p5:String}], [1,2], 7")
    assert binds == {"_tb_p0": "x'y", "_tb_p1": "2024-06-01 12:00:00", "_tb_p2": "2024-06-01",
                     "_tb_p3": "x'y", "_tb_p4": "p", "_tb_p5": "q"}
    # A second node rendered into the same binds goes on numbering.
    assert render_sql("%\nSELECT {{ String(s) }}", {"s": "z"}, binds).strip() == \
        "SELECT {_tb_p6:String}"
    # Without binds, the same template writes literals, as before.
    assert render_sql("%\nSELECT {{ String(s) }}", {"s": "z"}).strip() == "SELECT 'z'"


def test_a_moving_window_keeps_one_sql_text_per_branch():
    """The guard's verdicts are cached by text: a new window must not make a new text."""
    pipe = load_project(PROJECT_DIR).pipes["top_airlines"]
    texts, values = set(), []
    for date_from in ("2025-06-01 10:00:00", "2025-06-01 10:00:05", "2025-06-02 00:00:00"):
        binds: dict[str, str] = {}
        texts.add(pipe_sql(pipe, {"date_from": date_from, "meal_choice": "vegan"}, binds=binds))
        values.append(sorted(binds.values()))
    assert len(texts) == 1
    assert len({tuple(v) for v in values}) == 3
    assert date_from not in texts.pop()


def test_quote_string_escapes_backslash_before_quote():
    assert quote_string("\\'") == "'\\\\\\''"


# --- property-based: what a hostile value renders to runs, and comes back unchanged ---

@pytest.fixture(scope="module")
def engine_sql(server):
    return server.sql


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_string_round_trips_through_the_engine(engine_sql, value):
    sql = render("SELECT {{ String(v) }} AS v", v=value)
    assert engine_sql(sql)["data"] == [{"v": value}]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                                     blacklist_characters=","),
                              min_size=1, max_size=12), min_size=1, max_size=5))
def test_any_string_array_round_trips_through_the_engine(engine_sql, items):
    sql = render("SELECT {{ Array(v, 'String') }} AS v", v=",".join(items))
    assert engine_sql(sql)["data"] == [{"v": items}]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_any_int64_round_trips_through_the_engine(engine_sql, number):
    sql = render("SELECT toInt64({{ Int64(n) }}) AS n", n=str(number))
    assert engine_sql(sql)["data"] == [{"n": number}]


SHADOWS = ["isinstance", "str", "len", "defined", "column", "Int32", "String", "__builtins__",
           "_tt_utf8", "_tt_append", "_tt_execute", "_tt_string_types", "datetime", "escape",
           "__name__", "print"]


@pytest.mark.parametrize("name", SHADOWS)
def test_request_names_that_shadow_the_runtime_are_ignored(name):
    body = ("SELECT {{ String(s, 'd') }} AS s {% if defined(n) %}, {{ Int32(n) }} AS n{% end %}"
            " LIMIT {{ len('abc') }}")
    assert render(body, **{name: "1"}) == "SELECT 'd' AS s  LIMIT 3"
    assert render(body, **{name: "1", "s": "x", "n": "2"}) == "SELECT 'x' AS s , 2 AS n LIMIT 3"


@pytest.mark.parametrize("name", ["isinstance", "str", "len", "defined", "column", "Int32",
                                  "__builtins__", "_tt_utf8", "limit"])
def test_a_shadowing_request_parameter_does_not_break_an_endpoint(server, name):
    """`limit` is a real parameter of the pipe: sent with the others, it still applies."""
    params = {"airline": "Fizz", name: "1"}
    response = requests.get(f"{server.url}/v0/pipes/airline_top_routes.json", params=params,
                            headers=server.admin_headers(), timeout=30)
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert rows == 1 if name == "limit" else rows > 1


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
       items=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                                     blacklist_characters=","),
                              min_size=1, max_size=8), max_size=4))
def test_any_string_round_trips_through_an_endpoint(server, value, items):
    """Request values travel as bound parameters; each comes back exactly as sent."""
    response = requests.get(f"{server.url}/v0/pipes/echo.json",
                            params={"v": value, "items": ",".join(items)},
                            headers=server.admin_headers(), timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [{"v": value, "items": items, "same": 1}]


def test_a_value_where_only_a_literal_may_stand_still_works(server):
    for params in ({}, {"locale": "en"}, {"locale": "tr"}):
        response = requests.get(f"{server.url}/v0/pipes/collated.json", params=params,
                                headers=server.admin_headers(), timeout=30)
        assert response.status_code == 200, response.text
        assert [row["s"] for row in response.json()["data"]] == ["a", "b", "C"]
