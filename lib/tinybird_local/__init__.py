"""Tinybird Local: a Tinybird-compatible HTTP API on chDB that reads the datafiles in `tinybird/`.

Nothing here imports Streamlit; the dashboard reaches this package only through
`lib.ui.embedded.start_embedded`, and every request goes over HTTP as it would to Tinybird.
Of the rest of `lib` it imports only two plain-data leaves, `lib.bookings.distributions`
(to seed) and `lib.command_line` (how the CLI fails), so it can be lifted out on its own;
it issues its own JWTs (`auth.issue_jwt`) rather than borrowing the client's.
"""
