"""The tenant view, token inspector and endpoint explorer pages in AppTest, on a real server.

As in test_top_airlines: every test points TINYBIRD_HOST at a Tinybird Local subprocess
(one per module, seeded), .env files come from an empty dir, and the embedded server must
never start in this process. Numbers on the pages are checked against `/v0/sql` counts.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from streamlit.testing.v1 import AppTest

from lib.ui import keys
from lib.ui.charts import DAILY_BOOKINGS, MEAL_MIX, TOP_ROUTES
from lib.ui.view_state import utc_today
from tests.support.apptest import (
    ISOLATED_SECRETS,
    assert_no_error,
    chart_rows,
    point_at,
    texts,
)
from tests.support.servers import ROOT

TENANT_PAGE = "app_pages/tenant_view.py"
INSPECTOR_PAGE = "app_pages/token_inspector.py"
EXPLORER_PAGE = "app_pages/endpoint_explorer.py"
SEED_ROWS = 8000


SERVER_SEED_ROWS = SEED_ROWS

@pytest.fixture
def page(monkeypatch, server):
    """`page(path, **query)`: an AppTest of that page pointed at the server, not yet run."""
    point_at(monkeypatch, server)

    def make(path: str, **query: str) -> AppTest:
        at = AppTest.from_file(str(ROOT / path), default_timeout=30)
        at.secrets.update(ISOLATED_SECRETS)
        at.query_params.update(query)
        return at

    return make


def rendered(at: AppTest) -> bytes:
    """Every element the page sent, serialized as it goes down the websocket."""
    chunks: list[bytes] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "SerializeToString"):
            chunks.append(proto.SerializeToString())
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return b"".join(chunks)


def assert_no_signing_token(at: AppTest, server) -> None:
    shown = rendered(at)
    assert at.title and at.title[0].value.encode() in shown  # the walk did see the page
    assert server.admin_token.encode() not in shown, "the signing token is on the page"


def last_days(days: int = 30) -> tuple[dt.date, dt.date]:
    today = utc_today()
    return today - dt.timedelta(days=days - 1), today


def sql_per_day(server, airline: str, first: dt.date, last: dt.date) -> dict[str, int]:
    data = server.sql(f"SELECT toString(toDate(timestamp)) AS day, count() AS n FROM events "
                      f"WHERE airline = '{airline}' AND toDate(timestamp) BETWEEN '{first}' "
                      f"AND '{last}' GROUP BY day")["data"]
    return {row["day"]: int(row["n"]) for row in data}


def metric(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert len(found) == 1, [(m.label, m.value) for m in at.metric]
    return found[0]


def day_of(value) -> str:
    """A Vega-Lite row's day (Arrow gives a timestamp) as YYYY-MM-DD."""
    return value.strftime("%Y-%m-%d") if hasattr(value, "strftime") else str(value)[:10]


# -- tenant view -------------------------------------------------------------------------------


def test_tenant_page_shows_only_the_chosen_airlines_numbers(page, server):
    first, last = last_days()
    at = page(TENANT_PAGE, tenant="Fizz", **{"from": first.isoformat(), "to": last.isoformat()},
              top="4").run()
    assert_no_error(at)
    expected = sql_per_day(server, "Fizz", first, last)
    total = sum(expected.values())
    assert 0 < total < server.count("events")
    assert metric(at, "Bookings") == f"{total:,}"

    _, daily = chart_rows(at, DAILY_BOOKINGS)
    assert {day_of(r["day"]): r["bookings"] for r in daily} == expected
    _, meals = chart_rows(at, MEAL_MIX)
    assert sum(r["bookings"] for r in meals) == total
    _, routes = chart_rows(at, TOP_ROUTES)
    assert len(routes) == 4
    assert routes[0]["route"] == f"{routes[0]['flight_from']} → {routes[0]['flight_to']}"

    client = at.session_state[keys.VIEWER].tenant_clients["Fizz"]
    scopes = client.tokens.current.claims["scopes"]
    assert {s["resource"] for s in scopes} == {"airline_daily_bookings", "airline_top_routes",
                                               "airline_meal_mix"}
    assert all(s["fixed_params"] == {"airline": "Fizz"} for s in scopes)
    assert_no_signing_token(at, server)


