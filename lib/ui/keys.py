"""Every `st.session_state` key the app uses, in one place, so no two pages collide.

Widgets keep their values under these keys; the viewer's session object is under
`VIEWER`. A page's view (see `view_link`) is kept under `last_view_key(page)`, and the
link the page last wrote under `last_link_key(page)`.
"""

from __future__ import annotations

# The one per-viewer object: JWT sources, clients, last good data (`session.ViewerSession`).
VIEWER = "viewer"
# What this viewer may see, decided at the start of each run (`access.Access`).
ACCESS = "access"
# The share link's token this session was opened with (`access`).
SHARE_LINK = "share_link"

# Widgets that hold a part of a page's view (`view_state` reads and writes them).
WIDGET_TENANT, WIDGET_DATES, WIDGET_TOP, WIDGET_REFRESH = (
    "view_tenant", "view_dates", "view_top", "view_refresh")
WIDGET_WINDOW, WIDGET_RANGE, WIDGET_MEAL = "view_window", "view_range", "view_meal"

# Widgets of one page each.
PEEK_AT = "peek_at"  # tenant view: the airline the peek asks for
INSPECTED_JWT = "inspected_jwt"  # token inspector: which JWT source is shown
EXPLORE_PIPE = "explore_pipe"  # endpoint explorer: the endpoint picked
EXPLORER_CALL = "explorer_call"  # endpoint explorer: the last call's outcome
SHARE_TENANT, SHARE_PAGE, SHARE_TTL = "share_tenant", "share_page", "share_ttl"  # share links
MADE_LINK = "made_link"  # share links: the last link made


def last_view_key(page: str) -> str:
    """Where `page`'s last view is kept, to show it again when the page is reopened."""
    return f"view:{page}"


def last_link_key(page: str) -> str:
    """Where the query parameters `page` last wrote are kept, to notice a link opened."""
    return f"view_link:{page}"


def param_key(pipe: str, param: str) -> str:
    """The endpoint explorer's text box for one parameter of one endpoint."""
    return f"param_{pipe}_{param}"


def pinned_param_key(pipe: str, param: str) -> str:
    """The endpoint explorer's read-only box for a parameter pinned to the viewer's tenant."""
    return f"pinned_{pipe}_{param}"
