"""The Streamlit app's side: the only package that imports Streamlit.

It holds:
- who is looking: logins, tenancy, share links;
- each viewer's session and JWT sources, and the view kept in the URL;
- the error panel and the charts;
- one helper module per page, named after it (`top_airlines`, `tenant_view`,
  `token_inspector`, `endpoint_explorer`, `share_links`);
- `embedded`: starting the embedded Tinybird Local and its stream of new bookings.

It reads Tinybird through `lib.client` only. It uses `lib.tinybird_local` only to start
the embedded server (`embedded`).
"""
