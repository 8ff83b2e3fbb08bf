"""What one airline partner sees: its own bookings, through a JWT pinned to its airline.

Layout only: the work is in `lib.ui.tenant_view`.
"""

from __future__ import annotations

import streamlit as st

from lib.ui import charts, keys, panels, tenant_view, view_state
from lib.ui.access import LOCK_SETTING, recheck
from lib.ui.page import page_preamble
from lib.ui.session import viewer_session
from lib.ui.view_link import keep_view, restore_view, widget_view

page = page_preamble("Tenant view",
                     "An airline partner's dashboard: every request carries a JWT whose "
                     "fixed_params pin `airline`, so the server answers with that airline's "
                     "bookings only.")
settings, connection, access = page.settings, page.connection, page.access
view = restore_view("tenant", view_state.TENANT_PARAMS, settings, access)
with st.sidebar:
    if access.link is not None:
        st.caption(f"The view this link was shared with: {view.date_from:%b %d} – "
                   f"{view.date_to:%b %d, %Y}, top {view.top} routes.")
    else:
        if access.may_pick_tenant:
            st.selectbox("You are", view_state.TENANTS, key=keys.WIDGET_TENANT,
                         help="Admins and the demo's viewers pick; everyone else sees the "
                              "tenant of their login.")
        st.date_input("Dates (UTC)", min_value=view_state.DATE_RANGE[0],
                      max_value=view_state.DATE_RANGE[1], key=keys.WIDGET_DATES)
        st.slider("Top routes", *view_state.TOP_RANGE, key=keys.WIDGET_TOP)
        st.number_input("Refresh every (seconds)", *view_state.REFRESH_RANGE, step=1.0,
                        format="%g", key=keys.WIDGET_REFRESH)
        st.caption("This view is in the page's link: copy the address to share it.")
if access.kind == "demo":
    st.info(f"**A demo:** anyone may pick any tenant here. Set {LOCK_SETTING} to make each "
            "viewer log in and see only their own airline.", icon=":material/lock_open:")
view = widget_view(view, view_state.TENANT_PARAMS, access)
keep_view("tenant", view_state.TENANT_PARAMS, view, access)
viewer = viewer_session(connection, settings, access)
client = viewer.tenant_client(view.tenant)

others = [airline for airline in view_state.TENANTS if airline != view.tenant]
if st.session_state.get(keys.PEEK_AT) not in others:
    st.session_state[keys.PEEK_AT] = others[0]

st.subheader(f"{view.tenant} · {view.date_from:%b %d, %Y} – {view.date_to:%b %d, %Y}")


@st.fragment(run_every=view.refresh_seconds)
def live_report() -> None:
    """The tenant's charts and the peek; Streamlit reruns only this part every interval."""
    recheck(access)  # a login or link that has ended fetches nothing more
    report = viewer.tenant_report(view)
    if report.error is not None:
        panels.error_panel(report.error, "Could not refresh the chart")
        return
    if report.daily is None or report.meals is None or report.routes is None:
        return  # not reached: without an error all three answered
    priority = report.meal_average("priority_share")
    bags = report.meal_average("avg_extra_bags")
    total, priority_col, bags_col = st.columns(3)
    total.metric("Bookings", f"{report.total_bookings:,}")
    priority_col.metric("Priority boarding", "n/a" if priority is None else f"{priority:.1%}")
    bags_col.metric("Extra bags per booking", "n/a" if bags is None else f"{bags:.2f}")
    daily_col, meals_col = st.columns([3, 2])
    with daily_col:
        st.markdown("**Bookings per day**")
        charts.show(charts.daily_bookings_chart, report.daily.data)
    with meals_col:
        st.markdown("**Meal choice**")
        charts.show(charts.meal_mix_chart, report.meals.data)
    st.markdown(f"**Top {view.top} routes**")
    charts.show(charts.top_routes_chart, report.routes.data)
    st.caption(panels.tenant_caption(report, view.refresh_seconds))

    with st.container(border=True):
        st.markdown("**Try to peek at another airline**")
        st.selectbox("Ask for the bookings of", others, key=keys.PEEK_AT,
                     help=f"Sends the trend request again with this airline in the URL, on "
                          f"{view.tenant}'s JWT; checked again on every refresh.")
        outcome = tenant_view.peek(client, view, st.session_state[keys.PEEK_AT], own=report.daily)
        st.code(f"GET {outcome.url}\nAuthorization: Bearer <{view.tenant}'s JWT>",
                language="http")
        if outcome.pinned:
            st.success(outcome.verdict, icon=":material/lock:")
        else:
            st.error(outcome.verdict, icon=":material/lock_open:")


live_report()
