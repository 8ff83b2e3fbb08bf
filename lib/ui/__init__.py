"""The Streamlit app's side: the only package that imports Streamlit.

Who is looking (logins, tenancy, share links), per-viewer sessions and their JWT sources,
the view kept in the URL, the error panel, charts, one helper module per page (named
after it: `top_airlines`, `tenant_view`, `token_inspector`, `endpoint_explorer`,
`share_links`) and the start of the embedded Tinybird Local with its live trickle. It
reads Tinybird through `lib.client` only; it touches `lib.tinybird_local` just to start
it (`embedded`).
"""
