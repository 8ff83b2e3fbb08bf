"""Deployments (`POST /v1/deploy`, `/v1/deployments`), posted as the Forward CLI posts them.

The body is multipart: one `data_project://` part per datafile, named by its path in the
project, plus a `context://` part. A check validates only; a deploy with
`auto_promote=true` goes live at once; without it the deployment waits for `set-live`.
"""

from __future__ import annotations

from pathlib import Path

import requests

from tests.support.servers import PROJECT_DIR

NEW_PIPE = """NODE count_routes
SQL >
    SELECT flight_from, count() AS bookings FROM events GROUP BY flight_from

TYPE endpoint
"""
NEW_DATASOURCE = """SCHEMA >
    `ts` DateTime `json:$.ts`,
    `comment` String `json:$.comment`

ENGINE "MergeTree"
ENGINE_SORTING_KEY "ts"
"""
BROKEN_PIPE = """NODE x
SQL >
    SELECT * FROM no_such_table
"""


def project_files(extra: dict[str, str] | None = None) -> dict[str, str]:
    files = {p.relative_to(PROJECT_DIR).as_posix(): p.read_text()
             for p in sorted(PROJECT_DIR.rglob("*")) if p.suffix in (".datasource", ".pipe")}
    files.update(extra or {})
    return files


def post_deploy(server, files: dict[str, str], token: str | None = None,
                **params: str) -> requests.Response:
    parts = [("context://", ("cli-version", "1.0.0", "text/plain"))]
    parts += [("data_project://", (name, text, "text/plain")) for name, text in files.items()]
    return requests.post(f"{server.url}/v1/deploy", params=params, files=parts, timeout=60,
                         headers={"Authorization": f"Bearer {token or server.admin_token}"})


def get(server, path: str) -> requests.Response:
    return requests.get(f"{server.url}{path}", headers=server.admin_headers(), timeout=30)


def pipe_names(server) -> set[str]:
    return {p["name"] for p in get(server, "/v0/pipes").json()["pipes"]}


NEW = {"pipes/route_count.pipe": NEW_PIPE, "datasources/feedback.datasource": NEW_DATASOURCE}


def test_check_of_a_broken_file_names_it_and_changes_nothing(server_factory):
    server = server_factory()
    before = pipe_names(server)
    response = post_deploy(server, project_files({**NEW, "pipes/broken.pipe": BROKEN_PIPE}),
                           check="true")
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["result"] == "failed"
    [error] = body["deployment"]["errors"]
    assert error["filename"] == "pipes/broken.pipe"
    assert "no_such_table" in error["error"]
    assert pipe_names(server) == before
    assert get(server, "/v1/deployments").json() == {"deployments": []}
    assert not (server.data_dir / "deployed").exists()


def test_unparsable_file_is_named_with_line_and_reason(server_factory):
    server = server_factory()
    response = post_deploy(server, project_files({"pipes/bad.pipe": "NODE x\nBOGUS 1\n"}))
    assert response.status_code == 400
    [error] = response.json()["deployment"]["errors"]
    assert error["filename"] == "pipes/bad.pipe"
    assert "unknown pipe setting BOGUS" in error["error"]


def test_check_of_a_valid_project_lists_changes_and_deploys_nothing(server_factory):
    server = server_factory()
    response = post_deploy(server, project_files(NEW), check="true")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] == "success"
    assert body["deployment"]["new_pipe_names"] == ["route_count"]
    assert body["deployment"]["new_datasource_names"] == ["feedback"]
    assert "route_count" not in pipe_names(server)
    assert post_deploy(server, project_files(), check="true").json()["result"] == "no_changes"


def test_schema_change_and_removed_data_source_are_refused(server_factory):
    server = server_factory()
    files = project_files()
    files["datasources/events.datasource"] = files["datasources/events.datasource"].replace(
        "`age` Int16", "`age` Int32")
    assert files != project_files()
    response = post_deploy(server, files, auto_promote="true")
    assert response.status_code == 400
    [error] = response.json()["deployment"]["errors"]
    assert error["filename"] == "datasources/events.datasource"
    assert "schema" in error["error"]
    assert post_deploy(server, project_files(NEW), auto_promote="true").status_code == 200
    response = post_deploy(server, project_files(), check="true")
    assert response.status_code == 400
    [error] = response.json()["deployment"]["errors"]
    assert error["filename"] == "feedback.datasource"
    assert "does not delete data sources" in error["error"]


def test_only_the_admin_token_deploys(server_factory):
    server = server_factory()
    read_token = server.workspace.tokens["top_airlines_read_static"].token
    response = post_deploy(server, project_files(NEW), token=read_token, check="true")
    assert response.status_code == 403


def test_deploy_serves_new_pipe_and_data_source_and_survives_restart(server_factory, tmp_path):
    server = server_factory()
    response = post_deploy(server, project_files(NEW), auto_promote="true")
    assert response.status_code == 200, response.text
    deployment = response.json()["deployment"]
    ident = deployment["id"]
    polled = get(server, f"/v1/deployments/{ident}").json()["deployment"]
    assert polled["status"] == "data_ready" and polled["live"] is True
    listing = get(server, "/v1/deployments").json()["deployments"]
    assert [d["id"] for d in listing] == [ident]
    endpoint = get(server, "/v0/pipes/route_count.json")
    assert endpoint.status_code == 200, endpoint.text
    appended = requests.post(f"{server.url}/v0/events", params={"name": "feedback"},
                             data='{"ts": "2024-01-01 00:00:00", "comment": "hi"}',
                             headers=server.admin_headers(), timeout=30)
    assert appended.status_code in (200, 202), appended.text
    assert server.count("feedback") == 1

    assert server.stop() == 0
    again = server_factory(project_dir=PROJECT_DIR, data_dir=server.data_dir)
    assert get(again, "/v0/pipes/route_count.json").status_code == 200
    assert again.count("feedback") == 1
    assert get(again, f"/v1/deployments/{ident}").json()["deployment"]["live"] is True


def test_staged_deployment_goes_live_with_set_live(server_factory):
    server = server_factory()
    first = post_deploy(server, project_files({"pipes/route_count.pipe": NEW_PIPE}),
                        auto_promote="true").json()["deployment"]["id"]
    second = post_deploy(server, project_files(NEW)).json()["deployment"]
    assert second["live"] is False and second["status"] == "data_ready"
    listing = [d["id"] for d in get(server, "/v1/deployments").json()["deployments"]]
    assert listing == [first, second["id"]]
    assert "feedback" not in {d["name"] for d in
                              get(server, "/v0/datasources").json()["datasources"]}
    promoted = requests.post(f"{server.url}/v1/deployments/{second['id']}/set-live",
                             headers=server.admin_headers(), timeout=60)
    assert promoted.status_code == 200, promoted.text
    assert get(server, f"/v1/deployments/{first}").json()["deployment"]["status"] == "deleted"
    assert "feedback" in {d["name"] for d in
                          get(server, "/v0/datasources").json()["datasources"]}
    assert get(server, "/v1/deployments/999").status_code == 404


def test_removed_pipe_is_no_longer_served(server_factory):
    server = server_factory()
    files = project_files()
    del files["pipes/airline_top_routes.pipe"]
    response = post_deploy(server, files, auto_promote="true")
    assert response.status_code == 200, response.text
    assert response.json()["deployment"]["deleted_pipe_names"] == ["airline_top_routes"]
    assert "airline_top_routes" not in pipe_names(server)
    assert get(server, "/v0/pipes/airline_top_routes.json").status_code == 404
    assert Path(server.data_dir / "deployed" / "pipes" / "top_airlines.pipe").exists()
