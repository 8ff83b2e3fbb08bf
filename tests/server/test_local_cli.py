"""The Tinybird Local CLI as scripts use it: info, seed, jwt, serve's start-up errors."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import jwt
import pytest
import requests

from lib.client.tokens import jwt_payload, mint_jwt
from lib.tinybird_local.auth import issue_jwt
from lib.tinybird_local.workspace import load_workspace
from tests.support.servers import PROJECT_DIR, ROOT, make_project


def cli(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib.tinybird_local", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_info_creates_the_workspace_once_and_keeps_it(tmp_path):
    first = cli("info", "--data-dir", tmp_path / "d")
    assert first.returncode == 0, first.stderr
    info = json.loads(first.stdout)
    assert set(info) >= {"host", "workspace_id", "admin_token", "tokens"}
    assert info["admin_token"].startswith("p.")
    assert "top_airlines_read_static" in info["tokens"]
    assert info["running"] is False
    again = json.loads(cli("info", "--data-dir", tmp_path / "d").stdout)
    assert again["workspace_id"] == info["workspace_id"]
    assert again["admin_token"] == info["admin_token"]
    assert again["tokens"] == info["tokens"]


def test_info_reports_the_running_server(server_factory, tmp_path):
    server = server_factory(data_dir=tmp_path / "data")
    info = json.loads(cli("info", "--data-dir", tmp_path / "data").stdout)
    assert info["running"] is True
    assert info["host"] == server.url


def test_seed_into_a_stopped_data_dir_then_serve_it(server_factory, tmp_path):
    result = cli("seed", "--rows", 30000, "--data-dir", tmp_path / "data", "--seed", 3)
    assert result.returncode == 0, result.stderr
    assert "seeded 30000 rows" in result.stdout
    server = server_factory(data_dir=tmp_path / "data")
    assert server.count("events") == 30000


def test_seed_through_a_running_server_and_refuses_to_open_its_dir(server_factory, tmp_path):
    server = server_factory(data_dir=tmp_path / "data")
    refused = cli("seed", "--rows", 10, "--data-dir", tmp_path / "data")
    assert refused.returncode == 1
    assert "--host" in refused.stderr and "Traceback" not in refused.stderr
    result = cli("seed", "--rows", 5000, "--data-dir", tmp_path / "data", "--host", server.url)
    assert result.returncode == 0, result.stderr
    assert server.count("events") == 5000


def test_jwt_command_prints_a_token_the_server_accepts(server_factory, tmp_path):
    server = server_factory(data_dir=tmp_path / "data")
    result = cli("jwt", "--data-dir", tmp_path / "data", "--pipe", "top_airlines",
                 "--ttl", 60, "--fixed-param", "airline=Fizz")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, server.admin_token, algorithms=["HS256"])
    assert claims["scopes"] == [{"type": "PIPES:READ", "resource": "top_airlines",
                                 "fixed_params": {"airline": "Fizz"}}]
    assert requests.get(f"{server.url}/v0/pipes/top_airlines.json", params={"token": token},
                        timeout=30).status_code == 200


def test_serve_refuses_a_malformed_datafile_with_file_and_line(tmp_path):
    project = make_project(tmp_path, {"pipes/broken.pipe": "NODE a\nSQL >\n    SELECT 1\n"
                                                           "TYPE sideways\n"})
    result = cli("serve", "--project-dir", project, "--data-dir", tmp_path / "d", "--port", 0)
    assert result.returncode == 1
    assert "broken.pipe:4: unknown pipe TYPE" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_says_when_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = cli("serve", "--project-dir", PROJECT_DIR, "--data-dir", tmp_path / "d",
                     "--port", port)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_admin_token_never_reaches_the_server_log(server_factory, tmp_path):
    server = server_factory(data_dir=tmp_path / "data")
    admin = server.admin_token
    requests.get(f"{server.url}/v0/sql", params={"q": "SELECT 1", "token": admin}, timeout=30)
    requests.get(f"{server.url}/v0/sql", params={"q": "SELECT nope", "token": admin}, timeout=30)
    requests.post(f"{server.url}/v0/events", params={"name": "events", "token": admin},
                  data=b"{bad", timeout=30)
    requests.get(f"{server.url}/v0/pipes/top_airlines.json", params={"token": admin + "x"},
                 timeout=30)
    server.stop()
    log = server.log()
    assert "/v0/sql" in log  # the access log is there, without query strings
    assert admin not in log


def test_jwt_command_claims_match_what_the_client_mints(tmp_path):
    """The server issues the same claims the dashboard's client mints, so either token
    reads the same; `exp` is rounded up, and a bad option is a usage error (exit 2)."""
    assert cli("info", "--data-dir", tmp_path / "d").returncode == 0
    workspace = load_workspace(tmp_path / "d")
    result = cli("jwt", "--data-dir", tmp_path / "d", "--pipe", "airline_bookings",
                 "--ttl", 90.5, "--name", "kiosk", "--rps", 4, "--fixed-param", "airline=Fizz")
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), workspace.admin_token, algorithms=["HS256"])
    expected = jwt_payload(workspace.workspace_id, "airline_bookings", name="kiosk",
                           ttl_seconds=90.5, fixed_params={"airline": "Fizz"}, rps=4,
                           now=claims["exp"] - 91)
    assert claims == expected
    assert issue_jwt(workspace, ["a", "b"], name="n", ttl_seconds=0.2, now=10.0) == \
        mint_jwt(workspace.admin_token, workspace.workspace_id, ["a", "b"], name="n",
                 ttl_seconds=0.2, now=10.0)
    bad = cli("jwt", "--data-dir", tmp_path / "d", "--fixed-param", "airline")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: --fixed-param takes key=value")
    assert cli("jwt", "--data-dir", tmp_path / "d", "--ttl", 0).returncode == 2


def test_jwt_command_without_a_workspace_fails_in_one_line(tmp_path):
    result = cli("jwt", "--data-dir", tmp_path / "empty")
    assert result.returncode == 1
    assert result.stderr.startswith("error: no workspace in ")
    assert "Traceback" not in result.stderr


def test_tinybird_local_imports_only_its_plain_data_leaves():
    """Tinybird Local must stay liftable out of this project: of the rest of `lib` it may
    use only the bookings distributions and the CLI error convention."""
    probe = ("import sys, lib.tinybird_local.__main__, lib.tinybird_local.server; "
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('lib.'))))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    outside = {m for m in result.stdout.split() if not m.startswith("lib.tinybird_local")}
    assert outside <= {"lib.bookings", "lib.bookings.distributions", "lib.command_line"}


def start_serve(data_dir, *args, env=None) -> tuple[subprocess.Popen, str]:
    """`serve` with extra options (conftest's start_server takes none), and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lib.tinybird_local", "serve", "--project-dir", str(PROJECT_DIR),
         "--data-dir", str(data_dir), "--port", "0", *map(str, args)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})})
    line = "x"
    while line and "listening on" not in line:
        line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise AssertionError(f"serve did not start: {process.communicate(timeout=30)}")
    return process, line.split("listening on ", 1)[1].split()[0]


