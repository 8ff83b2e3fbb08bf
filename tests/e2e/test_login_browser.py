"""End to end: viewers log in through a real OpenID Connect provider, and share links.

One `streamlit run` serves the module, with `[auth]`, `[tenancy]` and `[share]` in its
secrets file and Tinybird Local embedded. `oidc-provider-mock` runs in its own process;
each test logs in through Streamlit's `/auth/login`, the provider's form and
`/oauth2callback` in Chromium, never a patched `st.user`. Tests that change the secrets
(revocations, the session's age) write the file and put it back: Streamlit reads its
secrets file again when it changes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from playwright.sync_api import expect

from lib.tinybird_local.workspace import load_workspace
from tests.support.browser import SKIP_WITHOUT_CHROMIUM, clean_env, free_port, running_streamlit
from tests.support.oidc import auth_secrets, log_in, running_provider, set_user
from tests.support.servers import ROOT

START_TIMEOUT_MS = 90_000
STEP_TIMEOUT_MS = 15_000
CHARTS = '[data-testid="stVegaLiteChart"]'
COOKIE_SECRET = "cookie-secret-of-the-login-tests-0123456789"
SHARE_SECRET = "share-secret-of-the-login-tests-0123456789ab"
JWT_RPS = 50
TENANCY = """
[tenancy]
claim = "airline"
admins = ["boss@ops.example"]
max_session_hours = {hours}

[tenancy.users]
"bob@gas.example" = "GAS"

[tenancy.domains]
"fizz.example" = "Fizz"

