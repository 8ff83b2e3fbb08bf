"""What the browser tests share: Debian's Chromium, and `streamlit run` on the embedded
default in a clean environment. A support module, so test files import it without pulling
in each other's tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.servers import ROOT

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REFRESH_SECONDS = 1
SKIP_WITHOUT_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium); "
    "playwright drives it, never its own")


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


@contextlib.contextmanager
def running_streamlit(base: Path, env: dict[str, str], secrets: Path | None = None,
                      port: int | None = None) -> Iterator[tuple[str, Path]]:
    """`streamlit run streamlit_app.py` headless on a free port; yields (url, log path).

    `secrets` is the secrets file it reads (by default none: not the developer's).
    """
    port = port or free_port()
    log_path = base / "streamlit.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
             "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             # no .streamlit/secrets.toml of the developer's either
             "--secrets.files", str(secrets or base / "no-secrets.toml")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log_path)
        yield url, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
