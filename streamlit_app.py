"""The app's entry point: its pages and their menu titles (`streamlit run streamlit_app.py`).

The URL paths are spelled as they were when the pages were found by file name, so links
people already shared keep working; the default page is the app's root, `/`.

The page files live in `app_pages/`, not `pages/`: Streamlit treats a `pages/` folder
beside the entry point as its older file-based menu on a server's first run, so the first
visitor of a deep link got a "page not found" dialog and the wrong menu. The menu has no
icons: the browser takes a page's menu icon as the tab's icon, and a `:material/...:` one is
fetched from Google's font servers (which fails offline), while an emoji needs an emoji
font the viewer may lack. Every page sets the tab's icon itself (`lib/ui/page.py`).
"""

from __future__ import annotations

import streamlit as st

st.navigation([
    st.Page("app_pages/top_airlines.py", title="Top airlines by bookings",
            url_path="Top_airlines", default=True),
    st.Page("app_pages/tenant_view.py", title="Tenant view",
            url_path="Tenant_view"),
    st.Page("app_pages/token_inspector.py", title="Token inspector",
            url_path="Token_inspector"),
    st.Page("app_pages/endpoint_explorer.py", title="Endpoint explorer",
            url_path="Endpoint_explorer"),
]).run()
