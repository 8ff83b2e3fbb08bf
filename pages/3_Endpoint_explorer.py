"""The workspace's API Endpoints, their parameters, and a form to call one with a JWT."""

from __future__ import annotations

import streamlit as st

from lib.client.errors import TinybirdError
from lib.ui import explorer, panels
from lib.ui.app_wiring import connect, explorer_client, load_page_settings, workspace_endpoints

st.set_page_config(page_title="Endpoint explorer", page_icon=":material/api:", layout="wide")
st.title("Endpoint explorer")
st.caption("The API Endpoints this workspace publishes (listed on the server with the admin "
           "token) and their parameters. Each call goes out with a JWT that may read that one "
           "endpoint.")

settings = load_page_settings()
connection = connect(settings)
reload = st.button("Reload the list", icon=":material/refresh:")
try:
    endpoints = workspace_endpoints(connection, reload=reload)
except TinybirdError as exc:
    st.error(f"Could not list the endpoints{f' (HTTP {exc.status})' if exc.status else ''}: "
             f"{exc.message}", icon=":material/error:")
    st.caption(exc.hint)
    st.stop()
if not endpoints:
    st.info("This workspace has no API Endpoints yet.")
    st.stop()

st.dataframe([{"endpoint": e.name, "parameters": ", ".join(p.name for p in e.params) or "none",
               "description": e.description} for e in endpoints],
             hide_index=True, width="stretch")

names = [e.name for e in endpoints]
if st.session_state.get("explore_pipe") not in names:
    st.session_state["explore_pipe"] = names[0]
name = st.selectbox("Endpoint", names, key="explore_pipe")
endpoint = next(e for e in endpoints if e.name == name)
if endpoint.description:
    st.markdown(endpoint.description)
if endpoint.params:
    st.dataframe(explorer.param_rows(endpoint), hide_index=True, width="stretch")

with st.form(f"call_{endpoint.name}"):
    values = {}
    for param in endpoint.params:
        values[param.name] = st.text_input(
            f"{param.name} ({param.type}){' · required' if param.required else ''}",
            placeholder="" if param.default is None else f"default: {param.default}",
            help=param.description or None, key=f"param_{endpoint.name}_{param.name}")
    if not endpoint.params:
        st.caption("This endpoint takes no parameters.")
    submitted = st.form_submit_button("Call the endpoint", icon=":material/play_arrow:")

if submitted:
    client = explorer_client(connection, settings, endpoint.name)
    st.session_state["explorer_call"] = explorer.call_endpoint(client, endpoint, values)
call = st.session_state.get("explorer_call")
if call is not None and call.pipe == endpoint.name:
    st.markdown("**Request** (the JWT goes in the `Authorization` header, not in the URL)")
    st.code(f"GET {call.url}", language="http")
    if call.error is not None:
        st.error(panels.call_error_text(call.error), icon=":material/error:")
        st.caption(call.error.hint)
    else:
        result = call.result
        latency, round_trip, rows, rows_read = st.columns(4)
        latency.metric("Latency (statistics.elapsed)", panels.ms_text(result.elapsed_seconds))
        round_trip.metric("Round trip", panels.ms_text(result.round_trip_seconds))
        rows.metric("Rows", f"{result.rows:,}")
        rows_read.metric("Rows read", "n/a" if result.rows_read is None
                         else f"{result.rows_read:,}")
        if len(result.data) > explorer.MAX_JSON_ROWS:
            st.caption(f"Showing the first {explorer.MAX_JSON_ROWS} of {len(result.data):,} "
                       "rows of the response.")
        st.json(call.shown_json(), expanded=2)
