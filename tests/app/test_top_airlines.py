"""The dashboard page in Streamlit's AppTest, against real Tinybird Local subprocesses.

`run_every` never fires inside AppTest: each `at.run()` is one poll. Every test sets
TINYBIRD_HOST, so the page never starts the embedded server in this process (chDB opens
one data dir per process), and a guard fails the test if it tried. Settings come only
from what the test sets: .env files are read from an empty TINYBIRD_ENV_DIR, and
`at.secrets` replaces any `.streamlit/secrets.toml` the developer may have.
"""

from __future__ import annotations

import datetime as dt
import re
import signal
import time
from pathlib import Path

import jwt as pyjwt
import pytest
import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError
from streamlit.testing.v1 import AppTest

from lib.bookings.distributions import AIRLINES
from lib.client.settings import SettingsError
from lib.ui import keys, page
from lib.ui.charts import LATENCY as LATENCY_CHART
from lib.ui.shared_fetch import LATENCY_HISTORY
from tests.support.apptest import (
    LATENCY,
    SEED_ROWS,
    WRONG_KEY,
    app,
    assert_no_error,
    chart_rows,
    expected_bookings,
    point_at,
    texts,
)
from tests.support.servers import PROJECT_DIR, ROOT, start_server

SERVER_SEED_ROWS = SEED_ROWS

# -- the page on a healthy endpoint ------------------------------------------------------------


def test_the_page_draws_the_ranked_chart_with_latency(monkeypatch, server):
    point_at(monkeypatch, server)
    at = app().run()
    assert_no_error(at)
    assert texts(at.title) == ["Top airlines by bookings"]
    assert "Ranked from highest to lowest" in texts(at.caption)

    spec, rows = chart_rows(at)
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["y"]["field"] == "airline"
    assert spec["encoding"]["y"]["sort"] == "-x"  # ranked by bookings, highest first
    assert spec["encoding"]["x"] == {**spec["encoding"]["x"], "field": "bookings",
                                     "type": "quantitative"}
    assert {t["field"] for t in spec["encoding"]["tooltip"]} == {"airline", "bookings"}

    assert len(rows) == len(AIRLINES) == 7  # one bar per airline
    assert {r["airline"]: r["bookings"] for r in rows} == expected_bookings(server)
    counts = [r["bookings"] for r in rows]
    assert counts == sorted(counts, reverse=True)

    latency = [t for t in texts(at.markdown) if t.startswith("Latency:")]
    assert len(latency) == 1 and LATENCY.match(latency[0]), latency
    assert any(t.startswith("7 airlines") for t in texts(at.caption))
    # The local-demo note is for the embedded server only.
    assert not at.info


def test_one_request_per_poll_and_no_re_mint_between_polls(monkeypatch, server, fetch_clock):
    point_at(monkeypatch, server)
    at = app().run()
    session = at.session_state[keys.VIEWER].dashboard
    assert session.client.requests_sent == 1
    assert session.tokens.mint_count == 1
    first_jwt = session.tokens.current.token
    for poll in range(2, 5):
        fetch_clock.advance(5)
        at.run()
        assert_no_error(at)
        assert at.session_state[keys.VIEWER].dashboard is session  # one session per viewer
        assert session.client.requests_sent == poll
        assert session.tokens.mint_count == 1
    assert session.tokens.current.token == first_jwt
    assert session.polls == 4
    assert server.admin_token not in repr(session)  # nothing to leak through a log line


def test_viewers_of_one_link_share_one_request_per_interval(monkeypatch, server, fetch_clock):
    point_at(monkeypatch, server)
    viewers = [app().run() for _ in range(5)]
    sessions = [at.session_state[keys.VIEWER].dashboard for at in viewers]
    assert [s.client.requests_sent for s in sessions] == [1, 0, 0, 0, 0]
    # The fetch went out with the JWT of the session that made it; the others mint their
    # own only when a fetch of theirs is due.
    assert [s.tokens.mint_count for s in sessions] == [1, 0, 0, 0, 0]
    first = chart_rows(viewers[0])[1]
    assert all(chart_rows(at)[1] == first for at in viewers)
    fetch_clock.advance(5)  # one interval later: the first poll fetches, for all of them
    for at in reversed(viewers):
        at.run()
        assert_no_error(at)
    assert [s.client.requests_sent for s in sessions] == [1, 0, 0, 0, 1]
    # The second fetch went out on the fifth viewer's own JWT source, minted for it.
    assert [s.tokens.mint_count for s in sessions] == [1, 0, 0, 0, 1]


