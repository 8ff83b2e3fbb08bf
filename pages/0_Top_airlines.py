"""Top airlines by bookings: the live dashboard page (layout and wiring only)."""

from __future__ import annotations

import streamlit as st

from lib.ui import panels, view_state
from lib.ui.app_wiring import (
    connect,
    dashboard_session,
    keep_view,
    load_page_settings,
    restore_view,
    widget_view,
)
from lib.ui.charts import latency_chart, top_airlines_chart

st.set_page_config(page_title="Top airlines by bookings", page_icon=":material/flight:",
                   layout="wide")
st.title("Top airlines by bookings")
st.caption("Ranked from highest to lowest")

settings = load_page_settings()
connection = connect(settings)
if connection.is_local_demo:
    st.info(
        "Showing **local demo data** from the embedded Tinybird Local, with live generated "
        "bookings. To use your own workspace, set `TINYBIRD_HOST`, `TINYBIRD_WORKSPACE` and "
        "`TINYBIRD_SIGNING_TOKEN` (environment, `.env.local` or `.streamlit/secrets.toml`).",
        icon=":material/flight:",
    )
view = restore_view("dashboard", view_state.DASHBOARD_KEYS, settings)
with st.sidebar:
    st.number_input("Refresh every (seconds)", *view_state.REFRESH_RANGE, step=1.0, format="%g",
                    key=view_state.WIDGET_REFRESH, help="Kept in the page's link as `refresh`.")
view = widget_view(view, view_state.DASHBOARD_KEYS)
keep_view("dashboard", view_state.DASHBOARD_KEYS, view)
session = dashboard_session(connection, settings)


@st.fragment(run_every=view.refresh_seconds)
def live_chart() -> None:
    """One poll of the endpoint; Streamlit reruns only this part every refresh interval."""
    outcome = session.poll()
    if outcome.error is not None:
        with st.container(border=True):
            st.error(panels.error_title(outcome.error), icon=":material/error:")
            st.caption(outcome.error.hint)
            if outcome.stale_seconds is not None:
                st.warning(panels.stale_caption(outcome.stale_seconds))
    if outcome.result is not None:
        if not outcome.result.data:
            st.info("No bookings yet: the chart appears with the first ones.")
        st.altair_chart(top_airlines_chart(outcome.result.data), width="stretch")
        st.markdown(panels.latency_text(outcome.result))
        st.caption(f"{outcome.result.rows} airlines · refreshed every "
                   f"{view.refresh_seconds:g} s from `{settings.pipe}` at {connection.host}")
    if session.latency_history:
        st.altair_chart(latency_chart(session.latency_history), width="stretch")
        st.caption(panels.latency_history_caption(len(session.latency_history)))


live_chart()
