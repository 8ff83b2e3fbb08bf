"""Altair charts for the pages, built from endpoint rows and nothing else.

Each chart says what it shows in its Vega-Lite `description`, which screen readers read
and tests use to pick a chart out of a page.

`show` draws a chart from a process-wide cache of finished Vega-Lite specs, keyed by the
rows. Turning an Altair chart into a spec (schema validation, data conversion) is the
costly part of drawing, and every viewer of one link would repeat it on each poll for
the same rows. With the cache, each distinct answer is turned into a spec once, and each
viewer's poll only sends it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from streamlit import dataframe_util

from lib.ui.shared_fetch import LatencySample

BAR_COLOR = "#27F795"  # the first colour of the guide's palette
SERIES_COLORS = ["#27F795", "#5B6CFF"]

TOP_AIRLINES = "Top airlines by bookings"
LATENCY = "Latency of the last polls"
DAILY_BOOKINGS = "Bookings per day"
TOP_ROUTES = "Top routes by bookings"
MEAL_MIX = "Bookings by meal choice"
SERVER_SERIES, ROUND_TRIP_SERIES = "server (statistics.elapsed)", "round trip"


def _ranked_bars(frame: pd.DataFrame, category: str, title: str, description: str,
                 height: int, label_limit: int) -> alt.Chart:
    """Horizontal bars of `bookings` per `category`, most first, exact counts in tooltips."""
    frame["bookings"] = pd.to_numeric(frame["bookings"])
    return (
        alt.Chart(frame, description=description)
        .mark_bar(color=BAR_COLOR, cornerRadiusEnd=3)
        .encode(
            x=alt.X("bookings:Q", title="Bookings"),
            y=alt.Y(f"{category}:N", sort="-x", title=None,
                    axis=alt.Axis(labelLimit=label_limit)),
            tooltip=[alt.Tooltip(f"{category}:N", title=title),
                     alt.Tooltip("bookings:Q", title="Bookings", format=",")],
        )
        .properties(height=height)
    )


def top_airlines_chart(rows: list[dict[str, Any]], height: int = 360) -> alt.Chart:
    """Horizontal bars ranked from most to fewest bookings, exact counts in the tooltip."""
    frame = pd.DataFrame(rows, columns=["airline", "bookings"])
    return _ranked_bars(frame, "airline", "Airline", TOP_AIRLINES, height, 220)


def latency_chart(samples: Iterable[LatencySample], height: int = 220) -> alt.Chart:
    """Server time and round trip of each recent poll, in ms, over UTC wall-clock time."""
    records = []
    for sample in samples:
        at = pd.Timestamp(sample.at, unit="s", tz="UTC")
        if sample.elapsed_ms is not None:
            records.append({"time": at, "series": SERVER_SERIES, "ms": sample.elapsed_ms})
        records.append({"time": at, "series": ROUND_TRIP_SERIES, "ms": sample.round_trip_ms})
    frame = pd.DataFrame(records, columns=["time", "series", "ms"])
    frame["ms"] = pd.to_numeric(frame["ms"])
    return (
        alt.Chart(frame, description=LATENCY)
        .mark_line(point=True, strokeWidth=1.5)
        .encode(
            x=alt.X("time:T", title=None, scale=alt.Scale(type="utc"),
                    axis=alt.Axis(format="%H:%M:%S")),
            y=alt.Y("ms:Q", title="ms"),
            color=alt.Color("series:N", title=None,
                            scale=alt.Scale(domain=[SERVER_SERIES, ROUND_TRIP_SERIES],
                                            range=SERIES_COLORS),
                            legend=alt.Legend(orient="bottom")),
            tooltip=[alt.Tooltip("time:T", title="UTC", format="%H:%M:%S"),
                     alt.Tooltip("series:N", title="Measure"),
                     alt.Tooltip("ms:Q", title="ms", format=".1f")],
        )
        .properties(height=height)
    )


def daily_bookings_chart(rows: list[dict[str, Any]], height: int = 260) -> alt.Chart:
    """Bars per day (UTC), in date order, exact counts in the tooltip."""
    frame = pd.DataFrame(rows, columns=["day", "bookings"])
    frame["day"] = pd.to_datetime(frame["day"])
    frame["bookings"] = pd.to_numeric(frame["bookings"])
    return (
        alt.Chart(frame, description=DAILY_BOOKINGS)
        .mark_bar(color=BAR_COLOR, cornerRadiusEnd=2)
        .encode(
            x=alt.X("day:T", title=None, timeUnit="utcyearmonthdate",
                    axis=alt.Axis(format="%b %d")),
            y=alt.Y("bookings:Q", title="Bookings"),
            tooltip=[alt.Tooltip("day:T", title="Day", timeUnit="utcyearmonthdate",
                                 format="%Y-%m-%d"),
                     alt.Tooltip("bookings:Q", title="Bookings", format=",")],
        )
        .properties(height=height)
    )


def top_routes_chart(rows: list[dict[str, Any]], height: int | None = None) -> alt.Chart:
    """Horizontal bars, one per `from → to` route, busiest first."""
    frame = pd.DataFrame(rows, columns=["flight_from", "flight_to", "bookings"])
    frame["route"] = frame["flight_from"].astype(str) + " → " + frame["flight_to"].astype(str)
    # Streamlit fits the axes inside the height: room for them, then a row per route.
    return _ranked_bars(frame, "route", "Route", TOP_ROUTES,
                        height or 70 + 26 * max(1, len(frame)), 260)


def meal_mix_chart(rows: list[dict[str, Any]], height: int = 260) -> alt.Chart:
    """Bars per meal choice, most chosen first, with the share of the total."""
    frame = pd.DataFrame(rows, columns=["meal_choice", "bookings"])
    frame["bookings"] = pd.to_numeric(frame["bookings"])
    total = frame["bookings"].sum()
    frame["share"] = frame["bookings"] / total if total else 0.0
    return (
        alt.Chart(frame, description=MEAL_MIX)
        .mark_bar(color=SERIES_COLORS[1], cornerRadiusEnd=3)
        .encode(
            x=alt.X("bookings:Q", title="Bookings"),
            y=alt.Y("meal_choice:N", sort="-x", title=None),
            tooltip=[alt.Tooltip("meal_choice:N", title="Meal"),
                     alt.Tooltip("bookings:Q", title="Bookings", format=","),
                     alt.Tooltip("share:Q", title="Share", format=".1%")],
        )
        .properties(height=height)
    )


# Finished specs kept: a few per view, since a view's answer changes about once an interval.
MAX_SPECS = 256
_specs: OrderedDict[tuple[object, ...], dict[str, Any]] = OrderedDict()
_specs_lock = threading.Lock()


def _frozen(data: Sequence[Any]) -> tuple[object, ...]:
    """A hashable copy of endpoint rows (dicts of plain values) or latency samples."""
    return tuple(tuple(sorted(item.items())) if isinstance(item, dict) else item
                 for item in data)


def vega_lite_spec(chart: alt.Chart) -> dict[str, Any]:
    """The spec Streamlit draws, with its data already in Arrow IPC (what it sends)."""
    spec = chart.to_dict()
    config = spec.get("config", {})
    config.pop("view", None)  # Altair's default 300x300 view: the page sets the size
    if not config:
        spec.pop("config", None)
    spec["datasets"] = {name: dataframe_util.convert_anything_to_arrow_bytes(pd.DataFrame(rows))
                        for name, rows in spec.get("datasets", {}).items()}
    return spec


def cached_spec(build: Callable[[Any], alt.Chart], data: Sequence[Any]) -> dict[str, Any]:
    """`build(data)`'s spec, built once per distinct `data` in this process.

    It returns a shallow copy, because Streamlit takes the datasets out of the dict it
    is given.
    """
    key = (build.__name__, _frozen(data))
    with _specs_lock:
        spec = _specs.get(key)
        if spec is not None:
            _specs.move_to_end(key)
            return dict(spec)
    spec = vega_lite_spec(build(list(data)))
    with _specs_lock:
        _specs[key] = spec
        while len(_specs) > MAX_SPECS:
            _specs.popitem(last=False)
    return dict(spec)


def show(build: Callable[[Any], alt.Chart], data: Sequence[Any]) -> None:
    """Draw `build(data)` full width, from the spec cache."""
    st.vega_lite_chart(spec=cached_spec(build, data), width="stretch")
