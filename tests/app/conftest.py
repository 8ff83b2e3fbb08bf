"""App tests run isolated from the developer's settings and never start the embedded server."""

from __future__ import annotations

import pytest
import streamlit as st

from lib.ui.page import shared_fetches
from tests.support.apptest import SETTING_NAMES
from tests.support.clock import FakeClock


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No setting from the real environment or .env files; no embedded server, ever."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    monkeypatch.setenv("TINYBIRD_ENV_DIR", str(env_dir))

    def refuse(*args, **kwargs):
        raise AssertionError("the app test tried to start the embedded Tinybird Local")

    import lib.ui.embedded as embedded

    monkeypatch.setattr(embedded, "start_embedded", refuse)
    # Answers shared between viewers live as long as the process: each test starts clean.
    st.cache_resource.clear()
    return env_dir


@pytest.fixture
def fetch_clock():
    """The clock of the answers viewers share, moved by hand: `advance(5)` is one interval.

    Each AppTest run is one poll; without moving this clock, polls within the refresh
    interval are (rightly) served the answer already fetched.
    """
    clock = FakeClock()
    shared_fetches().clock = clock
    return clock