def test_the_peek_box_shows_the_server_enforcing_the_pin_live(page, server):
    first, last = last_days()
    at = page(TENANT_PAGE, tenant="Fizz").run()
    fizz = sum(sql_per_day(server, "Fizz", first, last).values())
    gas = sum(sql_per_day(server, "GAS", first, last).values())
    assert fizz != gas
    at.selectbox(key="peek_at").set_value("GAS").run()
    assert_no_error(at)
    [verdict] = texts(at.success)
    assert "airline=GAS" in verdict and "Fizz's own numbers" in verdict
    assert f"{fizz:,} bookings" in verdict and f"{gas:,} bookings" not in verdict
    [request] = [c for c in texts(at.code) if c.startswith("GET ")]
    assert "/v0/pipes/airline_daily_bookings.json?" in request and "airline=GAS" in request
    jwt = at.session_state[keys.VIEWER].tenant_clients["Fizz"].tokens.current.token
    assert jwt not in request and "token=" not in request
    assert "Fizz" not in at.selectbox(key="peek_at").options  # peeking at yourself proves nothing


def test_one_jwt_per_tenant_per_session_kept_across_switches(page, server):
    at = page(TENANT_PAGE, tenant="Fizz").run()
    fizz_client = at.session_state[keys.VIEWER].tenant_clients["Fizz"]
    at.selectbox(key="view_tenant").set_value("GAS").run()
    assert_no_error(at)
    assert at.query_params["tenant"] == "GAS"
    first, last = last_days()
    assert metric(at, "Bookings") == f"{sum(sql_per_day(server, 'GAS', first, last).values()):,}"
    at.selectbox(key="view_tenant").set_value("Fizz").run()
    clients = at.session_state[keys.VIEWER].tenant_clients
    assert set(clients) == {"Fizz", "GAS"}
    assert clients["Fizz"] is fizz_client and fizz_client.tokens.mint_count == 1
    assert clients["GAS"].tokens.mint_count == 1
    assert clients["GAS"].tokens.current.claims["name"] == "tenant_gas"


def test_a_shared_tenant_link_restores_the_view_in_a_new_session(page, server):
    today = utc_today()
    first, last = today - dt.timedelta(days=9), today - dt.timedelta(days=2)
    link = {"tenant": "GAS", "from": first.isoformat(), "to": last.isoformat(), "top": "3",
            "refresh": "12"}
    at = page(TENANT_PAGE, **link).run()
    assert_no_error(at)
    assert at.selectbox(key="view_tenant").value == "GAS"
    assert at.date_input(key="view_dates").value == (first, last)
    assert at.slider(key="view_top").value == 3
    assert at.number_input(key="view_refresh").value == 12
    assert at.query_params == link  # the address bar is the link, unchanged
    assert len(chart_rows(at, TOP_ROUTES)[1]) == 3
    assert metric(at, "Bookings") == f"{sum(sql_per_day(server, 'GAS', first, last).values()):,}"
    assert any("refreshed every 12 s" in c for c in texts(at.caption))

    # The viewer narrows the view; the link follows, and opening it elsewhere shows the same.
    at.slider(key="view_top").set_value(2).run()
    assert at.query_params["top"] == "2"
    shared = dict(at.query_params)
    fresh = page(TENANT_PAGE, **shared).run()
    assert_no_error(fresh)
    assert fresh.query_params == shared
    assert chart_rows(fresh, TOP_ROUTES)[1] == chart_rows(at, TOP_ROUTES)[1]
    assert metric(fresh, "Bookings") == metric(at, "Bookings")
    assert [s.value for s in fresh.subheader] == [s.value for s in at.subheader]
    # A new session: its own JWT, not the first viewer's.
    assert fresh.session_state[keys.VIEWER].tenant_clients["GAS"] is not \
        at.session_state[keys.VIEWER].tenant_clients["GAS"]