@contextmanager
def serving(data_dir, *args, env=None):
    """`serve` with extra options, killed at the end; yields its URL."""
    process, url = start_serve(data_dir, *args, env=env)
    try:
        yield url
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)


def post_events(url, data_dir, size):
    body = (b'{"n":1}\n' * (size // 8 + 1))[:size]
    return requests.post(f"{url}/v0/events", params={"name": "events"}, data=body,
                         headers={"Authorization":
                                  f"Bearer {load_workspace(data_dir).admin_token}"},
                         timeout=30)


def test_serve_limits_come_from_the_option_then_the_environment(tmp_path):
    """`--max-events-bytes` wins over TB_LOCAL_MAX_EVENTS_BYTES, which wins over 10 MiB;
    both are read when the server starts."""
    small = {"TB_LOCAL_MAX_EVENTS_BYTES": "500"}
    with serving(tmp_path / "a", "--max-events-bytes", 2000, env=small) as url:
        assert post_events(url, tmp_path / "a", 1000).status_code == 202
        assert post_events(url, tmp_path / "a", 3000).status_code == 413
    with serving(tmp_path / "b", env=small) as url:
        assert post_events(url, tmp_path / "b", 1000).status_code == 413
        assert post_events(url, tmp_path / "b", 400).status_code == 202


def test_serve_refuses_an_unreadable_limit_as_a_usage_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lib.tinybird_local", "serve", "--data-dir", tmp_path / "d",
         "--port", "0"], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "TB_LOCAL_QUERY_TIMEOUT": "soon"})
    assert result.returncode == 2
    assert result.stderr == "error: TB_LOCAL_QUERY_TIMEOUT='soon' is not a number\n"
    zero = cli("serve", "--data-dir", tmp_path / "d", "--port", 0, "--max-events-bytes", 0)
    assert zero.returncode == 2
    assert zero.stderr.startswith("error: the Events API body limit must be more than 0")


