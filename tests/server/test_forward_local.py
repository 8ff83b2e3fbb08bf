"""The Forward CLI's local mode (`tb --local ...`) against Tinybird Local, without Docker.

The CLI from PyPI runs in its cached venv with `TB_LOCAL_HOST` and `TB_LOCAL_PORT` on this
module's server, as a user points it at `python -m lib.tinybird_local serve`. It asks
`GET /tokens`, then works in a workspace named after the project's folder, which it
makes on first use. The project folder is outside any git repository, so the CLI does
not name the workspace after a git branch instead.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time

import pytest
import requests

from lib.client.tokens import mint_jwt
from lib.tinybird_local.api_local import is_loopback
from tests.server.test_api_deploy import NEW_PIPE
from tests.support.clients import client_venv, run
from tests.support.servers import PROJECT_DIR

pytestmark = pytest.mark.clients

QUIET = {"TB_CLI_TELEMETRY_OPTOUT": "1", "TB_VERSION_WARNING": "0"}
# The guide's top_airlines over an empty data source answers no rows: NDJSON "".
TESTS_YAML = """- name: no_bookings_no_airlines
  description: Nothing booked yet
  parameters: ''
  expected_result: ''

- name: a_date_that_is_not_one
  description: The parameter is named in the error
  parameters: date_from=yesterday
  expected_result: Error validating 'yesterday' to type DateTime (parameter 'date_from')
  expected_http_status: 400
"""
BOOKING = {"age": 30, "airline": "BrightSky", "email": "a@example.com", "extra_bags": 1,
           "flight_from": "MAD", "flight_to": "SFO", "meal_choice": "vegan", "name": "Ana",
           "passport_number": 1234, "priority_boarding": 0,
           "timestamp": "2024-05-01 10:00:00.000", "transaction_id": "t1"}


def tb(server, folder, *args: str):
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return run(client_venv("tinybird"), ["tb", "--local", *args], cwd=folder,
               extra_env={**QUIET, "TB_LOCAL_HOST": host, "TB_LOCAL_PORT": port}, timeout=180)


def ok(result) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return result.stdout


def local_tokens(server) -> dict:
    response = requests.get(f"{server.url}/tokens", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def user_workspaces(server) -> list[dict]:
    response = requests.get(f"{server.url}/v1/user/workspaces",
                            params={"with_organization": "true",
                                    "token": local_tokens(server)["admin_token"]}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["workspaces"]


def workspace_named(server, name: str) -> dict:
    found = [w for w in user_workspaces(server) if w["name"] == name]
    assert len(found) == 1, [w["name"] for w in user_workspaces(server)]
    return found[0]


def sql(server, token: str, q: str) -> requests.Response:
    return requests.get(f"{server.url}/v0/sql", params={"q": q, "token": token}, timeout=30)


def append(server, token: str, rows: list[dict]) -> None:
    body = "\n".join(json.dumps(row) for row in rows)
    response = requests.post(f"{server.url}/v0/events",
                             params={"name": "events", "wait": "true", "token": token},
                             data=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["successful_rows"] == len(rows)


def build_workspace_name(folder) -> str:
    """The CLI's name for the build workspace of a project folder."""
    return "Tinybird_Local_Build_" + hashlib.sha256(str(folder.resolve()).encode()).hexdigest()


def built_with_a_booking(server, folder) -> dict:
    """A copy of the project built into its own workspace, with one booking in it."""
    shutil.copytree(PROJECT_DIR, folder)
    ok(tb(server, folder, "build"))
    workspace = workspace_named(server, build_workspace_name(folder))
    append(server, workspace["token"], [BOOKING])
    return workspace


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    project = tmp_path_factory.mktemp("forward") / "project"
    shutil.copytree(PROJECT_DIR, project)
    (project / "tests").mkdir()
    (project / "tests" / "top_airlines.yaml").write_text(TESTS_YAML)
    return project.resolve()


@pytest.fixture(scope="module")
def built(server, folder):
    """`tb --local build` once; the build workspace as the user's listing shows it."""
    output = ok(tb(server, folder, "build"))
    assert "pipes/top_airlines.pipe created" in output
    assert "Build completed" in output
    return workspace_named(server, build_workspace_name(folder))


# -- GET /tokens ---------------------------------------------------------------------------
def test_tokens_answer_a_client_on_this_machine_without_a_token(server):
    tokens = local_tokens(server)
    assert tokens["workspace_admin_token"] == server.admin_token
    assert tokens["user_token"].startswith("p.") and tokens["admin_token"].startswith("p.")
    assert len({tokens["user_token"], tokens["admin_token"], server.admin_token}) == 3


