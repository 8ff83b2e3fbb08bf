"""The JWTs this session reads Tinybird with: claims, time left, and a curl to replay one."""

from __future__ import annotations

import time

import streamlit as st

from lib.ui import keys, token_inspector
from lib.ui.access import recheck
from lib.ui.page import page_preamble
from lib.ui.session import viewer_session

page = page_preamble("Token inspector",
                     "The short-lived JWTs this browser session reads Tinybird with. They are "
                     "signed on the server with the workspace admin token, which never leaves "
                     "it.")
connection = page.connection
sources = viewer_session(connection, page.settings, page.access).token_sources()
label = st.selectbox("JWT", list(sources), key=keys.INSPECTED_JWT,
                     help="The dashboard's, plus one per tenant or endpoint you opened.")
tokens = sources[label]

if st.button("Re-mint now", icon=":material/autorenew:"):
    tokens.remint()
token = tokens.get()  # the cached JWT, or a new one if it was near its exp
claims = token_inspector.decode_claims(token)

header_col, claims_col = st.columns([1, 2])
with header_col:
    st.markdown("**Header**")
    st.json(token_inspector.header(token))
    st.caption(f"Minted {tokens.mint_count} time{'s' if tokens.mint_count != 1 else ''} in "
               f"this session; re-minted {tokens.margin_seconds:g} s before it expires.")
with claims_col:
    st.markdown("**Claims**")
    st.dataframe(token_inspector.claim_rows(claims), hide_index=True, width="stretch")
    st.markdown("**Scopes**")
    st.dataframe(token_inspector.scope_rows(claims), hide_index=True, width="stretch")


@st.fragment(run_every=1)
def countdown() -> None:
    """Time left, redrawn every second; a re-mint near exp redraws the whole page."""
    recheck(page.access)  # a login that has ended shows nothing more
    minted = tokens.minted()
    if minted.token != token:
        st.rerun()
    now = time.time()
    left = token_inspector.time_left(minted.expires_at, now)
    st.metric("Time left", token_inspector.countdown_text(left))
    st.progress(token_inspector.life_fraction(minted.minted_at, minted.expires_at, now))


countdown()

st.markdown("**Try it from a terminal**")
for pipe in token_inspector.scoped_pipes(claims):
    st.code(token_inspector.curl_command(connection.host, pipe, token), language="bash")
st.caption("The command holds this JWT (it can only read the endpoints above, until it "
           "expires), never the signing token.")