def test_bad_values_in_a_tenant_link_fall_back_with_a_note_each(page, server):
    at = page(TENANT_PAGE, tenant="Evil Air", top="500", **{"from": "2025-13-01"}).run()
    assert not at.exception and not at.error
    warnings = texts(at.warning)
    assert len(warnings) == 3
    for param in ("tenant", "top", "from"):
        assert sum(f"`{param}`" in w for w in warnings) == 1, (param, warnings)
    first, last = last_days()
    assert at.selectbox(key="view_tenant").value == "BrianAir"
    assert at.slider(key="view_top").value == 10
    assert at.date_input(key="view_dates").value == (first, last)
    assert at.query_params["tenant"] == "BrianAir" and at.query_params["top"] == "10"
    assert at.query_params["from"] == first.isoformat()
    assert len(chart_rows(at, TOP_ROUTES)[1]) == 10  # the page works on the defaults
    at.run()
    assert not at.warning


# -- token inspector ---------------------------------------------------------------------------


def dataframe_rows(at: AppTest) -> list[list[dict]]:
    return [df.value.to_dict("records") for df in at.dataframe]


def test_inspector_shows_the_sessions_jwt_and_never_the_signing_token(page, server):
    at = page(INSPECTOR_PAGE).run()
    assert_no_error(at)
    tokens = at.session_state[keys.VIEWER].dashboard.tokens
    jwt = tokens.current.token
    claims_table, scopes_table = dataframe_rows(at)
    claims = {row["claim"]: row["value"] for row in claims_table}
    assert claims["name"] == "top_airlines_dashboard"
    assert claims["workspace_id"] == server.workspace.workspace_id
    assert claims["exp"].startswith(f"{int(tokens.current.expires_at)} (")
    assert claims["limits"] == "none"
    assert scopes_table == [{"type": "PIPES:READ", "resource": "top_airlines",
                             "fixed_params": "none"}]
    assert metric(at, "Time left") in ("10 min 0 s", "9 min 59 s")
    [curl] = [c for c in texts(at.code) if c.startswith("curl")]
    assert jwt in curl and f"{server.url}/v0/pipes/top_airlines.json" in curl
    assert jwt.encode() in rendered(at)  # the JWT may be shown ...
    assert_no_signing_token(at, server)  # ... the key that signs it never


def test_remint_now_replaces_the_jwt(page, server):
    at = page(INSPECTOR_PAGE).run()
    tokens = at.session_state[keys.VIEWER].dashboard.tokens
    before = tokens.current
    at.button[0].click().run()
    assert_no_error(at)
    assert tokens.mint_count == 2
    assert tokens.current.minted_at > before.minted_at
    assert tokens.current.expires_at >= before.expires_at
    assert any(c.startswith("Minted 2 times") for c in texts(at.caption))
    at.run()
    assert tokens.mint_count == 2  # a rerun alone does not mint


def test_inspector_lists_the_tenant_jwts_of_the_same_session(page, server):
    at = page("streamlit_app.py").run()
    at.switch_page(TENANT_PAGE).run()
    assert_no_error(at)
    at.switch_page(INSPECTOR_PAGE).run()
    options = at.selectbox(key="inspected_jwt").options
    assert options[0] == "Dashboard (top_airlines)"
    tenant_label = [o for o in options if o.startswith("Tenant view: ")]
    assert tenant_label == ["Tenant view: BrianAir"]
    at.selectbox(key="inspected_jwt").set_value(tenant_label[0]).run()
    assert_no_error(at)
    _, scopes = dataframe_rows(at)
    assert {row["fixed_params"] for row in scopes} == {json.dumps({"airline": "BrianAir"})}
    assert len([c for c in texts(at.code) if c.startswith("curl")]) == 3
    assert_no_signing_token(at, server)


# -- endpoint explorer -------------------------------------------------------------------------


def call(at: AppTest, **values: str) -> AppTest:
    pipe = at.selectbox(key="explore_pipe").value
    for name, value in values.items():
        at.text_input(key=f"param_{pipe}_{name}").input(value)
    [submit] = [b for b in at.button if b.label == "Call the endpoint"]
    return submit.click().run()


