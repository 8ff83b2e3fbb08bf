"""The workspace's API Endpoints, their parameters, and a form to call one with a JWT."""

from __future__ import annotations

import streamlit as st

from lib.ui import endpoint_explorer, keys, panels
from lib.ui.page import page_preamble
from lib.ui.session import viewer_session

page = page_preamble("Endpoint explorer",
                     "The API Endpoints this workspace publishes (listed on the server with the "
                     "admin token) and their parameters. Each call goes out with a JWT that may "
                     "read that one endpoint.")
viewer = viewer_session(page.connection, page.settings, page.access)
pinned = viewer.pinned_params
if pinned:
    st.info("You see the endpoints that take your tenant, and every call is pinned to it: "
            "the JWT's fixed_params hold " + ", ".join(f"`{k}={v}`" for k, v in pinned.items())
            + ".", icon=":material/lock:")
reload = st.button("Reload the list", icon=":material/refresh:")
listing = viewer.workspace_endpoints(reload=reload)
if listing.error is not None:
    panels.error_panel(listing.error, "Could not list the endpoints")
    st.stop()
endpoints = listing.endpoints
if not endpoints:
    st.info("This workspace has no API Endpoints yet.")
    st.stop()

st.dataframe([{"endpoint": e.name, "parameters": ", ".join(p.name for p in e.params) or "none",
               "description": e.description} for e in endpoints],
             hide_index=True, width="stretch")

names = [e.name for e in endpoints]
if st.session_state.get(keys.EXPLORE_PIPE) not in names:
    st.session_state[keys.EXPLORE_PIPE] = names[0]
name = st.selectbox("Endpoint", names, key=keys.EXPLORE_PIPE)
endpoint = next(e for e in endpoints if e.name == name)
if endpoint.description:
    st.markdown(endpoint.description)
if endpoint.params:
    st.dataframe(endpoint_explorer.param_rows(endpoint), hide_index=True, width="stretch")

with st.form(f"call_{endpoint.name}"):
    values = {}
    for param in endpoint.params:
        if param.name in pinned:
            shown = keys.pinned_param_key(endpoint.name, param.name)
            st.session_state[shown] = values[param.name] = pinned[param.name]
            st.text_input(f"{param.name} ({param.type}) · pinned to your tenant", key=shown,
                          disabled=True, help="The JWT's fixed_params set it; the server "
                                              "ignores any other value.")
            continue
        values[param.name] = st.text_input(
            f"{param.name} ({param.type}){' · required' if param.required else ''}",
            placeholder="" if param.default is None else f"default: {param.default}",
            help=param.description or None, key=keys.param_key(endpoint.name, param.name))
    if not endpoint.params:
        st.caption("This endpoint takes no parameters.")
    submitted = st.form_submit_button("Call the endpoint", icon=":material/play_arrow:")

if submitted:
    client = viewer.explorer_client(endpoint.name)
    st.session_state[keys.EXPLORER_CALL] = endpoint_explorer.call_endpoint(client, endpoint, values)
call = st.session_state.get(keys.EXPLORER_CALL)
if call is not None and call.pipe == endpoint.name:
    st.markdown("**Request** (the JWT goes in the `Authorization` header, not in the URL)")
    st.code(f"GET {call.url}", language="http")
    if call.error is not None:
        panels.error_panel(call.error)
    else:
        result = call.result
        latency, round_trip, rows, rows_read = st.columns(4)
        latency.metric("Latency (statistics.elapsed)", panels.ms_text(result.elapsed_seconds))
        round_trip.metric("Round trip", panels.ms_text(result.round_trip_seconds))
        rows.metric("Rows", f"{result.rows:,}")
        rows_read.metric("Rows read", "n/a" if result.rows_read is None
                         else f"{result.rows_read:,}")
        if len(result.data) > endpoint_explorer.MAX_JSON_ROWS:
            st.caption(f"Showing the first {endpoint_explorer.MAX_JSON_ROWS} of "
                       f"{len(result.data):,} rows of the response.")
        st.json(call.shown_json(), expanded=2)
