"""End to end: every page in Debian's Chromium on the embedded default, and a shared link.

One `streamlit run` serves the module (Tinybird Local embedded in its process, with a
temporary data dir). The browser uses each page as a viewer would and a screenshot of
each is saved; no page, no websocket frame and no log line may hold the admin token.
A link copied from one browser context opens the same view in a fresh one.
"""

from __future__ import annotations

import datetime as dt

import pytest

from lib.tinybird_local.workspace import load_workspace
from tests.support.browser import (
    SKIP_WITHOUT_CHROMIUM,
    clean_env,
    running_streamlit,
)

START_TIMEOUT_MS = 90_000
STEP_TIMEOUT_MS = 15_000
CHARTS = '[data-testid="stVegaLiteChart"]'
METRIC_VALUE = '[data-testid="stMetricValue"]'

pytestmark = [
    pytest.mark.browser,
    SKIP_WITHOUT_CHROMIUM,
]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """`streamlit run streamlit_app.py` on the embedded default; yields (url, admin token, log)."""
    base = tmp_path_factory.mktemp("e2e-pages")
    data_dir = base / "tinybird-local"
    env = clean_env(base, data_dir)
    env.pop("TINYBIRD_REFRESH_SECONDS")  # the setting's default (5 s); links may override it
    with running_streamlit(base, env) as (url, log_path):
        yield url, data_dir, log_path