def test_the_jwt_lifetime_setting_reaches_the_minted_jwts_exp(monkeypatch, server):
    point_at(monkeypatch, server)
    monkeypatch.setenv("TINYBIRD_JWT_TTL_SECONDS", "120")
    before = time.time()
    at = app().run()
    assert_no_error(at)
    claims = pyjwt.decode(at.session_state[keys.VIEWER].dashboard.tokens.current.token,
                          options={"verify_signature": False})
    assert before + 120 <= claims["exp"] <= time.time() + 121


def test_new_bookings_show_on_the_next_poll(monkeypatch, server, fetch_clock):
    point_at(monkeypatch, server)
    at = app().run()
    _, before = chart_rows(at)
    server.seed(700)
    fetch_clock.advance(5)
    at.run()
    _, after = chart_rows(at)
    assert sum(r["bookings"] for r in after) == sum(r["bookings"] for r in before) + 700
    assert {r["airline"]: r["bookings"] for r in after} == expected_bookings(server)


def test_latency_over_time_charts_every_good_fetch_of_this_view(monkeypatch, server,
                                                               fetch_clock):
    point_at(monkeypatch, server)
    at = app().run()
    for _ in range(2):
        fetch_clock.advance(5)
        at.run()
    assert_no_error(at)
    spec, rows = chart_rows(at, LATENCY_CHART)
    assert spec["mark"]["type"] == "line"
    history = list(at.session_state[keys.VIEWER].dashboard.latency_history)
    assert len(history) == 3 and history[0].at < history[-1].at
    by_series: dict[str, list[float]] = {}
    for row in rows:
        by_series.setdefault(row["series"], []).append(row["ms"])
    assert by_series == {"server (statistics.elapsed)": [s.elapsed_ms for s in history],
                         "round trip": [s.round_trip_ms for s in history]}
    assert all(0 < ms < 10_000 for ms in by_series["round trip"])
    assert any(c.startswith("Latency of the last 3 good polls") for c in texts(at.caption))
    assert at.session_state[keys.VIEWER].dashboard.latency_history.maxlen == LATENCY_HISTORY


# -- the link: ?refresh= -----------------------------------------------------------------------


def refresh_caption(at: AppTest) -> str:
    found = [c for c in texts(at.caption) if "refreshed every" in c]
    assert len(found) == 1, texts(at.caption)
    return found[0]


def test_a_shared_link_sets_the_refresh_interval_over_the_setting(monkeypatch, server):
    point_at(monkeypatch, server)
    monkeypatch.setenv("TINYBIRD_REFRESH_SECONDS", "7")
    at = app()
    at.query_params["refresh"] = "2"
    at.run()
    assert_no_error(at)
    assert "refreshed every 2 s" in refresh_caption(at)
    assert at.number_input(key="view_refresh").value == 2
    assert at.query_params == {"refresh": "2"}

    at.number_input(key="view_refresh").set_value(30).run()  # the viewer changes it
    assert "refreshed every 30 s" in refresh_caption(at)
    assert at.query_params == {"refresh": "30"}  # and the address bar follows


def test_without_a_link_the_setting_holds_and_goes_into_the_link(monkeypatch, server):
    point_at(monkeypatch, server)
    monkeypatch.setenv("TINYBIRD_REFRESH_SECONDS", "7")
    at = app().run()
    assert_no_error(at)
    assert "refreshed every 7 s" in refresh_caption(at)
    assert at.query_params == {"refresh": "7"}


@pytest.mark.parametrize("value", ["0", "3601", "soon", "nan"])
def test_a_bad_refresh_in_the_link_falls_back_to_the_setting_with_a_note(monkeypatch, server,
                                                                         value):
    point_at(monkeypatch, server)
    monkeypatch.setenv("TINYBIRD_REFRESH_SECONDS", "7")
    at = app()
    at.query_params["refresh"] = value
    at.run()
    assert not at.exception and not at.error
    warnings = texts(at.warning)
    assert len(warnings) == 1 and "`refresh`" in warnings[0] and "`7` (the setting)" in warnings[0]
    assert "refreshed every 7 s" in refresh_caption(at)
    assert at.query_params == {"refresh": "7"}  # the link now says what is shown
    at.run()
    assert not at.warning  # said once, for the link that was opened


# -- failures ----------------------------------------------------------------------------------