def test_tokens_refuse_a_client_from_another_machine(server):
    # A proxy on this machine forwards a remote client: uvicorn trusts X-Forwarded-For
    # from loopback, so the server sees the remote address, as if it connected itself.
    response = requests.get(f"{server.url}/tokens",
                            headers={"X-Forwarded-For": "203.0.113.7"}, timeout=30)
    assert response.status_code == 403
    assert "only clients on this machine" in response.json()["error"]
    assert "p." not in response.text


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("192.0.2.2", False), ("::ffff:192.0.2.2", False), ("fd00::2", False), ("testclient", False),
    ("", False), (None, False)])
def test_only_loopback_addresses_are_this_machine(host, expected):
    assert is_loopback(host) is expected


# -- the CLI's commands --------------------------------------------------------------------
def test_build_makes_a_workspace_named_after_the_project_folder(server, folder, built):
    assert built["id"] != server.workspace.workspace_id
    assert built["token"] != server.admin_token
    assert server.workspace.name in {w["name"] for w in user_workspaces(server)}
    assert "No changes" in ok(tb(server, folder, "build"))
    # The default workspace (the dashboard's) is left as it was.
    assert requests.get(f"{server.url}/v0/workspace", params={"token": server.admin_token},
                        timeout=30).json()["id"] == server.workspace.workspace_id


def test_endpoint_ls_lists_the_build_workspace_pipes_with_their_urls(server, folder, built):
    output = ok(tb(server, folder, "endpoint", "ls"))
    assert "name: top_airlines" in output
    assert f"url: {server.url}/v0/pipes/top_airlines.json?token=p." in output


def test_endpoint_data_and_sql_read_the_build_workspace_rows(server, folder, built):
    append(server, built["token"], [BOOKING, {**BOOKING, "transaction_id": "t2"}])
    data = ok(tb(server, folder, "endpoint", "data", "top_airlines"))
    assert "BrightSky" in data
    counted = ok(tb(server, folder, "sql", "SELECT count() AS n FROM events"))
    assert "2" in counted.split("UInt64", 1)[1]
    # The rows went to the build workspace only.
    assert sql(server, server.admin_token, "SELECT count() AS n FROM events").json()[
        "data"] == [{"n": 0}]


def test_token_ls_lists_the_build_workspace_own_tokens(server, folder, built):
    output = ok(tb(server, folder, "token", "ls"))
    assert "name: admin token" in output and "name: top_airlines_read_static" in output
    assert built["token"] in output
    assert server.admin_token not in output
    assert server.workspace.tokens["top_airlines_read_static"].token not in output


def test_deploy_makes_a_new_pipe_live_in_the_build_workspace_only(server, folder, built):
    (folder / "pipes" / "route_count.pipe").write_text(NEW_PIPE)
    try:
        output = ok(tb(server, folder, "deploy"))
        assert "is live!" in output
    finally:
        (folder / "pipes" / "route_count.pipe").unlink()

    def status(token):
        return requests.get(f"{server.url}/v0/pipes/route_count.json", params={"token": token},
                            timeout=30).status_code

    assert status(built["token"]) == 200
    assert status(server.admin_token) == 404


def test_test_run_passes_and_names_a_failing_expectation(server, folder, built):
    output = ok(tb(server, folder, "test", "run"))
    assert "no_bookings_no_airlines passed" in output
    assert "a_date_that_is_not_one passed" in output
    assert "1/1 passed" in output  # one test file

    wrong = folder / "tests" / "top_airlines.yaml"
    wrong.write_text(TESTS_YAML.replace("expected_result: ''", "expected_result: 'nope'"))
    try:
        failed = tb(server, folder, "test", "run")
    finally:
        wrong.write_text(TESTS_YAML)
    assert failed.returncode != 0
    assert "no_bookings_no_airlines failed" in failed.stdout + failed.stderr


# -- the workspaces API and isolation ------------------------------------------------------
def user_request(server, method: str, path: str, token: str | None = "user", **params):
    if token == "user":
        token = local_tokens(server)["user_token"]
    if token is not None:
        params["token"] = token
    return requests.request(method, f"{server.url}{path}", params=params, timeout=60)


@pytest.fixture
def other(server):
    """A workspace made through the API, deleted after the test if still there."""
    response = user_request(server, "POST", "/v1/workspaces", name="isolation_probe")
    assert response.status_code == 200, response.text
    made = response.json()
    yield made
    user_request(server, "DELETE", f"/v1/workspaces/{made['id']}",
                 hard_delete_confirmation="yes")


