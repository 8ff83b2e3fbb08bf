"""Tinybird's own CLIs and SDKs against the Tokens API, /v0/sql and the service logs.

Each client runs from its own venv (`tests/support/clients.py`), as a user runs it:
the classic `tb` with TB_HOST/TB_TOKEN or after `tb auth`, verdin's token listing,
tinybird-sdk's JWT creation (and that JWT reading top_airlines), and `tb sql` with a
token that is not the admin token.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.support.clients import client_venv, python, run

pytestmark = pytest.mark.clients

SERVER_SEED_ROWS, SERVER_SEED = 1500, 17


def tb_env(server, token=None):
    return {"TB_HOST": server.url, "TB_TOKEN": token or server.admin_token}


def test_classic_tb_token_ls_with_env(server, tmp_path):
    env = client_venv("tinybird-cli")
    result = run(env, ["tb", "token", "ls"], cwd=tmp_path, extra_env=tb_env(server))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "top_airlines_read_static" in result.stdout
    assert "admin token" in result.stdout
    assert server.admin_token not in result.stdout + result.stderr


def test_classic_tb_auth_then_token_commands(server, tmp_path):
    env = client_venv("tinybird-cli")
    auth = run(env, ["tb", "auth", "--host", server.url, "--token", server.admin_token],
               cwd=tmp_path)
    assert auth.returncode == 0, auth.stdout + auth.stderr
    assert "not an admin token" not in auth.stdout
    created = requests.post(f"{server.url}/v0/tokens",
                            params=[("name", "cli_made"), ("scope", "PIPES:READ:top_airlines")],
                            headers=server.admin_headers(), timeout=30).json()
    scopes = run(env, ["tb", "token", "scopes", "cli_made"], cwd=tmp_path)
    assert scopes.returncode == 0, scopes.stdout + scopes.stderr
    assert "PIPES:READ" in scopes.stdout and "top_airlines" in scopes.stdout
    refreshed = run(env, ["tb", "token", "refresh", "cli_made", "--yes"], cwd=tmp_path)
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    assert server.workspace.tokens["cli_made"].token != created["token"]
    removed = run(env, ["tb", "token", "rm", "cli_made", "--yes"], cwd=tmp_path)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "cli_made" not in server.workspace.tokens
    listing = run(env, ["tb", "token", "ls"], cwd=tmp_path)
    assert "cli_made" not in listing.stdout and "top_airlines_read_static" in listing.stdout


def test_classic_tb_sql_with_a_non_admin_token(server, tmp_path):
    env = client_venv("tinybird-cli")
    static = server.workspace.tokens["top_airlines_read_static"].token
    ok = run(env, ["tb", "sql", "SELECT sum(bookings) AS total FROM top_airlines",
                   "--format", "json"], cwd=tmp_path, extra_env=tb_env(server, static))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout[ok.stdout.index("{"):])["data"][0]["total"] == 1500
    refused = run(env, ["tb", "sql", "SELECT count() FROM events"], cwd=tmp_path,
                  extra_env=tb_env(server, static))
    assert refused.returncode != 0
    assert "doesn't have access to this resource" in refused.stdout + refused.stderr


VERDIN_LIST = """
import json, sys
from verdin.api.tokens import TokensApi
api = TokensApi(sys.argv[2], sys.argv[1])
tokens = api.list().tokens
info = api.get_information("top_airlines_read_static").info
print(json.dumps({"names": sorted(t["name"] for t in tokens), "scopes": info["scopes"]}))
"""


def verdin_venv(tmp_path):
    """verdin 0.5.3 imports `requests` without declaring it: a user installs it too."""
    env = client_venv("verdin")
    if run(env, [str(python(env)), "-c", "import requests"], cwd=tmp_path).returncode != 0:
        installed = run(env, [str(python(env)), "-m", "pip", "install", "-q",
                              "--disable-pip-version-check", "requests"], cwd=tmp_path,
                        timeout=600)
        assert installed.returncode == 0, installed.stderr[-2000:]
    return env


def test_verdin_lists_tokens(server, tmp_path):
    env = verdin_venv(tmp_path)
    result = run(env, [str(python(env)), "-c", VERDIN_LIST, server.url, server.admin_token],
                 cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    body = json.loads(result.stdout)
    assert {"admin token", "top_airlines_read_static"} <= set(body["names"])
    assert body["scopes"] == [{"type": "PIPES:READ", "resource": "top_airlines", "filter": ""}]


SDK_JWT = """
import json, sys, time
from tinybird_sdk import create_jwt
token = create_jwt({"base_url": sys.argv[1], "token": sys.argv[2]}, {
    "name": "sdk_dashboard", "expires_at": int(time.time()) + 600,
    "scopes": [{"type": "PIPES:READ", "resource": "top_airlines",
                "fixed_params": {"meal_choice": "vegan"}}],
})["token"]
print(token)
"""


def test_tinybird_sdk_creates_a_jwt_that_reads_top_airlines(server, tmp_path):
    env = client_venv("tinybird-sdk")
    result = run(env, [str(python(env)), "-c", SDK_JWT, server.url, server.admin_token],
                 cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    token = result.stdout.strip().splitlines()[-1]
    response = requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                            params={"token": token}, timeout=30)
    assert response.status_code == 200, response.text
    vegan = server.sql("SELECT count() AS n FROM events WHERE meal_choice = 'vegan'")
    assert sum(r["bookings"] for r in response.json()["data"]) == vegan["data"][0]["n"]
    # The request is in the service log under the JWT's name.
    rows = server.sql("SELECT count() AS n FROM tinybird.pipe_stats_rt "
                      "WHERE token_name = 'sdk_dashboard' AND status_code = 200")
    assert rows["data"][0]["n"] == 1