def test_server_down_shows_the_error_panel_and_keeps_the_stale_chart_then_recovers(
        monkeypatch, tmp_path, fetch_clock):
    own = start_server(PROJECT_DIR, tmp_path / "data")
    try:
        own.seed(1000)
        point_at(monkeypatch, own)
        at = app().run()
        assert_no_error(at)
        _, good_rows = chart_rows(at)
        port = int(own.url.rsplit(":", 1)[1])

        own.stop()
        fetch_clock.advance(5)
        at.run()
        assert not at.exception
        errors = texts(at.error)
        assert len(errors) == 1 and errors[0].startswith("Could not refresh the chart")
        assert own.url in errors[0]
        assert any("TINYBIRD_HOST" in c for c in texts(at.caption))  # what to do
        assert len(at.warning) == 1 and "last good data" in at.warning[0].value
        assert re.search(r"\d+ s old", at.warning[0].value)
        _, stale_rows = chart_rows(at)  # the last good chart is still on screen
        assert stale_rows == good_rows

        own = start_server(PROJECT_DIR, own.data_dir, port=port)
        fetch_clock.advance(5)
        at.run()
        assert_no_error(at)
        _, rows = chart_rows(at)
        assert rows == good_rows  # same data dir, same bookings
        session = at.session_state[keys.VIEWER].dashboard
        assert session.tokens.mint_count == 1  # the JWT outlived the outage
        assert session.client.requests_sent == 3
    finally:
        own.stop(signal.SIGKILL)


def test_unknown_pipe_from_secrets_shows_not_found_without_a_chart(monkeypatch, server):
    """st.secrets wins over the environment, and a 404 names the setting to check."""
    point_at(monkeypatch, server)
    monkeypatch.setenv("TINYBIRD_PIPE", "top_airlines")
    at = app({"TINYBIRD_PIPE": "no_such_pipe"}).run()
    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1 and "HTTP 404" in errors[0] and "no_such_pipe" in errors[0]
    assert any("TINYBIRD_PIPE" in c for c in texts(at.caption))
    assert not at.get("vega_lite_chart")
    assert not at.warning  # nothing stale: there was never a good chart
    assert at.session_state[keys.VIEWER].dashboard.client.requests_sent == 1  # a 404 is not retried


def test_wrong_signing_token_is_retried_once_and_explained(monkeypatch, server):
    point_at(monkeypatch, server)
    monkeypatch.setenv("TINYBIRD_SIGNING_TOKEN", WRONG_KEY)
    at = app().run()
    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1 and "HTTP 403" in errors[0]
    assert any("TINYBIRD_SIGNING_TOKEN" in c for c in texts(at.caption))
    session = at.session_state[keys.VIEWER].dashboard
    assert session.client.requests_sent == 2 and session.tokens.mint_count == 2


def test_a_corrected_signing_token_takes_effect_on_the_next_run(monkeypatch, server):
    """The per-viewer session is rebuilt when the signing token changes, not kept."""
    point_at(monkeypatch, server)
    monkeypatch.setenv("TINYBIRD_SIGNING_TOKEN", WRONG_KEY)
    at = app().run()
    assert len(at.error) == 1
    monkeypatch.setenv("TINYBIRD_SIGNING_TOKEN", server.admin_token)
    at.run()
    assert_no_error(at)
    assert len(chart_rows(at)[1]) == len(AIRLINES)
    session = at.session_state[keys.VIEWER].dashboard
    assert session.client.requests_sent == 1 and session.tokens.mint_count == 1


@pytest.mark.parametrize(("name", "value"), [
    ("TINYBIRD_WORKSPACE", "not-a-uuid"),
    ("TINYBIRD_HOST", "localhost:7181"),
    ("TINYBIRD_REFRESH_SECONDS", "often"),
])
def test_a_broken_setting_is_a_readable_message_not_an_exception(monkeypatch, server, name,
                                                                  value):
    point_at(monkeypatch, server)
    monkeypatch.setenv(name, value)
    at = app().run()
    assert not at.exception
    assert texts(at.title) == ["Top airlines by bookings"]
    errors = texts(at.error)
    assert len(errors) == 1 and name in errors[0], errors
    assert any(".env.example" in c for c in texts(at.caption))
    assert not at.get("vega_lite_chart")
    assert "dashboard" not in at.session_state


def test_a_signing_token_in_the_wrong_setting_is_not_shown(monkeypatch, server):
    point_at(monkeypatch, server)
    monkeypatch.setenv("TINYBIRD_WORKSPACE", server.admin_token)
    at = app().run()
    assert not at.exception
    assert len(at.error) == 1 and "TINYBIRD_WORKSPACE" in at.error[0].value
    shown = texts(at.error) + texts(at.caption) + texts(at.markdown)
    assert not any(server.admin_token in text for text in shown)


def test_env_files_are_read_from_tinybird_env_dir(monkeypatch, isolated):
    """The copied .env.example is refused, which also proves where .env files come from."""
    (isolated / ".env.local").write_text((ROOT / ".env.example").read_text())
    at = app().run()
    assert not at.exception
    assert len(at.error) == 1
    assert "TINYBIRD_HOST" in at.error[0].value and "placeholder" in at.error[0].value


# -- st.secrets problems -----------------------------------------------------------------------


class _RaisingSecrets:
    def __init__(self, error: Exception):
        self.error = error

    def items(self):
        raise self.error


