"""What a shared link says about the view: tenant, dates, top N, refresh, window and meal.

The view is kept in the page's URL query, so that a link opens the same view again:
- the tenant view: `?tenant=Fizz&from=2025-01-01&to=2025-01-31&top=5&refresh=10`;
- the dashboard: `?window=1h&meal_choice=vegan`, or `?date_from=...&date_to=...` for a
  custom range (the `top_airlines` endpoint's own parameter names).

Anyone can edit a link, so every value is checked here. A bad value falls back to its
default and becomes a `LinkProblem`, which the page shows, naming the parameter.
Nothing here imports Streamlit.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from lib.bookings.distributions import AIRLINES, MEAL_CHOICES

from . import keys

TENANTS: tuple[str, ...] = tuple(AIRLINES)
DEFAULT_TENANT = TENANTS[0]
DEFAULT_DAYS = 30  # the seeded bookings span the last 30 days
DEFAULT_TOP = 10
TOP_RANGE = (1, 100)  # airline_top_routes' `limit`: "How many routes to return (1-100)"
REFRESH_RANGE = (1.0, 3600.0)  # the same bounds as TINYBIRD_REFRESH_SECONDS
# ClickHouse's Date type: a date outside it cannot be sent to the endpoints.
DATE_RANGE = (dt.date(1970, 1, 1), dt.date(2149, 6, 6))
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
SHOWN_CHARS = 40

MEALS: tuple[str, ...] = tuple(MEAL_CHOICES)
# The dashboard's time windows: the link's `window` value, its label, how far back.
WINDOWS: dict[str, tuple[str, dt.timedelta | None]] = {
    "15m": ("Last 15 minutes", dt.timedelta(minutes=15)),
    "1h": ("Last hour", dt.timedelta(hours=1)),
    "24h": ("Last 24 hours", dt.timedelta(hours=24)),
    "7d": ("Last 7 days", dt.timedelta(days=7)),
    "all": ("All time", None),
    "custom": ("Custom range", None),
}
DEFAULT_WINDOW = "all"
PIPE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# URL parameter names.
TENANT, DATE_FROM, DATE_TO, TOP, REFRESH = "tenant", "from", "to", "top", "refresh"
# The dashboard's filters: `window`, and the endpoint's own parameter names for the rest.
WINDOW, RANGE_FROM, RANGE_TO, MEAL = "window", "date_from", "date_to", "meal_choice"
TENANT_PARAMS = (TENANT, DATE_FROM, DATE_TO, TOP, REFRESH)
DASHBOARD_PARAMS = (REFRESH, WINDOW, RANGE_FROM, RANGE_TO, MEAL)
ALL_PARAMS = (*TENANT_PARAMS, WINDOW, RANGE_FROM, RANGE_TO, MEAL)

ALL_MEALS = "All meals"  # the meal widget's choice for "no meal filter"


@dataclass(frozen=True)
class ViewState:
    """Everything a page's link can set; each page reads only its own parameters."""

    tenant: str
    date_from: dt.date
    date_to: dt.date
    top: int
    refresh_seconds: float
    # The dashboard's filters: a window name; for "custom", its UTC bounds (to excluded).
    window: str = DEFAULT_WINDOW
    range_from: dt.datetime | None = None
    range_to: dt.datetime | None = None
    meal: str | None = None

    def filters(self) -> dict[str, str]:
        """What tells one dashboard view from another (not the moment it is read)."""
        key = {WINDOW: self.window}
        if self.window == "custom" and self.range_from and self.range_to:
            key.update({RANGE_FROM: self.range_from.strftime(PIPE_TIME_FORMAT),
                        RANGE_TO: self.range_to.strftime(PIPE_TIME_FORMAT)})
        if self.meal:
            key[MEAL] = self.meal
        return key

    def pipe_params(self, now: dt.datetime) -> dict[str, str]:
        """The `top_airlines` parameters for this view at `now` (UTC, naive)."""
        params: dict[str, str] = {}
        back = WINDOWS.get(self.window, ("", None))[1]
        if back is not None:
            params[RANGE_FROM] = (now - back).strftime(PIPE_TIME_FORMAT)
        elif self.window == "custom" and self.range_from and self.range_to:
            params[RANGE_FROM] = self.range_from.strftime(PIPE_TIME_FORMAT)
            params[RANGE_TO] = self.range_to.strftime(PIPE_TIME_FORMAT)
        if self.meal:
            params[MEAL] = self.meal
        return params

    def filter_label(self) -> str:
        """`Last hour · vegan`, for the page's subheader."""
        if self.window == "custom" and self.range_from and self.range_to:
            when = (f"{self.range_from:%b %d %H:%M} – {self.range_to:%b %d %H:%M} UTC")
        else:
            when = WINDOWS.get(self.window, WINDOWS[DEFAULT_WINDOW])[0]
        return f"{when} · {self.meal or 'all meals'}"