def wait_for_charts(page, count: int, timeout: int = STEP_TIMEOUT_MS) -> None:
    page.wait_for_function(f"document.querySelectorAll('{CHARTS}').length >= {count}",
                           timeout=timeout)


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label`, as a person would."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def no_errors_on(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("Could not").count() == 0


def test_every_page_in_chromium_works_and_never_sees_the_signing_token(app, browser, tmp_path):
    url, data_dir, log_path = app
    frames: list[bytes] = []
    pages_html: dict[str, str] = {}

    def on_websocket(ws) -> None:
        ws.on("framereceived", lambda payload: frames.append(
            payload.encode() if isinstance(payload, str) else payload))

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("websocket", on_websocket)
    try:
        # The dashboard, with the link asking for a poll every second (the setting says 5):
        # three polls in the latency chart well before one 5 s interval could have passed.
        page.goto(f"{url}/?refresh=1")
        wait_for_charts(page, 1, START_TIMEOUT_MS)  # the first run starts the embedded server
        page.get_by_text("Latency of the last 3 good polls").wait_for(timeout=4_500)
        assert page.locator(CHARTS).count() == 2  # bookings and latency over time
        assert "refresh=1" in page.url
        no_errors_on(page)
        page.screenshot(path=str(tmp_path / "dashboard.png"))
        pages_html["dashboard"] = page.content()

        page.goto(f"{url}/Tenant_view?tenant=Fizz&top=5")
        page.get_by_text("Fizz's own numbers").wait_for(timeout=STEP_TIMEOUT_MS)
        wait_for_charts(page, 3)
        assert page.get_by_text("Top 5 routes").is_visible()
        assert page.get_by_role("combobox", name="You are").input_value() == "Fizz"
        no_errors_on(page)
        page.screenshot(path=str(tmp_path / "tenant_view.png"))
        pages_html["tenant"] = page.content()

        page.goto(f"{url}/Token_inspector")
        page.get_by_text("Time left").wait_for(timeout=STEP_TIMEOUT_MS)
        countdown = page.locator(METRIC_VALUE).first
        first = countdown.inner_text()
        # The countdown fragment redraws every second by itself.
        page.wait_for_function(
            f"(prev) => document.querySelector('{METRIC_VALUE}').textContent !== prev",
            arg=first, timeout=3_000)
        assert countdown.inner_text() != first
        curl = page.locator('[data-testid="stCode"]').filter(has_text="curl").inner_text()
        assert "Authorization: Bearer eyJ" in curl and "/v0/pipes/top_airlines.json" in curl
        no_errors_on(page)
        page.screenshot(path=str(tmp_path / "token_inspector.png"))
        pages_html["inspector"] = page.content()

        page.goto(f"{url}/Endpoint_explorer")
        choose(page, "Endpoint", "airline_top_routes")
        limit = page.get_by_role("textbox", name="limit (Int32)", exact=True)
        limit.wait_for(timeout=STEP_TIMEOUT_MS)  # the form for this endpoint is drawn
        page.get_by_role("textbox", name="airline (String) · required", exact=True).fill("GAS")
        limit.fill("4")
        page.get_by_role("button", name="Call the endpoint").click()
        page.get_by_text("Rows read").wait_for(timeout=STEP_TIMEOUT_MS)
        request = page.locator('[data-testid="stCode"]').filter(has_text="GET ").inner_text()
        assert request.strip().endswith("/v0/pipes/airline_top_routes.json?airline=GAS&limit=4")
        no_errors_on(page)
        page.screenshot(path=str(tmp_path / "endpoint_explorer.png"))
        pages_html["explorer"] = page.content()
    finally:
        page.close()

    for name in ("dashboard", "tenant_view", "token_inspector", "endpoint_explorer"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000, name
    workspace = load_workspace(data_dir)
    assert workspace is not None
    secret = workspace.admin_token
    assert secret.startswith("p.") and len(secret) > 20
    # Positive controls: the capture saw every page, and the JWT the inspector shows.
    for text in (b"Top airlines by bookings", b"Tenant view", b"Token inspector",
                 b"Endpoint explorer", b"eyJhbGciOiJIUzI1NiIs"):
        assert any(text in frame for frame in frames), text
    for name, html in pages_html.items():
        assert secret not in html, f"the signing token is in the {name} page"
    leaked = [i for i, frame in enumerate(frames) if secret.encode() in frame]
    assert not leaked, f"the signing token is in websocket frames {leaked}"
    assert secret not in log_path.read_text(errors="replace"), "the signing token is in a log"


def test_a_shared_link_opens_the_same_view_in_a_fresh_browser(app, browser, tmp_path):
    url, _, _ = app
    today = dt.datetime.now(dt.UTC).date()
    first, last = today - dt.timedelta(days=6), today - dt.timedelta(days=1)
    sharer = browser.new_context(viewport={"width": 1280, "height": 900})
    viewer = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = sharer.new_page()
        page.goto(f"{url}/Tenant_view?tenant=Fizz&top=3&from={first}&to={last}")
        page.get_by_text("Fizz's own numbers").wait_for(timeout=START_TIMEOUT_MS)
        choose(page, "You are", "Red Balloon")  # the sharer changes the view ...
        page.wait_for_function("location.search.includes('tenant=Red+Balloon') || "
                               "location.search.includes('tenant=Red%20Balloon')",
                               timeout=STEP_TIMEOUT_MS)  # ... and the address bar follows
        page.get_by_text("Red Balloon's own numbers").wait_for(timeout=STEP_TIMEOUT_MS)
        link = page.url
        heading = page.locator("h3").first.inner_text()
        assert heading == f"Red Balloon · {first:%b %d, %Y} – {last:%b %d, %Y}"

        opened = viewer.new_page()  # no cookies, no session: only the link
        opened.goto(link)
        opened.get_by_text("Red Balloon's own numbers").wait_for(timeout=STEP_TIMEOUT_MS)
        wait_for_charts(opened, 3)
        assert opened.locator("h3").first.inner_text() == heading
        assert opened.get_by_role("combobox", name="You are").input_value() == "Red Balloon"
        assert opened.get_by_text("Top 3 routes").is_visible()
        assert opened.url == link  # nothing in the link needed correcting
        assert opened.locator('[data-testid="stAlert"]').filter(
            has_text="The link's").count() == 0
        no_errors_on(opened)
        opened.screenshot(path=str(tmp_path / "shared_link.png"))

        # A link with a bad value: the default, and a note naming the parameter.
        broken = viewer.new_page()
        broken.goto(f"{url}/Tenant_view?tenant=Nope&top=3")
        note = broken.locator('[data-testid="stAlert"]').filter(has_text="The link's")
        note.wait_for(timeout=STEP_TIMEOUT_MS)
        assert "tenant" in note.inner_text() and "BrianAir" in note.inner_text()
        broken.get_by_text("BrianAir's own numbers").wait_for(timeout=STEP_TIMEOUT_MS)
        assert "tenant=BrianAir" in broken.url
    finally:
        sharer.close()
        viewer.close()
