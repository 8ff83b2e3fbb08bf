"""The share links page: the admin's form to make a link, and what it shows after.

`lib.ui.share` signs and checks links; this module only turns the form's choices into
a link and a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import streamlit as st

from .access import Access, load_rules
from .share import ShareGrant, ShareLinkError, ShareSettings, link_url, parse_view, sign_link_token

PAGES = {"Tenant_view": "Tenant view", "Top_airlines": "Top airlines by bookings"}
LIFETIMES = {"1 hour": 3600, "1 day": 86400, "7 days": 7 * 86400, "30 days": 30 * 86400}


@dataclass(frozen=True)
class MadeLink:
    """The form's outcome: a link and what it grants, or an error to show."""

    url: str = ""
    grant: ShareGrant | None = None
    error: str = ""


def share_settings_or_stop(access: Access) -> ShareSettings:
    """The `[share]` settings for an admin; anyone else, or no secret, ends the run."""
    if not access.is_admin:
        st.error("Only admins make share links.", icon=":material/block:")
        st.stop()
    share = load_rules().share
    if not share.enabled:
        st.warning("Share links are off: set `[share] secret` in the app's secrets (a random "
                   "text of 32 or more characters, not the Tinybird token or the cookie "
                   "secret).", icon=":material/settings:")
        st.stop()
    return share


def app_address() -> str:
    """The app's address as the admin's browser sees it (scheme and host)."""
    parts = urlsplit(st.context.url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def make_link(share: ShareSettings, *, tenant: str, page: str, view: str, ttl_seconds: float,
              base_url: str) -> MadeLink:
    """A signed link for the form's choices, or the reason there is none.

    Args:
        share: the `[share]` settings that hold the signing secret.
        tenant: the airline the link shows.
        page: the page the link opens, a key of `PAGES`.
        view: the page's view as query text, e.g. `from=...&to=...`.
        ttl_seconds: how long the link works.
        base_url: the app's address, the start of the link.

    Returns:
        The link, or an error message when the choices cannot make one.
    """
    try:
        token, grant = sign_link_token(share, tenant=tenant, page=page,
                                       view=parse_view(page, view), ttl_seconds=ttl_seconds)
        return MadeLink(url=link_url(base_url, token, grant), grant=grant)
    except ShareLinkError as exc:
        return MadeLink(error=str(exc).capitalize())