@dataclass(frozen=True)
class LinkProblem:
    """A value in the link the page could not use, and the default shown instead."""

    param: str
    value: str
    reason: str
    fallback: str

    @property
    def message(self) -> str:
        # Anyone can write the value into a link. Shortened and without backticks, it
        # stays inside its code span, where markdown is not interpreted.
        shown = self.value.replace("`", "'").replace("\n", " ")
        if len(shown) > SHOWN_CHARS:
            shown = shown[:SHOWN_CHARS] + "…"
        return (f"The link's `{self.param}` value `{shown}` {self.reason}; "
                f"showing {self.fallback} instead.")


def default_view(today: dt.date, refresh_seconds: float) -> ViewState:
    """The view with no link: the first airline, the last `DEFAULT_DAYS` days, all time."""
    return ViewState(tenant=DEFAULT_TENANT, date_from=today - dt.timedelta(days=DEFAULT_DAYS - 1),
                     date_to=today, top=DEFAULT_TOP, refresh_seconds=refresh_seconds)


def utc_today() -> dt.date:
    """Bookings are stamped in UTC; "today" must be the same day for every viewer."""
    return dt.datetime.now(dt.UTC).date()


def _single(value: Any) -> str:
    """The link's value as one string: the last of repeated keys, as st.query_params does."""
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else ""
    return str(value).strip()


def _date(text: str) -> dt.date | None:
    """A `YYYY-MM-DD` date the endpoints can take, or None."""
    if not ISO_DATE.fullmatch(text):
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    return day if DATE_RANGE[0] <= day <= DATE_RANGE[1] else None


