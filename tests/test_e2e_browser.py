"""End to end: `streamlit run` on the embedded default, driven by Debian's Chromium.

With no Tinybird settings the app starts Tinybird Local in its own process (a temporary
data dir), seeds it and polls it with JWTs. The browser must see a chart whose latency
line updates on its own, and must never receive the workspace admin token: not in the
page, not in any websocket frame (and the server's log must not hold it either).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from lib.tinybird_local.workspace import load_workspace

from .conftest import ROOT

CHROMIUM = shutil.which("chromium")
REFRESH_SECONDS = 1
START_TIMEOUT_MS = 90_000
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LATENCY_JS = """() => {
    const el = [...document.querySelectorAll('[data-testid="stMarkdownContainer"] p')]
        .find(p => p.textContent.startsWith('Latency:'));
    return el ? el.textContent : null;
}"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                       "(apt-get install -y chromium); playwright drives it, never its own"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_env(tmp_path: Path, data_dir: Path) -> dict[str, str]:
    """The real environment minus every Tinybird setting: the embedded default."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TINYBIRD_", "NEXT_PUBLIC_TINYBIRD", "STREAMLIT_"))}
    env_dir = tmp_path / "env"  # an empty dir: no developer .env file can interfere
    env_dir.mkdir()
    env.update(TINYBIRD_LOCAL_DATA_DIR=str(data_dir), TINYBIRD_ENV_DIR=str(env_dir),
               TINYBIRD_REFRESH_SECONDS=str(REFRESH_SECONDS), PYTHONUNBUFFERED="1")
    return env


def wait_healthy(url: str, process: subprocess.Popen, log_path: Path,
                 timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)  # polling interval, not a guess at how long start-up takes
    pytest.fail(f"streamlit was not healthy within {timeout} s:\n{log_path.read_text()}")


@pytest.fixture
def dashboard(tmp_path):
    """`streamlit run streamlit_app.py` headless on a free port; yields (url, data dir)."""
    data_dir = tmp_path / "tinybird-local"
    port = free_port()
    log_path = tmp_path / "streamlit.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
             "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             # no .streamlit/secrets.toml of the developer's either
             "--secrets.files", str(tmp_path / "no-secrets.toml")],
            cwd=ROOT, env=clean_env(tmp_path, data_dir), stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log_path)
        yield url, data_dir, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_dashboard_in_chromium_updates_and_never_sees_the_signing_token(dashboard, tmp_path):
    from playwright.sync_api import sync_playwright

    url, data_dir, log_path = dashboard
    frames: list[bytes] = []

    def on_websocket(ws) -> None:
        def keep(payload: str | bytes) -> None:
            frames.append(payload.encode() if isinstance(payload, str) else payload)

        ws.on("framereceived", keep)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
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
        finally:
            browser.close()

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
