"""The Streamlit app's side: the only package that imports Streamlit.

Per-viewer sessions and their JWT sources, the view kept in the URL, the error panel,
charts, the page helpers (dashboard, tenant view, token inspector, endpoint explorer) and
the start of the embedded Tinybird Local with its live trickle. It reads Tinybird through
`lib.client` only; it touches `lib.tinybird_local` just to start it (`embedded`).
"""
