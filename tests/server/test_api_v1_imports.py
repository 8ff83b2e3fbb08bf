"""`POST /v1/datasources/NAME/append|replace` and the Jobs API the Forward CLI polls.

Plain HTTP first, shaped as the Forward CLI sends it (see api_jobs.py); then the CLI
itself from PyPI, `tb --cloud datasource append` with `--events` and with a file.
"""

from __future__ import annotations

import gzip

import pytest
import requests

from tests.server.test_api_datasources import (
    airline_count,
    assert_error,
    booking,
    csv_text,
    ndjson,
    totals,
)
from tests.support.clients import client_venv, run

QUIET = {"TB_CLI_TELEMETRY_OPTOUT": "1", "TB_VERSION_WARNING": "0"}


def v1(server, name: str, body: bytes, fmt: str, mode: str = "append", token: str | None = None,
       **headers: str) -> requests.Response:
    content_types = {"csv": "text/csv", "ndjson": "application/x-ndjson"}
    auth = {"Authorization": f"Bearer {token or server.admin_token}"}
    return requests.post(f"{server.url}/v1/datasources/{name}/{mode}", params={"format": fmt},
                         data=body, timeout=60,
                         headers={**auth, "Content-Type": content_types.get(fmt, "x"),
                                  **headers})


def job(server, job_id: str, token: str | None = None) -> requests.Response:
    return requests.get(f"{server.url}/v0/jobs/{job_id}", params={"debug": "blocks,block_log"},
                        headers={"Authorization": f"Bearer {token or server.admin_token}"},
                        timeout=30)


def append_token(server, name: str) -> str:
    response = requests.post(f"{server.url}/v0/tokens", headers=server.admin_headers(),
                             params={"name": name, "scope": "DATASOURCES:APPEND:events"},
                             timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def test_v1_append_ndjson_answers_a_done_job_that_get_job_shows(server):
    rows = [booking(i, "V1Air") for i in range(4)] + [{"airline": "V1Air", "age": "old"}]
    response = v1(server, "events", ndjson(rows), "ndjson")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == body["job_id"] == body["import_id"]
    assert body["status"] == "done" and body["kind"] == "import"
    assert body["job_url"] == f"{server.url}/v0/jobs/{body['id']}"
    assert airline_count(server, "V1Air") == 4
    assert airline_count(server, "V1Air", "events_quarantine") == 1
    assert totals(server, "V1Air") == 4

    polled = job(server, body["id"])
    assert polled.status_code == 200, polled.text
    polled_body = polled.json()
    assert polled_body["status"] == "done"
    assert polled_body["datasource"]["name"] == "events"
    returns = [r for b in polled_body["blocks"] for r in b["process_return"]]
    assert sum(r["lines"] for r in returns) == 4
    assert sum(r["quarantine"] for r in returns) == 1
    listed = requests.get(f"{server.url}/v0/jobs", params={"kind": "import"},
                          headers=server.admin_headers(), timeout=30).json()["jobs"]
    assert listed[0]["id"] == body["id"]
    assert {"id", "kind", "status", "created_at", "updated_at", "job_url"} <= set(listed[0])


def test_v1_append_gzip_csv_with_an_append_token(server):
    token = append_token(server, "v1_writer")
    data = gzip.compress(csv_text([booking(i, "GzAir") for i in range(3)]))
    response = v1(server, "events", data, "csv", token=token, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert airline_count(server, "GzAir") == 3
    # The token that started the job may follow it; a token without APPEND may not.
    assert job(server, response.json()["id"], token).status_code == 200
    static = server.workspace.tokens["top_airlines_read_static"].token
    assert_error(job(server, response.json()["id"], static), 403, "doesn't have access")


def test_v1_refusals_are_tinybirds_errors_and_write_nothing(server):
    static = server.workspace.tokens["top_airlines_read_static"].token
    before = server.count("events")
    body = ndjson([booking(1, "NoAir")])
    assert_error(v1(server, "events", body, "ndjson", token=static), 403,
                 "lacks APPEND on Data Source 'events'")
    assert_error(v1(server, "no_such", body, "ndjson"), 404, "'no_such' not found")
    assert_error(v1(server, "events", b"", "ndjson"), 400, "No data to import")
    assert_error(v1(server, "events", body, "xml"), 400, "Format 'xml'")
    assert_error(v1(server, "events", b"\x1f\x8b\x08broken", "ndjson"), 400, "gzip")
    response = requests.post(f"{server.url}/v1/datasources/events/upsert", data=body,
                             headers=server.admin_headers(), timeout=30)
    assert_error(response, 404, "Not Found")
    assert server.count("events") == before
    assert_error(job(server, "no-such-job"), 404, "Job with id 'no-such-job' not found")
    response = requests.get(f"{server.url}/v0/jobs", params={"token": static}, timeout=30)
    assert_error(response, 403, "doesn't have access")


def test_v1_replace_swaps_the_rows(server_factory):
    running = server_factory()
    running.seed(200, 9)
    response = v1(running, "events", ndjson([booking(i, "SwapAir") for i in range(5)]),
                  "ndjson", mode="replace")
    assert response.status_code == 200, response.text
    assert response.json()["mode"] == "replace"
    assert running.count("events") == 5
    assert totals(running, "SwapAir") == 5


# -- the Forward CLI -------------------------------------------------------------------
def tb(server, folder, *args: str):
    env = client_venv("tinybird")
    return run(env, ["tb", "--cloud", "--host", server.url, "--token", server.admin_token,
                     *args], cwd=folder, extra_env=QUIET, timeout=180)


@pytest.mark.clients
def test_forward_tb_datasource_append_events_and_file(server, tmp_path):
    event = ndjson([booking(0, "CliAir")]).decode().strip()
    result = tb(server, tmp_path, "datasource", "append", "events", "--events", event)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 row appended" in result.stdout
    assert airline_count(server, "CliAir") == 1

    path = tmp_path / "bookings.csv"
    path.write_bytes(csv_text([booking(i, "CliFileAir") for i in range(6)]))
    result = tb(server, tmp_path, "datasource", "append", "events", "--file", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert airline_count(server, "CliFileAir") == 6

    gz = tmp_path / "more.ndjson.gz"
    gz.write_bytes(gzip.compress(ndjson([booking(i, "CliGzAir") for i in range(2)])))
    result = tb(server, tmp_path, "datasource", "append", "events", str(gz))
    assert result.returncode == 0, result.stdout + result.stderr
    assert airline_count(server, "CliGzAir") == 2

    result = tb(server, tmp_path, "job", "ls")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "import" in result.stdout and "done" in result.stdout


@pytest.mark.clients
def test_forward_tb_datasource_append_reports_the_quarantine(server, tmp_path):
    result = tb(server, tmp_path, "datasource", "append", "events", "--events",
                '{"airline": "HalfAir", "age": "old"}')
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 row went to quarantine" in result.stdout
    assert "is not an integer" in result.stdout
    assert airline_count(server, "HalfAir") == 0
