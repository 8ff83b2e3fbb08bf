"""Tinybird Local: a Tinybird-compatible HTTP API on chDB that reads the datafiles in `tinybird/`.

Nothing here imports Streamlit; the dashboard reaches this package only through
`embedded.start_embedded`, and every request goes over HTTP as it would to Tinybird.
"""
