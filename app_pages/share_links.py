"""Share links: admins make a signed link that shows one tenant's page without a login.

Layout only: the work is in `lib.ui.share_links`.
"""

from __future__ import annotations

import streamlit as st

from lib.ui import keys, panels, share_links, view_state
from lib.ui.page import page_preamble

page = page_preamble("Share links",
                     "A signed link that shows one tenant's page, with no login, until it "
                     "expires. Whoever opens it sees that tenant only.")
share = share_links.share_settings_or_stop(page.access)

with st.form("make_link"):
    tenant = st.selectbox("Tenant", view_state.TENANTS, key=keys.SHARE_TENANT)
    shared_page = st.selectbox("Page", share_links.PAGES, key=keys.SHARE_PAGE,
                               format_func=lambda path: share_links.PAGES[path])
    lifetime = st.selectbox("Valid for", list(share_links.LIFETIMES), key=keys.SHARE_TTL,
                            index=1)
    shown_view = st.text_input("View (optional)", placeholder="from=2026-11-01&to=2026-11-30",
                               help="The page's link parameters: from, to, top, refresh on "
                                    "the tenant view; window, meal_choice on the dashboard.")
    base_url = st.text_input("The app's address", value=share_links.app_address())
    made = st.form_submit_button("Make the link", icon=":material/link:")

if made:
    st.session_state[keys.MADE_LINK] = share_links.make_link(
        share, tenant=tenant, page=shared_page, view=shown_view,
        ttl_seconds=share_links.LIFETIMES[lifetime], base_url=base_url)
link = st.session_state.get(keys.MADE_LINK)
if link is not None:
    if link.grant is None:
        st.error(link.error, icon=":material/link_off:")
    else:
        st.success(f"A link to {link.grant.tenant}'s {share_links.PAGES[link.grant.page]}, valid "
                   f"until {panels.utc_text(link.grant.expires_at)}. Copy it with the "
                   "button at the code's corner.", icon=":material/link:")
        st.code(link.url, language=None, wrap_lines=True)
        st.caption(f"Link id `{link.grant.link_id}`. To revoke it, add the id to `[share] "
                   "revoked` in the app's secrets (`python -m lib.ui.share revoke ID` prints "
                   "the lines).")