def help_entries(command: str) -> dict[str, str]:
    """{option: its help text} from `COMMAND --help`; help may wrap or start a line below."""
    result = cli(command, "--help")
    assert result.returncode == 0, result.stderr
    entries: dict[str, str] = {}
    option = None
    for line in result.stdout.split("options:", 1)[1].splitlines():
        start = re.match(r"^  (-[^ ]*(?: [A-Z_=]+)?(?:, -[^ ]*(?: [A-Z_=]+)?)*)(?:  +(.*))?$",
                         line)
        if start:
            option = start.group(1).split()[0].rstrip(",")
            entries[option] = start.group(2) or ""
        elif option and line.strip():
            entries[option] = f"{entries[option]} {line.strip()}".strip()
    return entries


@pytest.mark.parametrize("command, options", [
    ("serve", {"--project-dir", "--data-dir", "--host", "--port", "--query-timeout",
               "--max-events-bytes", "--events-rps", "--stream"}),
    ("info", {"--project-dir", "--data-dir"}),
    ("seed", {"--project-dir", "--data-dir", "--rows", "--host", "--datasource", "--seed"}),
    ("jwt", {"--project-dir", "--data-dir", "--pipe", "--ttl", "--name", "--rps",
             "--fixed-param"}),
])
def test_every_option_has_help_with_its_default(command, options):
    entries = help_entries(command)
    assert set(entries) == options | {"-h"}
    for option in options:
        text = " ".join(entries[option].split())
        assert len(text) > 20, f"{command} {option} has no help"
        assert "(default:" in text or "required" in text, f"{command} {option}: {text}"


def events_count(url: str, data_dir) -> int:
    response = requests.get(f"{url}/v0/sql", timeout=30,
                            params={"q": "SELECT count() AS n FROM events FORMAT JSON"},
                            headers={"Authorization":
                                     f"Bearer {load_workspace(data_dir).admin_token}"})
    assert response.status_code == 200, response.text
    return int(response.json()["data"][0]["n"])


def test_serve_stream_keeps_new_bookings_flowing_until_stopped(tmp_path):
    process, url = start_serve(tmp_path / "d", "--stream", 50)
    try:
        assert "Streaming 50 bookings a second into events" in process.stdout.readline()
        counts = [events_count(url, tmp_path / "d")]
        deadline = time.monotonic() + 30
        # Three batches at least: the stream goes on, it is not one seed.
        while counts[-1] < 150 and time.monotonic() < deadline:
            time.sleep(0.2)
            counts.append(events_count(url, tmp_path / "d"))
        assert counts[-1] >= 150, counts
        assert counts == sorted(counts)
        token = load_workspace(tmp_path / "d").admin_token
        recent = requests.get(f"{url}/v0/sql", headers={"Authorization": f"Bearer {token}"},
                              params={"q": "SELECT count() AS n FROM events WHERE timestamp "
                                           "< now64(3) - INTERVAL 1 MINUTE FORMAT JSON"},
                              timeout=30).json()["data"][0]["n"]
        assert int(recent) == 0
        top = requests.get(f"{url}/v0/pipes/top_airlines.json", timeout=30,
                           headers={"Authorization": f"Bearer {token}"}).json()["data"]
        assert sum(row["bookings"] for row in top) >= 150
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "skipped" not in err


@pytest.mark.parametrize("value, words", [
    ("0", "must be more than 0"), ("-5", "must be more than 0"),
    ("lots", "'lots' is not a number"), ("nan", "must be more than 0"),
])
def test_serve_stream_refuses_a_pace_that_is_not_a_positive_number(tmp_path, value, words):
    result = cli("serve", "--data-dir", tmp_path / "d", "--port", 0, "--stream", value)
    assert result.returncode == 2
    assert "argument --stream" in result.stderr and words in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("datafile, words", [
    ("events.datasource", "'events' has no booking column(s)"),
    ("clicks.datasource", "--stream needs a data source named 'events'"),
])
def test_serve_stream_needs_an_events_datasource_with_booking_columns(tmp_path, datafile,
                                                                       words):
    project = tmp_path / "project"
    (project / "datasources").mkdir(parents=True)
    (project / "datasources" / datafile).write_text("SCHEMA >\n    `n` Int32\n")
    result = cli("serve", "--project-dir", project, "--data-dir", tmp_path / "d",
                 "--port", 0, "--stream", 5)
    assert result.returncode == 1
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "d" / "server.json").exists()