def test_a_new_workspace_has_its_own_id_and_token_and_nothing_in_it(server, other):
    assert other["name"] == "isolation_probe"
    assert other["id"] != server.workspace.workspace_id
    assert workspace_named(server, "isolation_probe")["token"] == other["token"]
    pipes = requests.get(f"{server.url}/v0/pipes", params={"token": other["token"]},
                         timeout=30)
    assert pipes.status_code == 200 and pipes.json()["pipes"] == []


def test_a_workspace_token_cannot_reach_another_workspace(server, built, other):
    token = other["token"]
    assert requests.get(f"{server.url}/v0/pipes/top_airlines.json", params={"token": token},
                        timeout=30).status_code == 404
    assert requests.get(f"{server.url}/v0/datasources/events", params={"token": token},
                        timeout=30).status_code == 404
    build_db = "ws_" + built["id"].replace("-", "")
    for q in ("SELECT count() FROM events", "SELECT count() FROM default.events",
              f"SELECT count() FROM {build_db}.events",
              "SELECT count() FROM tinybird.pipe_stats_rt"):
        refused = sql(server, token, q)
        assert refused.status_code == 400, (q, refused.text)
    # ...and the other way round: the default workspace cannot read a build workspace.
    refused = sql(server, server.admin_token, f"SELECT count() FROM {build_db}.events")
    assert refused.status_code == 400 and "not found" in refused.json()["error"]
    # A token of one workspace is not a token of another.
    assert requests.get(f"{server.url}/v0/tokens", params={"token": built["token"]},
                        timeout=30).json()["tokens"][0]["token"] == built["token"]


def test_a_jwt_goes_to_the_workspace_that_signed_it(server, built, other):
    response = requests.post(
        f"{server.url}/v0/tokens",
        params={"name": "reader", "expiration_time": int(time.time()) + 600,
                "token": built["token"]},
        json={"scopes": [{"type": "PIPES:READ", "resource": "top_airlines"}]}, timeout=30)
    assert response.status_code == 200, response.text
    build_jwt = response.json()["token"]

    def read(token):
        return requests.get(f"{server.url}/v0/pipes/top_airlines.json",
                            params={"token": token}, timeout=30)

    assert read(build_jwt).status_code == 200
    assert read(server.jwt()).status_code == 200  # the default workspace's, as before
    # Signed with the default workspace's key but naming another workspace: that one
    # checks the signature with its own key and refuses it.
    forged = mint_jwt(server.admin_token, other["id"], "top_airlines")
    refused = read(forged)
    assert refused.status_code == 403 and "Signature" in refused.json()["error"]


def test_a_workspace_admin_token_lists_its_own_workspace_only(server, built, other):
    response = requests.get(f"{server.url}/v1/user/workspaces/",
                            params={"token": other["token"]}, timeout=30)
    assert response.status_code == 200, response.text
    assert [w["id"] for w in response.json()["workspaces"]] == [other["id"]]
    read_only = server.workspace.tokens["top_airlines_read_static"].token
    assert requests.get(f"{server.url}/v1/user/workspaces", params={"token": read_only},
                        timeout=30).status_code == 403


def test_creating_a_workspace_needs_the_user_token_and_a_valid_new_name(server, built):
    refused = user_request(server, "POST", "/v1/workspaces", token=server.admin_token,
                           name="by_the_workspace_admin")
    assert refused.status_code == 403 and "user token" in refused.json()["error"]
    assert user_request(server, "POST", "/v1/workspaces", token=None,
                        name="anonymous").status_code == 403
    for name in ("", "9starts_with_a_digit", "has-dash", "x" * 129):
        bad = user_request(server, "POST", "/v1/workspaces", name=name)
        assert bad.status_code == 400 and "'name'" in bad.json()["error"], name
    taken = user_request(server, "POST", "/v1/workspaces", name=built["name"])
    assert taken.status_code == 400 and "already taken" in taken.json()["error"]


