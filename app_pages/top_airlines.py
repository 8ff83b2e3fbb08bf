"""Top airlines by bookings: the live dashboard page.

Layout only: the work is in `lib.ui.top_airlines`.
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from lib.ui import charts, keys, panels, view_state
from lib.ui.access import recheck
from lib.ui.page import page_preamble
from lib.ui.session import viewer_session
from lib.ui.view_link import keep_view, restore_view, widget_view

page = page_preamble("Top airlines by bookings",
                     "Ranked from highest to lowest")
settings, connection, access = page.settings, page.connection, page.access
if connection.is_local_demo:
    st.info(
        "Showing **local demo data** from the embedded Tinybird Local, with live generated "
        "bookings. To use your own workspace, set `TINYBIRD_HOST`, `TINYBIRD_WORKSPACE` and "
        "`TINYBIRD_SIGNING_TOKEN` (environment, `.env.local` or `.streamlit/secrets.toml`).",
        icon=":material/flight:",
    )
view = restore_view("dashboard", view_state.DASHBOARD_PARAMS, settings, access)
with st.sidebar:
    if access.link is None:
        st.selectbox("Bookings made", list(view_state.WINDOWS), key=keys.WIDGET_WINDOW,
                     format_func=lambda name: view_state.WINDOWS[name][0],
                     help="UTC. Kept in the page's link as `window`, or "
                          "`date_from`/`date_to`.")
        if st.session_state.get(keys.WIDGET_WINDOW) == "custom":
            st.date_input("Days (UTC)", min_value=view_state.DATE_RANGE[0],
                          max_value=view_state.DATE_RANGE[1], key=keys.WIDGET_RANGE)
        st.selectbox("Meal", [view_state.ALL_MEALS, *view_state.MEALS],
                     key=keys.WIDGET_MEAL, help="Kept in the page's link as `meal_choice`.")
        st.number_input("Refresh every (seconds)", *view_state.REFRESH_RANGE, step=1.0,
                        format="%g", key=keys.WIDGET_REFRESH,
                        help="Kept in the page's link as `refresh`.")
        st.caption("This view is in the page's link: copy the address to share it.")
view = widget_view(view, view_state.DASHBOARD_PARAMS, access)
keep_view("dashboard", view_state.DASHBOARD_PARAMS, view, access)
session = viewer_session(connection, settings, access).dashboard
st.subheader(view.filter_label())


@st.fragment(run_every=view.refresh_seconds)
def live_chart() -> None:
    """One poll of the endpoint; Streamlit reruns only this part every refresh interval."""
    recheck(access)  # a login or link that has ended fetches nothing more
    outcome = session.poll(view.refresh_seconds, view.filters(),
                           lambda: view.pipe_params(dt.datetime.now(dt.UTC).replace(tzinfo=None)))
    if outcome.error is not None:
        panels.error_panel(outcome.error, "Could not refresh the chart", outcome.stale_seconds)
    if outcome.result is not None:
        if not outcome.result.data:
            st.info("No bookings yet: the chart appears with the first ones.")
        charts.show(charts.top_airlines_chart, outcome.result.data)
        st.markdown(panels.latency_text(outcome.result))
        st.caption(f"{outcome.result.rows} airlines · refreshed every "
                   f"{view.refresh_seconds:g} s from `{settings.pipe}` on {connection.source}")
    if session.latency_history:
        charts.show(charts.latency_chart, session.latency_history)
        st.caption(panels.latency_history_caption(len(session.latency_history)))


live_chart()