def test_explorer_lists_the_endpoints_with_their_parameters(page, server):
    at = page(EXPLORER_PAGE).run()
    assert_no_error(at)
    listing = dataframe_rows(at)[0]
    assert {row["endpoint"] for row in listing} == {
        "top_airlines", "airline_daily_bookings", "airline_top_routes", "airline_meal_mix"}
    by_name = {row["endpoint"]: row for row in listing}
    assert by_name["airline_top_routes"]["parameters"] == "airline, date_from, date_to, limit"
    assert by_name["top_airlines"]["parameters"] == "date_from, date_to, meal_choice"

    at.selectbox(key="explore_pipe").set_value("airline_top_routes").run()
    params = dataframe_rows(at)[1]
    assert params[0] == {"parameter": "airline", "type": "String", "default": "",
                         "required": True, "description": "Airline to report on, e.g. BrianAir"}
    assert params[3] == {"parameter": "limit", "type": "Int32", "default": "10",
                         "required": False, "description": "How many routes to return (1-100)"}
    labels = [t.label for t in at.text_input]
    assert labels == ["airline (String) · required", "date_from (Date)", "date_to (Date)",
                      "limit (Int32)"]
    assert_no_signing_token(at, server)


def test_explorer_runs_an_endpoint_with_a_jwt_for_that_endpoint_only(page, server):
    at = page(EXPLORER_PAGE).run()
    at.selectbox(key="explore_pipe").set_value("airline_top_routes").run()
    call(at, airline="Fizz", limit="3")
    assert_no_error(at)
    [request] = [c for c in texts(at.code) if c.startswith("GET ")]
    assert request == f"GET {server.url}/v0/pipes/airline_top_routes.json?airline=Fizz&limit=3"
    assert metric(at, "Rows") == "3"
    assert 0 < int(metric(at, "Rows read").replace(",", "")) <= server.count("events")
    assert metric(at, "Latency (statistics.elapsed)").endswith(" ms")
    body = json.loads(at.json[0].value)
    assert len(body["data"]) == 3 and set(body["statistics"]) >= {"elapsed", "rows_read"}
    fizz_routes = server.sql(
        "SELECT flight_from, flight_to, count() AS bookings FROM events WHERE airline = 'Fizz' "
        "GROUP BY flight_from, flight_to ORDER BY bookings DESC, flight_from, flight_to "
        "LIMIT 3")["data"]
    assert body["data"] == fizz_routes
    client = at.session_state[keys.VIEWER].explorer_clients["airline_top_routes"]
    assert client.tokens.current.claims["scopes"] == [{"type": "PIPES:READ",
                                                       "resource": "airline_top_routes"}]
    assert client.tokens.current.token not in request
    assert_no_signing_token(at, server)


def test_explorer_shows_the_servers_400_for_a_bad_value(page, server):
    at = page(EXPLORER_PAGE).run()
    at.selectbox(key="explore_pipe").set_value("airline_top_routes").run()
    call(at, airline="Fizz", limit="lots")
    assert not at.exception
    assert texts(at.error) == ["HTTP 400: Error validating 'lots' to type Int32 "
                               "(parameter 'limit')"]
    assert not at.json and not at.metric
    call(at, limit="")  # back to the default: the same form now succeeds
    assert_no_error(at)
    assert metric(at, "Rows") == "10"


def test_explorer_with_a_wrong_admin_token_says_so_without_a_traceback(page, monkeypatch,
                                                                        server):
    monkeypatch.setenv("TINYBIRD_SIGNING_TOKEN", "p.not-the-admin-token-but-long-enough-for-hs256")
    at = page(EXPLORER_PAGE).run()
    assert not at.exception
    [error] = texts(at.error)
    assert error.startswith("Could not list the endpoints (HTTP 403)")
    assert any("TINYBIRD_SIGNING_TOKEN" in c for c in texts(at.caption))



# -- share links: the JWTs of a link's session end with the link -------------------------------

SHARE_SECRET = "share-secret-for-the-app-tests-0123456789ab"


def link_app(token: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=30)
    at.secrets.update({"share": {"secret": SHARE_SECRET}})
    at.query_params.update({"share": token, "tenant": "GAS"})  # the URL's tenant is ignored
    return at


