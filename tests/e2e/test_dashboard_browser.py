"""End to end: `streamlit run` on the embedded default, driven by Debian's Chromium.

With no Tinybird settings the app starts Tinybird Local in its own process (a temporary
data dir), seeds it and polls it with JWTs. The browser must see a chart whose latency
line updates on its own, and must never receive the workspace admin token: not in the
page, not in any websocket frame (and the server's log must not hold it either).
"""

from __future__ import annotations

import re

import pytest

from lib.tinybird_local.workspace import load_workspace
from tests.support.browser import (
    REFRESH_SECONDS,
    SKIP_WITHOUT_CHROMIUM,
    clean_env,
    running_streamlit,
)

START_TIMEOUT_MS = 90_000
LATENCY_JS = """() => {
    const el = [...document.querySelectorAll('[data-testid="stMarkdownContainer"] p')]
        .find(p => p.textContent.startsWith('Latency:'));
    return el ? el.textContent : null;
}"""

pytestmark = [
    pytest.mark.browser,
    SKIP_WITHOUT_CHROMIUM,
]


@pytest.fixture
def dashboard(tmp_path):
    """`streamlit run streamlit_app.py` headless on a free port; yields (url, data dir, log)."""
    data_dir = tmp_path / "tinybird-local"
    with running_streamlit(tmp_path, clean_env(tmp_path, data_dir)) as (url, log_path):
        yield url, data_dir, log_path


def test_dashboard_in_chromium_updates_and_never_sees_the_signing_token(dashboard, browser,
                                                                        tmp_path):
    url, data_dir, log_path = dashboard
    frames: list[bytes] = []

    def on_websocket(ws) -> None:
        def keep(payload: str | bytes) -> None:
            frames.append(payload.encode() if isinstance(payload, str) else payload)

        ws.on("framereceived", keep)

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("websocket", on_websocket)
    page.goto(url)
    # The first run starts and seeds the embedded Tinybird Local.
    page.wait_for_selector('[data-testid="stVegaLiteChart"]', timeout=START_TIMEOUT_MS)
    page.wait_for_function(f"({LATENCY_JS})() !== null", timeout=10_000)
    assert page.get_by_text("Top airlines by bookings").first.is_visible()
    assert page.get_by_text("Ranked from highest to lowest").is_visible()
    assert page.get_by_text("local demo data").is_visible()

    first = page.evaluate(LATENCY_JS)
    assert re.match(r"^Latency: \d+(\.\d+)? ms \(", first), first
    # The fragment polls every REFRESH_SECONDS on its own: within two intervals
    # (plus a little for the browser to draw) the line must have changed.
    page.wait_for_function(f"(prev) => {{ const now = ({LATENCY_JS})(); "
                           "return now !== null && now !== prev; }",
                           arg=first, timeout=2 * REFRESH_SECONDS * 1000 + 1500)
    second = page.evaluate(LATENCY_JS)
    assert second != first and second.startswith("Latency:")

    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlert"]').filter(
        has_text="Could not refresh").count() == 0
    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    html = page.content()
    page.close()

    assert screenshot.stat().st_size > 10_000

    workspace = load_workspace(data_dir)
    assert workspace is not None, "the embedded Tinybird Local kept no workspace.json"
    secret = workspace.admin_token
    assert secret.startswith("p.") and len(secret) > 20
    # Positive controls: the capture did see the page and its websocket traffic.
    assert "Top airlines by bookings" in html
    assert frames and any(b"Top airlines by bookings" in frame for frame in frames)
    assert secret not in html, "the signing token is in the page"
    leaked = [i for i, frame in enumerate(frames) if secret.encode() in frame]
    assert not leaked, f"the signing token is in websocket frames {leaked}"
    assert secret not in log_path.read_text(errors="replace"), "the signing token is in a log"
