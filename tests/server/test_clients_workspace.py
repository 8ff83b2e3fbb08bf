"""Tinybird's own CLIs and SDKs against Tinybird Local, driven as a user drives them.

Each client is installed from PyPI into a cached venv (tests/support/clients.py; the first
run installs them, about two minutes in all). One test per command. HOME is the test's
folder, so `tb auth` writes its `.tinyb` there and nothing of the developer's leaks in.
"""

from __future__ import annotations

import json

import pytest

from tests.support.clients import client_venv, python, run

pytestmark = pytest.mark.clients

SERVER_SEED_ROWS, SERVER_SEED = 200, 3
# No telemetry to Tinybird, no PyPI version check: the CLI talks to our server only.
QUIET = {"TB_CLI_TELEMETRY_OPTOUT": "1", "TB_VERSION_WARNING": "0"}

BOOKING = {"age": 41, "airline": "CliAir", "email": "c@example.com", "extra_bags": 1,
           "flight_from": "MAD", "flight_to": "LHR", "meal_choice": "vegan", "name": "C",
           "passport_number": 77, "priority_boarding": 1,
           "timestamp": "2024-06-01T12:00:00.000Z", "transaction_id": "cli-1"}


def env_for(server) -> dict[str, str]:
    return {**QUIET, "TB_HOST": server.url, "TB_TOKEN": server.admin_token}


def ok(result) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def airline_count(server, airline: str) -> int:
    return server.count(f"events WHERE airline = '{airline}'")


# -- classic `tb` (tinybird-cli 6.5.5) -----------------------------------------------------
def test_classic_tb_auth_with_host_and_token(server, tmp_path):
    env = client_venv("tinybird-cli")
    out = ok(run(env, ["tb", "auth", "--host", server.url, "--token", server.admin_token],
                 cwd=tmp_path, extra_env=QUIET))
    assert "Auth successful" in out
    assert "not an admin token" not in out
    config = json.loads((tmp_path / ".tinyb").read_text())
    assert config["id"] == server.workspace.workspace_id
    assert config["host"] == server.url


def test_classic_tb_datasource_ls(server, tmp_path):
    env = client_venv("tinybird-cli")
    out = ok(run(env, ["tb", "datasource", "ls", "--format", "json"], cwd=tmp_path,
                 extra_env=env_for(server)))
    listing = json.loads(out[out.index("{"):])["datasources"]
    assert {d["name"] for d in listing} >= {"events", "airline_bookings_totals"}
    events = next(d for d in listing if d["name"] == "events")
    assert events["row_count"] >= SERVER_SEED_ROWS


def test_classic_tb_pipe_ls(server, tmp_path):
    env = client_venv("tinybird-cli")
    out = ok(run(env, ["tb", "pipe", "ls", "--format", "json"], cwd=tmp_path,
                 extra_env=env_for(server)))
    pipes = json.loads(out[out.index("{"):])["pipes"]
    assert {p["name"] for p in pipes} >= {"top_airlines", "airline_bookings_totals_mv"}
    assert all(p["nodes"] == 1 for p in pipes)


def test_classic_tb_datasource_append_ndjson(server, tmp_path):
    env = client_venv("tinybird-cli")
    rows = [{**BOOKING, "airline": "NdjsonCli", "transaction_id": f"n{i}"} for i in range(3)]
    path = tmp_path / "bookings.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = ok(run(env, ["tb", "datasource", "append", "events", str(path)], cwd=tmp_path,
                 extra_env=env_for(server)))
    assert "Appended 3 new rows" in out
    assert airline_count(server, "NdjsonCli") == 3


def test_classic_tb_datasource_append_csv(server, tmp_path):
    env = client_venv("tinybird-cli")
    header = ",".join(BOOKING)
    lines = [",".join(str({**BOOKING, "airline": "CsvCli"}[k]) for k in BOOKING)
             for _ in range(2)]
    path = tmp_path / "bookings.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    out = ok(run(env, ["tb", "datasource", "append", "events", str(path)], cwd=tmp_path,
                 extra_env=env_for(server)))
    assert "Appended 2 new rows" in out
    assert airline_count(server, "CsvCli") == 2


# -- Forward `tb` (tinybird 5.0.3) ---------------------------------------------------------
def test_forward_tb_datasource_ls(server, tmp_path):
    env = client_venv("tinybird")
    out = ok(run(env, ["tb", "--cloud", "datasource", "ls"], cwd=tmp_path,
                 extra_env=env_for(server)))
    assert "events" in out and "airline_meal_buckets" in out


def test_forward_tb_pipe_ls(server, tmp_path):
    env = client_venv("tinybird")
    out = ok(run(env, ["tb", "--cloud", "pipe", "ls"], cwd=tmp_path,
                 extra_env=env_for(server)))
    assert "top_airlines" in out and "materialized" in out


def test_forward_tb_endpoint_ls(server, tmp_path):
    env = client_venv("tinybird")
    out = ok(run(env, ["tb", "--cloud", "endpoint", "ls"], cwd=tmp_path,
                 extra_env=env_for(server)))
    assert "top_airlines" in out and "airline_bookings_totals_mv" not in out


# -- SDKs --------------------------------------------------------------------------------
def run_python(env, code: str, tmp_path) -> str:
    return ok(run(env, [str(python(env)), "-c", code], cwd=tmp_path))


def test_verdin_datasource_append_ndjson_and_csv(server, tmp_path):
    env = client_venv("verdin")
    code = f"""
import json
from verdin import tinybird
client = tinybird.Client({server.admin_token!r}, api={server.url!r})
ds = client.datasource("events")
row = {json.dumps({**BOOKING, "airline": "VerdinAir"})}
r1 = ds.append_ndjson([row, dict(row, transaction_id="v2")])
r2 = ds.append_csv([[row[k] for k in row]])
print(json.dumps([r1.status_code, r2.status_code, r1.json()["quarantine_rows"]]))
"""
    assert json.loads(run_python(env, code, tmp_path).strip().splitlines()[-1]) == [200, 200, 0]
    assert airline_count(server, "VerdinAir") == 3


def test_tinybird_sdk_append_file(server, tmp_path):
    env = client_venv("tinybird-sdk")
    path = tmp_path / "bookings.ndjson"
    path.write_text(json.dumps({**BOOKING, "airline": "SdkAir"}) + "\n")
    code = f"""
import json
from tinybird_sdk import TinybirdClient
client = TinybirdClient({{"base_url": {server.url!r}, "token": {server.admin_token!r}}})
result = client.datasources.append("events", {{"file": {str(path)!r}}})
print(json.dumps([result["datasource"]["name"], result["quarantine_rows"]]))
"""
    assert json.loads(run_python(env, code, tmp_path).strip().splitlines()[-1]) == ["events", 0]
    assert airline_count(server, "SdkAir") == 1