def test_a_share_link_shows_its_tenant_with_jwts_that_end_with_the_link(page, server):
    from lib.ui.share import share_settings, sign_link_token

    first, last = last_days()
    token, grant = sign_link_token(share_settings({"secret": SHARE_SECRET}), tenant="Fizz",
                                   page="Tenant_view", view={"from": first.isoformat(),
                                                             "to": last.isoformat()},
                                   ttl_seconds=120)
    page(TENANT_PAGE)  # points the app at the module's server
    at = link_app(token).run()
    assert_no_error(at)
    assert metric(at, "Bookings") == f"{sum(sql_per_day(server, 'Fizz', first, last).values()):,}"
    viewer = at.session_state[keys.VIEWER]
    assert list(viewer.tenant_clients) == ["Fizz"]
    for tokens in (viewer.tenant_clients["Fizz"].tokens, viewer.dashboard.tokens):
        minted = tokens.minted()
        assert minted.expires_at <= grant.expires_at  # 120 s, where JWTs live 600 s
        assert minted.claims["name"] == f"tenant_fizz_link_{grant.link_id[:8]}"
    # The server's own record says whose reads these were.
    read = server.sql("SELECT DISTINCT pipe_name FROM tinybird.pipe_stats_rt WHERE token_name = "
                      f"'tenant_fizz_link_{grant.link_id[:8]}' ORDER BY pipe_name")["data"]
    assert [row["pipe_name"] for row in read] == ["airline_daily_bookings", "airline_meal_mix",
                                                  "airline_top_routes"]


def test_a_revoked_or_foreign_link_fetches_nothing(page, server):
    from lib.ui.share import share_settings, sign_link_token

    page(TENANT_PAGE)
    revoked_token, grant = sign_link_token(share_settings({"secret": SHARE_SECRET}),
                                           tenant="Fizz", page="Tenant_view", view={},
                                           ttl_seconds=600)
    at = link_app(revoked_token)
    at.secrets.update({"share": {"secret": SHARE_SECRET, "revoked": [grant.link_id]}})
    at.run()
    assert "This shared link was revoked" in texts(at.error)[0]
    assert keys.VIEWER not in at.session_state
    foreign, _ = sign_link_token(share_settings({"secret": "x" * 40}), tenant="Fizz",
                                 page="Tenant_view", view={}, ttl_seconds=600)
    at = link_app(foreign).run()
    assert "damaged or was edited" in texts(at.error)[0]
    assert keys.VIEWER not in at.session_state


# -- who is looking: the demo says so, a login is asked for, a bad setting is named ------------

AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "cookie-secret-for-the-app-tests-0123456789"}


def entry_app(secrets: dict, **query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=30)
    at.secrets.update(secrets)
    at.query_params.update(query)
    return at


def test_without_auth_the_tenant_page_says_it_is_a_demo_and_names_the_setting(page, server):
    at = page(TENANT_PAGE, tenant="GAS").run()
    demo = [str(e.value) for e in at.info if "A demo" in str(e.value)]
    assert demo and "[auth] and [tenancy]" in demo[0]
    assert at.selectbox(key=keys.WIDGET_TENANT).value == "GAS"


def test_with_auth_a_viewer_not_logged_in_gets_only_the_login_buttons(page, server):
    page(TENANT_PAGE)
    provider = {"client_id": "x", "client_secret": "y",
                "server_metadata_url": "https://accounts.google.com/.well-known/openid-configuration"}
    at = entry_app({"auth": {**AUTH, "google": provider, "microsoft": provider}},
                   tenant="GAS").run()
    assert [b.label for b in at.button] == ["Log in with Google", "Log in with Microsoft"]
    assert keys.VIEWER not in at.session_state  # no JWT was minted, nothing fetched
    assert not at.get("vega_lite_chart")


def test_a_bad_tenancy_setting_is_a_message_naming_it(page, server):
    page(TENANT_PAGE)
    at = entry_app({"auth": {**AUTH, "client_id": "x", "client_secret": "y",
                             "server_metadata_url": "https://idp.example/.well-known/x"},
                    "tenancy": {"admins": "ops@example.com"}}).run()
    assert not at.exception
    assert "tenancy.admins" in texts(at.error)[0]
    assert keys.VIEWER not in at.session_state
