"""The Forward CLI's `tb --cloud deploy [--check]` against Tinybird Local.

A project folder (a copy of `tinybird/` plus a new pipe and data source) is deployed as a
user deploys it; HOME is the test's folder and telemetry and version checks are off, so
the CLI talks to our server only.
"""

from __future__ import annotations

import shutil

import pytest
import requests

from tests.server.test_api_deploy import BROKEN_PIPE, NEW_DATASOURCE, NEW_PIPE
from tests.support.clients import client_venv, run
from tests.support.servers import PROJECT_DIR

pytestmark = pytest.mark.clients

QUIET = {"TB_CLI_TELEMETRY_OPTOUT": "1", "TB_VERSION_WARNING": "0"}


def tb(server, folder, *args: str):
    env = client_venv("tinybird")
    return run(env, ["tb", "--cloud", "--host", server.url, "--token", server.admin_token,
                     *args], cwd=folder, extra_env=QUIET, timeout=180)


def project_folder(tmp_path, broken: bool = False):
    folder = tmp_path / "project"
    shutil.copytree(PROJECT_DIR, folder)
    (folder / "pipes" / "route_count.pipe").write_text(NEW_PIPE)
    (folder / "datasources" / "feedback.datasource").write_text(NEW_DATASOURCE)
    if broken:
        (folder / "pipes" / "broken.pipe").write_text(BROKEN_PIPE)
    return folder


def endpoint_status(server, pipe: str) -> int:
    return requests.get(f"{server.url}/v0/pipes/{pipe}.json", headers=server.admin_headers(),
                        timeout=30).status_code


def test_forward_tb_deploy_check_names_the_broken_file(server_factory, tmp_path):
    server = server_factory()
    result = tb(server, project_folder(tmp_path, broken=True), "deploy", "--check")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "pipes/broken.pipe" in output
    assert "no_such_table" in output
    assert "Deployment is not valid" in output
    assert endpoint_status(server, "route_count") == 404
    assert not (server.data_dir / "deployed").exists()


def test_forward_tb_deploy_serves_the_new_pipe_after_a_restart(server_factory, tmp_path):
    server = server_factory()
    folder = project_folder(tmp_path)
    check = tb(server, folder, "deploy", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Deployment is valid" in check.stdout
    assert endpoint_status(server, "route_count") == 404

    result = tb(server, folder, "deploy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is live!" in result.stdout
    assert endpoint_status(server, "route_count") == 200
    appended = requests.post(f"{server.url}/v0/events", params={"name": "feedback"},
                             data='{"ts": "2024-01-01 00:00:00", "comment": "hi"}',
                             headers=server.admin_headers(), timeout=30)
    assert appended.status_code in (200, 202), appended.text

    again = tb(server, folder, "deploy")
    assert again.returncode == 0 and "No changes" in again.stdout, again.stdout + again.stderr

    assert server.stop() == 0
    restarted = server_factory(project_dir=PROJECT_DIR, data_dir=server.data_dir)
    assert endpoint_status(restarted, "route_count") == 200
    assert restarted.count("feedback") == 1
