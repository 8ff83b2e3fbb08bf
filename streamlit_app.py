"""The app's entry point (`streamlit run streamlit_app.py`): who is looking, then their pages.

`who_is_looking` runs first on every run. A viewer who must log in, or whose link has
ended, sees only a page that says so. A share link opens its one page and no menu. Only
admins get the page that makes links.

The URL paths are spelled `Top_airlines`, `Tenant_view` and so on, because links people
have already shared use these paths. The default page is at the app's root, `/`.

The page files are in `app_pages/`, not `pages/`. On a server's first run, Streamlit
treats a `pages/` folder beside the entry point as its file-based menu, so the first
visitor of a deep link would get a "page not found" dialog and the wrong menu.

The menu has no icons, because the browser takes a page's menu icon as the tab's icon.
A `:material/...:` icon is fetched from Google's font servers, which fails offline, and
an emoji needs an emoji font the viewer may lack. Every page sets the tab's icon itself
(`lib/ui/page.py`).
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