def _moment(text: str) -> dt.datetime | None:
    """A UTC time as the endpoint takes it (`2025-06-01 12:00:00`, or ISO with T or Z)."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    moment = moment.replace(microsecond=0)
    return moment if dt.datetime(1970, 1, 1) <= moment < dt.datetime(2106, 1, 1) else None


def _int(text: str) -> int | None:
    """A whole number of at most nine digits, or None."""
    return int(text) if re.fullmatch(r"[+]?\d{1,9}", text) else None


def _seconds(text: str) -> float | None:
    """A plain decimal number of seconds, or None."""
    if not re.fullmatch(r"[+]?(\d{1,9}(\.\d*)?|\.\d+)", text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def parse_view(query: Mapping[str, Any], params: Iterable[str], *, today: dt.date,
               default_refresh: float) -> tuple[ViewState, list[LinkProblem]]:
    """The view a link asks for, over the defaults, and what in it could not be used.

    Only `params` are read: a page ignores the parameters of other pages. A parameter
    the link does not have takes its default without a problem. Never raises.

    Args:
        query: the link's parameters; a list value counts as its last item.
        params: the parameters this page reads.
        today: the UTC day the default date range ends on.
        default_refresh: the refresh interval when the link gives none.

    Returns:
        The view, and one `LinkProblem` per value that could not be used.
    """
    params = set(params)
    default = default_view(today, default_refresh)
    view = default
    problems: list[LinkProblem] = []

    def given(key: str) -> str | None:
        return _single(query[key]) if key in params and key in query else None

    if (text := given(TENANT)) is not None:
        if text in TENANTS:
            view = replace(view, tenant=text)
        else:
            problems.append(LinkProblem(TENANT, text, "is not one of the airlines",
                                        f"`{DEFAULT_TENANT}`"))
    dates = {}
    for key, fallback in ((DATE_FROM, default.date_from), (DATE_TO, default.date_to)):
        if (text := given(key)) is None:
            continue
        day = _date(text)
        if day is None:
            problems.append(LinkProblem(key, text, "is not a date (YYYY-MM-DD)",
                                        f"`{fallback.isoformat()}`"))
        else:
            dates[key] = day
    date_from = dates.get(DATE_FROM, default.date_from)
    date_to = dates.get(DATE_TO, default.date_to)
    if date_from > date_to:
        # Which end is wrong cannot be told: the whole range falls back.
        bad = DATE_TO if DATE_TO in dates else DATE_FROM
        problems.append(LinkProblem(
            bad, dates[bad].isoformat(),
            f"ends the range before it starts ({DATE_FROM}={date_from.isoformat()})",
            f"the last {DEFAULT_DAYS} days"))
        date_from, date_to = default.date_from, default.date_to
    view = replace(view, date_from=date_from, date_to=date_to)
    if (text := given(TOP)) is not None:
        top = _int(text)
        if top is not None and TOP_RANGE[0] <= top <= TOP_RANGE[1]:
            view = replace(view, top=top)
        else:
            problems.append(LinkProblem(TOP, text, f"is not a whole number in "
                                        f"{TOP_RANGE[0]}..{TOP_RANGE[1]}", f"`{DEFAULT_TOP}`"))
    if (text := given(REFRESH)) is not None:
        seconds = _seconds(text)
        if seconds is not None and REFRESH_RANGE[0] <= seconds <= REFRESH_RANGE[1]:
            view = replace(view, refresh_seconds=seconds)
        else:
            problems.append(LinkProblem(
                REFRESH, text, f"is not a number of seconds in "
                f"{REFRESH_RANGE[0]:g}..{REFRESH_RANGE[1]:g}",
                f"`{default_refresh:g}` (the setting)"))
    view, filter_problems = _parse_filters(view, given)
    return view, problems + filter_problems


def _parse_filters(view: ViewState, given: Any) -> tuple[ViewState, list[LinkProblem]]:
    """The dashboard's window and meal from the link: `window`, or `date_from`/`date_to`."""
    problems: list[LinkProblem] = []
    window = given(WINDOW)
    if window is not None and window not in WINDOWS:
        problems.append(LinkProblem(WINDOW, window, f"is not one of {', '.join(WINDOWS)}",
                                    "all time"))
        window = None
    bounds = {}
    for key in (RANGE_FROM, RANGE_TO):
        if (text := given(key)) is None:
            continue
        moment = _moment(text)
        if moment is None:
            problems.append(LinkProblem(key, text, "is not a UTC time (YYYY-MM-DD HH:MM:SS)",
                                        "all time"))
        else:
            bounds[key] = moment
    if window in (None, "custom") and bounds:
        start, end = bounds.get(RANGE_FROM), bounds.get(RANGE_TO)
        if start is None or end is None:
            missing = RANGE_TO if start is not None else RANGE_FROM
            if given(missing) is None:  # a bad value was reported above already
                problems.append(LinkProblem(missing, "", "is missing from the custom range",
                                            "all time"))
        elif start >= end:
            problems.append(LinkProblem(RANGE_TO, bounds[RANGE_TO].strftime(PIPE_TIME_FORMAT),
                                        f"is not after {RANGE_FROM}", "all time"))
        else:
            view = replace(view, window="custom", range_from=start, range_to=end)
    elif window == "custom" and not problems:
        problems.append(LinkProblem(WINDOW, window, f"needs {RANGE_FROM} and {RANGE_TO}",
                                    "all time"))
    elif window is not None and window != "custom":
        view = replace(view, window=window)
    if (text := given(MEAL)) is not None:
        if text in MEALS:
            view = replace(view, meal=text)
        else:
            problems.append(LinkProblem(MEAL, text, f"is not one of {', '.join(MEALS)}",
                                        "all meals"))
    return view, problems


