"""The app's entry point: its pages and their menu titles (`streamlit run streamlit_app.py`).

The URL paths are spelled as they were when the pages were found by file name, so links
people already shared keep working.
"""

from __future__ import annotations

import streamlit as st

st.navigation([
    st.Page("pages/top_airlines.py", title="Top airlines by bookings", icon=":material/flight:",
            url_path="Top_airlines", default=True),
    st.Page("pages/tenant_view.py", title="Tenant view", icon=":material/domain:",
            url_path="Tenant_view"),
    st.Page("pages/token_inspector.py", title="Token inspector", icon=":material/key:",
            url_path="Token_inspector"),
    st.Page("pages/endpoint_explorer.py", title="Endpoint explorer", icon=":material/api:",
            url_path="Endpoint_explorer"),
]).run()
