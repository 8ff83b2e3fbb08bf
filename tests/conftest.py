"""The fixtures every layer shares: real Tinybird Local servers in subprocesses.

`server` is the one server of a test module, started once for the module. A module
shapes it with module-level names: `SERVER_FILES` (extra datafiles, {relative path:
text}, added to a copy of `tinybird/`) and `SERVER_SEED_ROWS` / `SERVER_SEED` (bookings
bulk-loaded before the first test). `server_factory` starts servers a test owns itself
(restarts, kills, its own data directory).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.servers import PROJECT_DIR, RunningServer, make_project, start_server


@pytest.fixture
def server_factory(tmp_path):
    started: list[RunningServer] = []

    def factory(project_dir: Path | None = None, data_dir: Path | None = None,
                **kwargs) -> RunningServer:
        server = start_server(project_dir or PROJECT_DIR, data_dir or tmp_path / "data",
                              **kwargs)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """This module's Tinybird Local, shaped by its SERVER_FILES and SERVER_SEED_ROWS."""
    base = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    files = getattr(request.module, "SERVER_FILES", None)
    project = make_project(base, files) if files else PROJECT_DIR
    running = start_server(project, base / "data")
    rows = getattr(request.module, "SERVER_SEED_ROWS", 0)
    if rows:
        running.seed(rows, getattr(request.module, "SERVER_SEED", None))
    yield running
    running.stop(signal.SIGKILL)