def to_query(view: ViewState, params: Iterable[str]) -> dict[str, str]:
    """The link's parameters for `view`: what `parse_view` reads back to the same view."""
    values = {TENANT: view.tenant, DATE_FROM: view.date_from.isoformat(),
              DATE_TO: view.date_to.isoformat(), TOP: str(view.top),
              REFRESH: f"{view.refresh_seconds:g}"}
    # The filters appear only when they narrow the view: "all time, all meals" is no filter.
    if view.window != DEFAULT_WINDOW:
        values.update(view.filters())
    elif view.meal:
        values[MEAL] = view.meal
    return {key: values[key] for key in ALL_PARAMS if key in set(params) and key in values}


def widget_values(view: ViewState, params: Iterable[str]) -> dict[str, Any]:
    """Session-state values that make the page's widgets show `view`."""
    params = set(params)
    values: dict[str, Any] = {}
    if TENANT in params:
        values[keys.WIDGET_TENANT] = view.tenant
    if DATE_FROM in params or DATE_TO in params:
        values[keys.WIDGET_DATES] = (view.date_from, view.date_to)
    if TOP in params:
        values[keys.WIDGET_TOP] = view.top
    if REFRESH in params:
        values[keys.WIDGET_REFRESH] = float(view.refresh_seconds)
    if WINDOW in params:
        values[keys.WIDGET_WINDOW] = view.window
        if view.range_from and view.range_to:
            values[keys.WIDGET_RANGE] = _range_days(view.range_from, view.range_to)
    if MEAL in params:
        values[keys.WIDGET_MEAL] = view.meal or ALL_MEALS
    return values


def _range_days(start: dt.datetime, end: dt.datetime) -> tuple[dt.date, dt.date]:
    """The days a custom range touches, as the date picker shows them (end excluded)."""
    return start.date(), (end - dt.timedelta(microseconds=1)).date()


def view_from_widgets(values: Mapping[str, Any], current: ViewState) -> ViewState:
    """The view the widgets now show; anything a widget does not hold stays as `current`.

    While a date range is being picked, it holds one date until the second click. The
    range shown stays as it was until then.
    """
    view = current
    if values.get(keys.WIDGET_TENANT) in TENANTS:
        view = replace(view, tenant=values[keys.WIDGET_TENANT])
    dates = values.get(keys.WIDGET_DATES)
    if isinstance(dates, (list, tuple)) and len(dates) == 2 and all(
            isinstance(d, dt.date) for d in dates) and dates[0] <= dates[1]:
        view = replace(view, date_from=dates[0], date_to=dates[1])
    top = values.get(keys.WIDGET_TOP)
    if isinstance(top, int) and not isinstance(top, bool) and TOP_RANGE[0] <= top <= TOP_RANGE[1]:
        view = replace(view, top=top)
    seconds = values.get(keys.WIDGET_REFRESH)
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and math.isfinite(
            seconds) and REFRESH_RANGE[0] <= seconds <= REFRESH_RANGE[1]:
        view = replace(view, refresh_seconds=float(seconds))
    window = values.get(keys.WIDGET_WINDOW)
    if window in WINDOWS:
        view = replace(view, window=window)
    days = values.get(keys.WIDGET_RANGE)
    if view.window == "custom" and isinstance(days, (list, tuple)) and len(days) == 2 and all(
            isinstance(d, dt.date) for d in days) and days[0] <= days[1]:
        shown = (_range_days(view.range_from, view.range_to)
                 if view.range_from and view.range_to else None)
        if tuple(days) != shown:  # picked anew: whole UTC days; else the link's exact times
            start = dt.datetime.combine(days[0], dt.time())
            view = replace(view, range_from=start,
                           range_to=dt.datetime.combine(days[1], dt.time()) + dt.timedelta(days=1))
    if view.window == "custom" and not (view.range_from and view.range_to):
        today = dt.datetime.combine(utc_today(), dt.time())
        view = replace(view, range_from=today - dt.timedelta(days=DEFAULT_DAYS - 1),
                       range_to=today + dt.timedelta(days=1))
    meal = values.get(keys.WIDGET_MEAL)
    if meal == ALL_MEALS:
        view = replace(view, meal=None)
    elif meal in MEALS:
        view = replace(view, meal=meal)
    return view
