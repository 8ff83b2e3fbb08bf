"""A shared link opened first thing on a freshly started app shows the app's own menu and page.

Streamlit Community Cloud wakes a sleeping app when its first visitor arrives, often
through a deep link. Each case starts its own `streamlit run` (pointed at this module's
Tinybird Local, so no embedded seeding is needed) and opens one page's link before any
other visit: the sidebar must show the app's menu, the page must be the one linked, its
query parameters honoured, with no "page not found" dialog and no failed request to a
host other than the app's (offline there is none to reach).
"""

from __future__ import annotations

import pytest

from tests.support.browser import (
    SKIP_WITHOUT_CHROMIUM,
    clean_env,
    running_streamlit,
)

pytestmark = [pytest.mark.browser, SKIP_WITHOUT_CHROMIUM]

SERVER_SEED_ROWS = 2000
MENU = ["Top airlines by bookings", "Tenant view", "Token inspector", "Endpoint explorer"]
TIMEOUT_MS = 60_000




@pytest.mark.parametrize(("link", "title", "shows"), [
    ("?refresh=7", "Top airlines by bookings", "refreshed every 7 s"),
    ("?window=24h&meal_choice=vegan", "Top airlines by bookings", "Last 24 hours · vegan"),
    ("?date_from=2026-01-01+00%3A00%3A00&date_to=2026-01-02+00%3A00%3A00",
     "Top airlines by bookings", "Jan 01 00:00 – Jan 02 00:00 UTC · all meals"),
    ("Tenant_view?tenant=Fizz&top=3", "Tenant view", "Fizz ·"),
    ("Token_inspector", "Token inspector", "Time left"),
    ("Endpoint_explorer", "Endpoint explorer", "Call the endpoint"),
])
def test_a_deep_link_on_a_fresh_server_opens_the_apps_own_page(tmp_path, server, browser, link,
                                                                title, shows):
    env = clean_env(tmp_path, tmp_path / "unused-local-data")
    env.update(TINYBIRD_HOST=server.url, TINYBIRD_WORKSPACE=server.workspace.workspace_id,
               TINYBIRD_SIGNING_TOKEN=server.admin_token)
    with running_streamlit(tmp_path, env) as (url, _log):
        context = browser.new_context()
        page = context.new_page()
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto(f"{url}/{link}")
        page.get_by_text(shows).first.wait_for(timeout=TIMEOUT_MS)
        assert page.locator("h1").first.inner_text() == title
        nav = page.locator('[data-testid="stSidebarNav"]')
        assert [item.strip() for item in nav.locator("span").all_inner_texts()
                if item.strip() in MENU] == MENU
        assert page.locator('[role="dialog"]').count() == 0, "a 'page not found' dialog"
        assert page.url.startswith(f"{url}/{link}")  # the link as shared (a page may add to it)
        assert [u for u in failed if not u.startswith(url)] == []
        context.close()