[share]
secret = "{share_secret}"
key_id = "k1"
{revoked}
"""

pytestmark = [pytest.mark.browser, SKIP_WITHOUT_CHROMIUM]


class App:
    """The app under test: its URL, its secrets file (to edit), its data and its log."""

    def __init__(self, url, secrets, auth, data_dir, log_path):
        self.url, self.secrets, self.auth = url, secrets, auth
        self.data_dir, self.log_path = data_dir, log_path

    def write_secrets(self, hours: float = 12, revoked: str = "") -> None:
        self.secrets.write_text(self.auth + TENANCY.format(
            hours=hours, share_secret=SHARE_SECRET, revoked=revoked))


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    with running_provider(tmp_path_factory.mktemp("oidc")) as url:
        yield url


@pytest.fixture(scope="module")
def app(tmp_path_factory, provider):
    base = tmp_path_factory.mktemp("e2e-login")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = App(url, base / "secrets.toml", auth_secrets(url, provider, COOKIE_SECRET),
              base / "tinybird-local", None)
    app.write_secrets()
    env = clean_env(base, app.data_dir)
    env["TINYBIRD_JWT_RPS"] = str(JWT_RPS)
    with running_streamlit(base, env, app.secrets, port) as (
            _, log_path):
        app.log_path = log_path
        yield app


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def open_menu_page(page, title: str) -> None:
    """Go to another page through the sidebar menu: the same Streamlit session."""
    page.get_by_role("link", name=title, exact=True).click()


def choose(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def options_of(page, label: str) -> list[str]:
    page.get_by_role("combobox", name=label, exact=True).click()
    names = [o.inner_text().strip() for o in page.get_by_role("option").all()]
    page.keyboard.press("Escape")
    return names


def curl_of(page):
    """The token inspector's curl command (the first, for the JWT's first endpoint)."""
    return page.locator('[data-testid="stCode"]').filter(has_text="curl").first


def shown_jwt_claims(page) -> dict:
    """The claims of the JWT the token inspector shows, from its curl command."""
    curl = curl_of(page).inner_text()
    token = re.search(r"Bearer (eyJ[\w.-]+)", curl).group(1)
    return jwt.decode(token, options={"verify_signature": False})


def make_link(tenant: str, ttl: float, app: App, view: str = "") -> str:
    """A link made with the command line, as an admin does; the link is its last line."""
    done = subprocess.run(
        [sys.executable, "-m", "lib.ui.share", "create", "--tenant", tenant, "--ttl", str(ttl),
         "--base-url", app.url, "--view", view, "--secrets", str(app.secrets)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()[-1]


def test_the_claim_decides_the_tenant_and_the_url_cannot_change_it(app, provider, page):
    set_user(provider, "cy@red.example", email="cy@red.example", airline="Red Balloon")
    log_in(page, app.url, "cy@red.example")
    page.get_by_text("Logged in as").wait_for(timeout=START_TIMEOUT_MS)
    assert "Share links" not in page.locator('[data-testid="stSidebarNav"]').inner_text()

    page.goto(f"{app.url}/Tenant_view?tenant=GAS&airline=GAS")
    page.get_by_text("Red Balloon's own numbers").wait_for(timeout=START_TIMEOUT_MS)
    assert page.locator("h3").first.inner_text().startswith("Red Balloon ·")
    assert page.get_by_text("is not a tenant you may see").count() == 1
    assert page.get_by_role("combobox", name="You are").count() == 0
    assert "tenant=Red+Balloon" in page.url or "tenant=Red%20Balloon" in page.url

    open_menu_page(page, "Token inspector")
    page.get_by_text("Time left").wait_for(timeout=STEP_TIMEOUT_MS)
    assert options_of(page, "JWT") == ["Dashboard (top_airlines)", "Tenant view: Red Balloon"]
    choose(page, "JWT", "Tenant view: Red Balloon")
    expect(curl_of(page)).to_contain_text("/v0/pipes/airline_daily_bookings.json",
                                          timeout=STEP_TIMEOUT_MS)
    claims = shown_jwt_claims(page)
    assert claims["name"] == "tenant_red_balloon"
    assert claims["limits"] == {"rps": JWT_RPS}
    assert {scope["fixed_params"]["airline"] for scope in claims["scopes"]} == {"Red Balloon"}

    open_menu_page(page, "Endpoint explorer")
    page.get_by_text("pinned to it").wait_for(timeout=STEP_TIMEOUT_MS)
    assert options_of(page, "Endpoint") == ["airline_daily_bookings", "airline_meal_mix",
                                            "airline_top_routes"]
    choose(page, "Endpoint", "airline_top_routes")
    pinned = page.get_by_role("textbox", name="airline (String) · pinned to your tenant")
    expect(pinned).to_have_value("Red Balloon", timeout=STEP_TIMEOUT_MS)
    assert pinned.is_disabled()
    page.get_by_role("button", name="Call the endpoint").click()
    page.get_by_text("Rows read").wait_for(timeout=STEP_TIMEOUT_MS)
    request = page.locator('[data-testid="stCode"]').filter(has_text="GET ").inner_text()
    assert "airline=Red+Balloon" in request

    open_menu_page(page, "Token inspector")
    page.get_by_text("Time left").wait_for(timeout=STEP_TIMEOUT_MS)
    choose(page, "JWT", "Endpoint explorer: airline_top_routes")
    expect(curl_of(page)).to_contain_text("/v0/pipes/airline_top_routes.json",
                                          timeout=STEP_TIMEOUT_MS)
    claims = shown_jwt_claims(page)
    assert [s["resource"] for s in claims["scopes"]] == ["airline_top_routes"]
    assert claims["scopes"][0]["fixed_params"] == {"airline": "Red Balloon"}


@pytest.mark.parametrize("sub, claims, tenant", [
    ("bob@gas.example", {"email": "bob@gas.example"}, "GAS"),
    ("ana@fizz.example", {"email": "ana@fizz.example", "email_verified": True}, "Fizz"),
])
def test_the_user_map_and_a_verified_domain_decide_the_tenant(app, provider, page, sub,
                                                              claims, tenant):
    set_user(provider, sub, **claims)
    log_in(page, app.url, sub)
    open_menu_page(page, "Tenant view")
    page.get_by_text(f"{tenant}'s own numbers").wait_for(timeout=START_TIMEOUT_MS)
    assert page.locator("h3").first.inner_text().startswith(f"{tenant} ·")
    assert page.get_by_text(f"Logged in as {sub} · {tenant}").count() == 1


@pytest.mark.parametrize("sub, claims, reason", [
    ("dan@fizz.example", {"email": "dan@fizz.example", "email_verified": False},
     "has not verified the email"),
    ("nobody@else.example", {"email": "nobody@else.example", "email_verified": True},
     "no tenant is set for your login"),
])
def test_a_viewer_with_no_tenant_sees_no_data(app, provider, page, sub, claims, reason):
    set_user(provider, sub, **claims)
    log_in(page, app.url, sub)
    message = page.get_by_text("no airline's data is set for you")
    message.wait_for(timeout=START_TIMEOUT_MS)
    assert sub in message.inner_text() and reason in message.inner_text()
    page.goto(f"{app.url}/Tenant_view?tenant=GAS")
    page.get_by_text("no airline's data is set for you").wait_for(timeout=STEP_TIMEOUT_MS)
    assert page.locator(CHARTS).count() == 0
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0


def test_an_admin_picks_any_tenant_and_makes_a_share_link_nobody_can_widen(
        app, provider, page, browser):
    frames: list[bytes] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(
        payload.encode() if isinstance(payload, str) else payload)))
    set_user(provider, "boss@ops.example", email="boss@ops.example")
    log_in(page, app.url, "boss@ops.example")
    page.get_by_text("(admin)").wait_for(timeout=START_TIMEOUT_MS)
    html = [page.content()]
    open_menu_page(page, "Tenant view")
    page.get_by_text("BrianAir's own numbers").wait_for(timeout=START_TIMEOUT_MS)
    choose(page, "You are", "GAS")
    page.get_by_text("GAS's own numbers").wait_for(timeout=STEP_TIMEOUT_MS)
    html.append(page.content())
    open_menu_page(page, "Share links")
    choose(page, "Tenant", "Fizz")
    page.get_by_role("textbox", name="View (optional)").fill("top=3")
    page.get_by_role("button", name="Make the link").click()
    page.get_by_text("A link to Fizz's Tenant view").wait_for(timeout=STEP_TIMEOUT_MS)
    link = page.locator('[data-testid="stCode"]').inner_text().strip()
    html.append(page.content())
    assert link.startswith(f"{app.url}/?top=3&share=eyJ")

    shared = browser.new_context(viewport={"width": 1280, "height": 900})  # no login
    try:
        opened = shared.new_page()
        opened.goto(link + "&tenant=GAS")  # an edit outside the token changes nothing
        opened.get_by_text("Fizz's own numbers").wait_for(timeout=STEP_TIMEOUT_MS)
        assert opened.locator("h3").first.inner_text().startswith("Fizz ·")
        assert opened.get_by_text("Top 3 routes", exact=True).is_visible()
        assert opened.get_by_text("Shared link for Fizz").count() == 1
        assert opened.get_by_role("button", name="Log in").count() == 0
        assert opened.get_by_role("combobox", name="You are").count() == 0
        assert opened.locator('[data-testid="stSidebarNav"]').count() == 0  # no other page
        html.append(opened.content())
    finally:
        shared.close()

    admin_token = load_workspace(app.data_dir).admin_token
    assert any(b"Shared link for Fizz" in frame or b"Make the link" in frame
               for frame in frames)  # the capture saw the pages
    for secret in (admin_token, COOKIE_SECRET, SHARE_SECRET):
        assert not any(secret in text for text in html), "a secret is in a page"
        assert not any(secret.encode() in frame for frame in frames), "a secret is in a frame"
        assert secret not in app.log_path.read_text(errors="replace"), "a secret is in the log"


def test_share_links_that_are_edited_expired_or_revoked_show_no_data(app, browser):
    good = make_link("Fizz", 600, app, "top=4")
    token = parse_qs(urlsplit(good).query)["share"][0]
    short = make_link("GAS", 8, app)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(good)
        page.get_by_text("Fizz's own numbers").wait_for(timeout=START_TIMEOUT_MS)
        assert page.get_by_text("Top 4 routes", exact=True).is_visible()

        tail = "A" if token[-1] != "A" else "B"
        page.goto(good.replace(token, token[:-1] + tail))
        page.get_by_text("damaged or was edited").wait_for(timeout=STEP_TIMEOUT_MS)
        assert page.locator(CHARTS).count() == 0

        # A link that expires while it is open: its next refresh says so and fetches no more.
        page.goto(short)
        page.get_by_text("GAS's own numbers").wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text("This shared link expired on").wait_for(timeout=20_000)
        assert page.locator(CHARTS).count() == 0

        link_id = jwt.decode(token, options={"verify_signature": False})["jti"]
        page.goto(good)
        page.get_by_text("Fizz's own numbers").wait_for(timeout=STEP_TIMEOUT_MS)
        app.write_secrets(revoked=f'revoked = ["{link_id}"]')
        try:  # revoked while open: its next refresh says so
            page.get_by_text("This shared link was revoked").wait_for(timeout=20_000)
            page.goto(good)
            page.get_by_text("This shared link was revoked").wait_for(timeout=STEP_TIMEOUT_MS)
            assert page.locator(CHARTS).count() == 0
        finally:
            app.write_secrets()
    finally:
        context.close()


def test_logout_ends_the_session_here_and_at_the_provider(app, provider, page):
    set_user(provider, "bob@gas.example", email="bob@gas.example")
    log_in(page, app.url, "bob@gas.example")
    page.get_by_role("button", name="Log out").click(timeout=START_TIMEOUT_MS)
    page.wait_for_url(f"{provider}/oauth2/end_session**", timeout=STEP_TIMEOUT_MS)
    page.goto(f"{app.url}/Tenant_view")
    page.get_by_role("button", name="Log in").wait_for(timeout=STEP_TIMEOUT_MS)
    assert page.locator(CHARTS).count() == 0


def test_a_login_older_than_max_session_hours_is_logged_out(app, provider, page):
    set_user(provider, "bob@gas.example", email="bob@gas.example")
    app.write_secrets(hours=0.005)  # 18 s
    try:
        log_in(page, app.url, "bob@gas.example")
        page.get_by_text("Logged in as").wait_for(timeout=START_TIMEOUT_MS)
        # The page's next refresh after 18 s logs out, at the provider too.
        page.wait_for_url(f"{provider}/oauth2/end_session**", timeout=30_000)
    finally:
        app.write_secrets()
