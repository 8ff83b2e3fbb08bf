"""The app's entry point: who is looking, then the pages they may open (`streamlit run
streamlit_app.py`).

`who_is_looking` runs first on every run: a viewer who must log in, or whose link has
ended, sees only a page that says so. A share link opens its one page and no menu; only
admins get the page that makes links.

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

from lib.ui.access import show_viewer, who_is_looking
from lib.ui.page import APP_ICON

PAGES = {  # url path: (file, menu title)
    "Top_airlines": ("app_pages/top_airlines.py", "Top airlines by bookings"),
    "Tenant_view": ("app_pages/tenant_view.py", "Tenant view"),
    "Token_inspector": ("app_pages/token_inspector.py", "Token inspector"),
    "Endpoint_explorer": ("app_pages/endpoint_explorer.py", "Endpoint explorer"),
    "Share_links": ("app_pages/share_links.py", "Share links"),
}

st.set_page_config(page_title="Top Airlines", page_icon=APP_ICON, layout="wide")
access = who_is_looking()
show_viewer(access)
if access.link is not None:
    shown = [access.link.page]
else:
    shown = [path for path in PAGES if path != "Share_links" or access.is_admin]
st.navigation([st.Page(PAGES[path][0], title=PAGES[path][1], url_path=path,
                       default=index == 0) for index, path in enumerate(shown)],
              position="hidden" if access.link is not None else "sidebar").run()
