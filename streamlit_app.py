"""The app's entry point: its pages and their menu titles (`streamlit run streamlit_app.py`)."""

from __future__ import annotations

import streamlit as st

st.navigation([
    st.Page("pages/0_Top_airlines.py", title="Top airlines by bookings", icon=":material/flight:",
            default=True),
    st.Page("pages/1_Tenant_view.py", title="Tenant view", icon=":material/domain:"),
    st.Page("pages/2_Token_inspector.py", title="Token inspector", icon=":material/key:"),
    st.Page("pages/3_Endpoint_explorer.py", title="Endpoint explorer", icon=":material/api:"),
]).run()
