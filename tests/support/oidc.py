"""A real OpenID Connect provider for the login tests: `oidc-provider-mock` from PyPI.

It serves discovery, JWKS, the authorization-code flow with a login form, and an
end-session page, in its own process on a free loopback port. Its users and their claims
are set over its HTTP API (`PUT /users/{sub}`); `log_in` goes through Streamlit's own
`/auth/login` and `/oauth2callback` in the browser, as a person does.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.support.browser import free_port

CLIENT_ID = "top-airlines-tests"
CLIENT_SECRET = "any-secret-the-mock-accepts"


@contextlib.contextmanager
def running_provider(base: Path) -> Iterator[str]:
    """The provider on a free port; yields its issuer URL."""
    port = free_port()
    log_path = base / "oidc-provider.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1",
             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the OIDC provider exited:\n{log_path.read_text()}")
            try:
                if requests.get(f"{url}/.well-known/openid-configuration",
                                timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the OIDC provider did not start:\n{log_path.read_text()}")
            time.sleep(0.1)  # polling interval, not a guess at how long start-up takes
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def set_user(provider: str, sub: str, **claims: object) -> None:
    """The claims the provider puts in `sub`'s ID token (email scope: email, email_verified)."""
    response = requests.put(f"{provider}/users/{quote(sub)}", json=claims, timeout=5)
    assert response.status_code == 204, response.text


def auth_secrets(app_url: str, provider: str, cookie_secret: str) -> str:
    """The `[auth]` section of secrets.toml for this provider, as a README reader writes it."""
    return (f'[auth]\nredirect_uri = "{app_url}/oauth2callback"\n'
            f'cookie_secret = "{cookie_secret}"\nclient_id = "{CLIENT_ID}"\n'
            f'client_secret = "{CLIENT_SECRET}"\n'
            f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n')


def log_in(page, app_url: str, sub: str, timeout: float = 90_000) -> None:
    """Log in as `sub` through the app's login button and the provider's form."""
    page.goto(f"{app_url}/")
    page.get_by_role("button", name="Log in").click(timeout=timeout)
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{app_url}/**", timeout=15_000)  # back through /oauth2callback
