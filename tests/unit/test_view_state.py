"""Shared links: what a URL query says about the view, and what happens to a bad value."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.ui import view_state
from lib.ui.view_state import (
    ALL_PARAMS,
    DASHBOARD_PARAMS,
    TENANT_PARAMS,
    LinkProblem,
    ViewState,
    default_view,
    parse_view,
    to_query,
    view_from_widgets,
    widget_values,
)

TODAY = dt.date(2025, 3, 15)
SETTING = 5.0


def parse(query: dict, params=ALL_PARAMS):
    return parse_view(query, params, today=TODAY, default_refresh=SETTING)


def test_an_empty_link_is_the_default_view_without_notes():
    view, problems = parse({})
    assert problems == []
    assert view == ViewState(tenant="BrianAir", date_from=dt.date(2025, 2, 14),
                             date_to=TODAY, top=10, refresh_seconds=SETTING)
    assert (view.date_to - view.date_from).days + 1 == view_state.DEFAULT_DAYS


def test_a_full_link_is_read_as_written():
    view, problems = parse({"tenant": "Ler Dingus", "from": "2025-01-01", "to": "2025-01-31",
                            "top": "5", "refresh": "2.5"})
    assert problems == []
    assert view == ViewState("Ler Dingus", dt.date(2025, 1, 1), dt.date(2025, 1, 31), 5, 2.5)


def test_the_link_round_trips_through_to_query():
    view = ViewState("Red Balloon", dt.date(2024, 12, 1), dt.date(2025, 1, 2), 42, 30.0)
    query = to_query(view, ALL_PARAMS)
    assert query == {"tenant": "Red Balloon", "from": "2024-12-01", "to": "2025-01-02",
                     "top": "42", "refresh": "30"}
    assert parse(query) == (view, [])


@pytest.mark.parametrize(("param", "value", "fallback"), [
    ("tenant", "Evil Air", "BrianAir"),
    ("tenant", "", "BrianAir"),
    ("tenant", "brianair", "BrianAir"),  # names are exact
    ("from", "yesterday", dt.date(2025, 2, 14)),
    ("from", "2025-02-30", dt.date(2025, 2, 14)),
    ("from", "20250101", dt.date(2025, 2, 14)),  # ISO's basic form is not our link format
    ("to", "1969-12-31", TODAY),  # before ClickHouse's Date range
    ("to", "2200-01-01", TODAY),
    ("top", "0", 10),
    ("top", "101", 10),
    ("top", "5.5", 10),
    ("top", "-3", 10),
    ("top", "1e2", 10),
    ("refresh", "0.5", SETTING),
    ("refresh", "3601", SETTING),
    ("refresh", "nan", SETTING),
    ("refresh", "inf", SETTING),
    ("refresh", "often", SETTING),
])
def test_a_bad_value_falls_back_to_its_default_with_a_note_naming_it(param, value, fallback):
    view, problems = parse({param: value})
    field = {"tenant": "tenant", "from": "date_from", "to": "date_to", "top": "top",
             "refresh": "refresh_seconds"}[param]
    assert getattr(view, field) == fallback
    assert [p.param for p in problems] == [param]
    assert f"`{param}`" in problems[0].message
    # The rest of the view is untouched by one bad value.
    assert view == replace(default_view(TODAY, SETTING), **{field: fallback})


def test_a_range_that_ends_before_it_starts_falls_back_whole():
    view, problems = parse({"from": "2025-03-10", "to": "2025-03-01"})
    assert (view.date_from, view.date_to) == (dt.date(2025, 2, 14), TODAY)
    assert [p.param for p in problems] == ["to"]
    assert "from=2025-03-10" in problems[0].message


def test_a_start_after_today_with_no_end_is_refused_naming_from():
    view, problems = parse({"from": "2025-04-01"})
    assert [p.param for p in problems] == ["from"]
    assert view.date_from <= view.date_to


def test_several_bad_values_each_get_a_note():
    _, problems = parse({"tenant": "X", "top": "many", "refresh": "-1", "from": "no"})
    assert sorted(p.param for p in problems) == ["from", "refresh", "tenant", "top"]


def test_a_page_reads_only_its_own_parameters():
    view, problems = parse({"tenant": "Nope", "top": "0", "refresh": "7"}, DASHBOARD_PARAMS)
    assert problems == []  # the tenant page's parameters are not the dashboard's business
    assert view.refresh_seconds == 7 and view.tenant == "BrianAir"
    assert to_query(view, DASHBOARD_PARAMS) == {"refresh": "7"}


def test_repeated_keys_use_the_last_value_as_streamlit_does():
    view, problems = parse({"tenant": ["Fizz", "GAS"]})
    assert view.tenant == "GAS" and problems == []


def test_the_note_cannot_carry_markdown_out_of_its_code_span():
    value = "`](javascript:alert(1)) **bold** " + "x" * 100
    problem = LinkProblem("tenant", value, "is not one of the airlines", "`BrianAir`")
    message = problem.message
    shown = message.split("value `", 1)[1].split("`", 1)[0]
    assert "`" not in shown.replace("'", "") and shown.endswith("…")
    assert len(shown) <= view_state.SHOWN_CHARS + 1


# Link values: plausible ones (so valid views are drawn too) and arbitrary short text.
LINK_TEXT = st.text(alphabet="0123456789-.+eE:/ `*_aAzZé\n", max_size=24)
LINK_VALUE = st.one_of(
    st.sampled_from(["Fizz", "GAS", "2025-01-01", "2025-03-15", "2149-06-06", "1970-01-01",
                     "1", "100", "3600", "0", "2.5", ""]),
    st.dates().map(dt.date.isoformat), st.integers(-10, 5000).map(str), LINK_TEXT,
)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(ALL_PARAMS + ("other",)),
                       st.one_of(LINK_VALUE, st.lists(LINK_VALUE, max_size=3))))
def test_any_link_gives_a_usable_view(query):
    view, problems = parse(query)
    assert view.tenant in view_state.TENANTS
    assert view.date_from <= view.date_to
    assert view_state.TOP_RANGE[0] <= view.top <= view_state.TOP_RANGE[1]
    assert view_state.REFRESH_RANGE[0] <= view.refresh_seconds <= view_state.REFRESH_RANGE[1]
    assert {p.param for p in problems} <= set(ALL_PARAMS)
    # What the page writes back reads as the same view, with nothing to complain about.
    assert parse(to_query(view, ALL_PARAMS)) == (view, [])


def test_widgets_show_the_view_and_give_it_back():
    view = ViewState("GAS", dt.date(2025, 1, 1), dt.date(2025, 1, 9), 7, 12.0)
    values = widget_values(view, TENANT_PARAMS)
    assert values == {"view_tenant": "GAS", "view_dates": (dt.date(2025, 1, 1),
                                                           dt.date(2025, 1, 9)),
                      "view_top": 7, "view_refresh": 12.0}
    assert view_from_widgets(values, default_view(TODAY, SETTING)) == view
    assert widget_values(view, DASHBOARD_PARAMS) == {"view_refresh": 12.0, "view_window": "all",
                                                   "view_meal": "All meals"}


# -- the dashboard's window and meal ------------------------------------------------------------

NOW = dt.datetime(2026, 11, 25, 15, 30, 0)


def test_a_relative_window_is_named_in_the_link_and_measured_at_each_fetch():
    view, problems = parse({"window": "1h", "meal_choice": "vegan"}, DASHBOARD_PARAMS)
    assert problems == []
    assert to_query(view, DASHBOARD_PARAMS) == {"refresh": "5", "window": "1h",
                                              "meal_choice": "vegan"}
    assert view.filters() == {"window": "1h", "meal_choice": "vegan"}
    assert view.pipe_params(NOW) == {"date_from": "2026-11-25 14:30:00", "meal_choice": "vegan"}
    later = NOW + dt.timedelta(minutes=10)
    assert view.pipe_params(later)["date_from"] == "2026-11-25 14:40:00"
    assert view.filter_label() == "Last hour · vegan"


def test_a_custom_range_travels_under_the_endpoints_parameter_names():
    view, problems = parse({"date_from": "2026-11-01T06:00:00Z", "date_to": "2026-11-02 06:30:00"},
                           DASHBOARD_PARAMS)
    assert problems == []
    assert view.window == "custom"
    assert view.pipe_params(NOW) == {"date_from": "2026-11-01 06:00:00",
                                     "date_to": "2026-11-02 06:30:00"}
    assert parse(to_query(view, DASHBOARD_PARAMS), DASHBOARD_PARAMS) == (view, [])
    # The date picker shows the days; left alone, the link's exact times stay.
    assert view_from_widgets(widget_values(view, DASHBOARD_PARAMS), view) == view


def test_all_time_and_all_meals_is_no_filter():
    view, _ = parse({}, DASHBOARD_PARAMS)
    assert view.pipe_params(NOW) == {}
    assert to_query(view, DASHBOARD_PARAMS) == {"refresh": "5"}


@pytest.mark.parametrize(("query", "param"), [
    ({"window": "2h"}, "window"),
    ({"meal_choice": "caviar"}, "meal_choice"),
    ({"date_from": "yesterday", "date_to": "2026-11-02 00:00:00"}, "date_from"),
    ({"date_from": "2026-11-03 00:00:00", "date_to": "2026-11-02 00:00:00"}, "date_to"),
    ({"date_from": "2026-11-03 00:00:00"}, "date_to"),
    ({"window": "custom"}, "window"),
])
def test_a_bad_filter_in_the_link_names_its_parameter_and_shows_all_time(query, param):
    view, problems = parse(query, DASHBOARD_PARAMS)
    assert [p.param for p in problems] == [param]
    assert view.pipe_params(NOW) == {}
    assert f"`{param}`" in problems[0].message


def test_a_date_range_half_picked_keeps_the_shown_range():
    current = default_view(TODAY, SETTING)
    picking = {"view_dates": (dt.date(2025, 1, 1),)}
    assert view_from_widgets(picking, current) == current
    assert view_from_widgets({"view_tenant": "Unknown", "view_top": True,
                              "view_refresh": float("nan")}, current) == current