def test_no_secrets_file_means_no_secrets(monkeypatch):
    missing = StreamlitSecretNotFoundError("No secrets found. Valid paths: {file_paths}",
                                           file_paths="x", error_id="no-secrets-found")
    monkeypatch.setattr(st, "secrets", _RaisingSecrets(missing))
    assert page.secrets() == {}


def test_a_malformed_secrets_file_is_reported_not_ignored(monkeypatch):
    broken = StreamlitSecretNotFoundError("Error parsing secrets file at {path}: {error}",
                                          path=str(Path(".streamlit/secrets.toml")),
                                          error="Expected '=' (line 1)",
                                          error_id="failed-parsing-secrets-file")
    monkeypatch.setattr(st, "secrets", _RaisingSecrets(broken))
    with pytest.raises(SettingsError) as caught:
        page.secrets()
    assert "secrets.toml" in caught.value.setting


# -- the link's window and meal ----------------------------------------------------------------


def filtered_count(server, **where) -> dict[str, int]:
    clauses = ["1"] + [f"{sql} '{value}'" for sql, value in where.items()]
    rows = server.sql("SELECT airline, count() AS bookings FROM events WHERE "
                      + " AND ".join(clauses) + " GROUP BY airline")["data"]
    return {row["airline"]: int(row["bookings"]) for row in rows}


def test_a_link_with_a_range_and_a_meal_charts_exactly_those_bookings(monkeypatch, server):
    point_at(monkeypatch, server)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    start, end = now - dt.timedelta(days=9, minutes=7), now - dt.timedelta(days=2, seconds=5)
    at = app()
    at.query_params.update(date_from=str(start), date_to=str(end), meal_choice="vegan")
    at.run()
    assert_no_error(at)
    _, rows = chart_rows(at)
    expected = filtered_count(server, **{"timestamp >=": str(start), "timestamp <": str(end),
                                         "meal_choice =": "vegan"})
    assert {r["airline"]: r["bookings"] for r in rows} == expected and expected
    assert at.selectbox(key="view_window").value == "custom"
    assert at.selectbox(key="view_meal").value == "vegan"
    assert "vegan" in at.subheader[0].value
    assert at.query_params["meal_choice"] == ["vegan"] or at.query_params["meal_choice"] == "vegan"


def test_choosing_a_window_and_meal_goes_into_the_link_and_narrows_the_chart(monkeypatch, server):
    point_at(monkeypatch, server)
    at = app().run()
    _, everything = chart_rows(at)
    at.selectbox(key="view_window").set_value("7d")
    at.selectbox(key="view_meal").set_value("kosher").run()
    assert_no_error(at)
    assert dict(at.query_params) in ({"refresh": "5", "window": "7d", "meal_choice": "kosher"},
                                     {"refresh": ["5"], "window": ["7d"],
                                      "meal_choice": ["kosher"]})
    assert at.subheader[0].value == "Last 7 days · kosher"
    _, narrowed = chart_rows(at)
    total = sum(r["bookings"] for r in narrowed)
    assert 0 < total < sum(r["bookings"] for r in everything)
    week_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=7)
    # Bookings only ever arrive here, so the fetch's week holds at least the week counted now.
    assert total <= sum(filtered_count(server, **{"timestamp >=": str(week_ago - dt.timedelta(
        minutes=1)), "meal_choice =": "kosher"}).values())


@pytest.mark.parametrize(("query", "param"), [({"window": "fortnight"}, "window"),
                                              ({"meal_choice": "caviar"}, "meal_choice")])
def test_a_bad_filter_in_the_link_is_a_readable_note_and_the_default_view(monkeypatch, server,
                                                                          query, param):
    point_at(monkeypatch, server)
    at = app()
    at.query_params.update(query)
    at.run()
    assert not at.exception and not at.error
    assert len(at.warning) == 1 and f"`{param}`" in at.warning[0].value
    _, rows = chart_rows(at)
    assert {r["airline"]: r["bookings"] for r in rows} == expected_bookings(server)


def test_viewers_of_different_filters_never_share_an_answer(monkeypatch, server, fetch_clock):
    point_at(monkeypatch, server)
    vegan, vegan_too, kosher = app(), app(), app()
    for at, meal in ((vegan, "vegan"), (vegan_too, "vegan"), (kosher, "kosher")):
        at.query_params["meal_choice"] = meal
        at.run()
        assert_no_error(at)
    sessions = [at.session_state[keys.VIEWER].dashboard for at in (vegan, vegan_too, kosher)]
    assert [s.client.requests_sent for s in sessions] == [1, 0, 1]
    assert chart_rows(vegan)[1] == chart_rows(vegan_too)[1] != chart_rows(kosher)[1]