def test_deleting_a_workspace_removes_its_tokens_and_tables(server, other):
    path = f"/v1/workspaces/{other['id']}"
    unconfirmed = user_request(server, "DELETE", path)
    assert unconfirmed.status_code == 400
    assert "hard_delete_confirmation" in unconfirmed.json()["error"]
    default = user_request(server, "DELETE", f"/v1/workspaces/{server.workspace.workspace_id}",
                           hard_delete_confirmation="yes")
    assert default.status_code == 400 and "default workspace" in default.json()["error"]
    assert user_request(server, "DELETE", "/v1/workspaces/no-such-id",
                        hard_delete_confirmation="yes").status_code == 404

    database = server.data_dir / "chdb" / "metadata" / f"ws_{other['id'].replace('-', '')}.sql"
    folder = server.data_dir / "workspaces" / other["id"]
    assert database.exists() and folder.is_dir()
    deleted = user_request(server, "DELETE", path, hard_delete_confirmation="yes")
    assert deleted.status_code == 200, deleted.text
    assert not database.exists() and not folder.exists()
    assert "isolation_probe" not in {w["name"] for w in user_workspaces(server)}
    gone = requests.get(f"{server.url}/v0/pipes", params={"token": other["token"]}, timeout=30)
    assert gone.status_code == 403
    assert server.sql("SELECT count() AS n FROM numbers(1)")["data"] == [{"n": 1}]


def test_a_build_workspace_keeps_its_id_tokens_and_rows_across_a_restart(server_factory,
                                                                         tmp_path):
    first = server_factory()
    folder = tmp_path / "restart_project"
    before = built_with_a_booking(first, folder)
    name = before["name"]
    tokens = local_tokens(first)
    assert first.stop() == 0

    second = server_factory(data_dir=first.data_dir)
    assert local_tokens(second) == tokens
    assert workspace_named(second, name) == before
    assert "BrightSky" in ok(tb(second, folder, "endpoint", "data", "top_airlines"))
    assert "No changes" in ok(tb(second, folder, "build"))


def test_a_workspace_that_cannot_open_does_not_stop_the_server(server_factory):
    first = server_factory()
    made = user_request(first, "POST", "/v1/workspaces", name="soon_broken").json()
    assert first.stop() == 0
    broken = first.data_dir / "workspaces" / made["id"] / "deployed" / "pipes" / "bad.pipe"
    broken.parent.mkdir(parents=True)
    broken.write_text("NODE n\nSQL >\n    SELECT 1 AS x\nTYPE MATERIALIZED\n"
                      "DATASOURCE nowhere_at_all\n")

    second = server_factory(data_dir=first.data_dir)
    assert second.workspace.workspace_id == first.workspace.workspace_id
    assert "soon_broken" not in {w["name"] for w in user_workspaces(second)}
    assert f"workspace soon_broken ({made['id']}) not opened" in second.log()
    assert second.admin_token not in second.log()


def test_a_build_that_changes_a_schema_starts_the_build_workspace_over(server, tmp_path):
    folder = tmp_path / "schema_change"
    before = built_with_a_booking(server, folder)
    name = before["name"]
    schema = folder / "datasources" / "events.datasource"
    schema.write_text(schema.read_text().replace(
        "    `transaction_id` String `json:$.transaction_id`",
        "    `transaction_id` String `json:$.transaction_id`,\n    `seat` String `json:$.seat`"))

    output = ok(tb(server, folder, "build"))
    assert "datasources/events.datasource" in output and "Build completed" in output
    assert workspace_named(server, name) == before  # same id and token
    described = sql(server, before["token"], "DESCRIBE events").json()["data"]
    assert "seat" in {column["name"] for column in described}
    assert sql(server, before["token"], "SELECT count() AS n FROM events").json()[
        "data"] == [{"n": 0}]
    assert "BrightSky" not in ok(tb(server, folder, "endpoint", "data", "top_airlines"))


def test_the_default_workspace_refuses_a_build_it_would_have_to_start_over(server):
    text = (PROJECT_DIR / "datasources" / "events.datasource").read_text().replace(
        "`age` Int16", "`age` Int32")
    response = requests.post(f"{server.url}/v1/build", headers=server.admin_headers(),
                             files=[("data_project://", ("datasources/events.datasource",
                                                         text, "text/plain"))], timeout=60)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["result"] == "failed"
    assert any("schema" in e["error"] for e in body["errors"])
    assert "top_airlines" in requests.get(f"{server.url}/v0/pipes",
                                          headers=server.admin_headers(),
                                          timeout=30).text


def test_datasource_append_lands_events_and_a_file_in_the_build_workspace(server, tmp_path):
    folder = tmp_path / "append_project"
    workspace = built_with_a_booking(server, folder)
    ok(tb(server, folder, "datasource", "append", "events", "--events",
          json.dumps({**BOOKING, "transaction_id": "t2"})))
    rows = folder / "bookings.ndjson"
    rows.write_text(json.dumps({**BOOKING, "transaction_id": "t3"}) + "\n")
    ok(tb(server, folder, "datasource", "append", "events", "--file", str(rows)))
    assert sql(server, workspace["token"], "SELECT count() AS n FROM events").json()[
        "data"] == [{"n": 3}]
