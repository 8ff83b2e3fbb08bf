"""App tests run isolated from the developer's settings and never start the embedded server."""

from __future__ import annotations

import pytest

from tests.support.apptest import SETTING_NAMES


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
    return env_dir
