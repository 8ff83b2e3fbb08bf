"""Open a data directory, load the datafiles and serve the API with uvicorn.

The same `LocalServer` runs in the foreground for the command line's `serve`, and in a
background thread for the dashboard's embedded server. It binds the socket itself, so
that port 0 works and the real address is known before the first request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from functools import partial
from pathlib import Path
from typing import Callable

import uvicorn

from .api_datasources import load_created
from .api_deploy import DEPLOYED_DIR
from .app import create_app
from .datafiles import DatafileError, load_project
from .engine import Engine
from .limits import Limits
from .schema import apply_project
from .sql_guard import check_pipes
from .state import LocalState
from .workspace import Workspace, ensure_workspace
from .workspaces import Workspaces

SERVER_FILE = "server.json"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7181


def served_project_dir(project_dir: Path | str, data_dir: Path | str) -> Path:
    """Which datafiles a server on `data_dir` serves.

    Once a project has been deployed into this data dir (by `tb deploy`, kept in
    `data_dir/deployed/`), that project is served and `--project-dir` is ignored. Remove
    `data_dir/deployed/` to serve `--project-dir` again; the tables and rows are kept.
    """
    deployed = Path(data_dir) / DEPLOYED_DIR
    return deployed if deployed.is_dir() else Path(project_dir)


def open_state(project_dir: Path | str, data_dir: Path | str, limits: Limits,
               database: str | None = None, store: Path | None = None) -> LocalState:
    """Datafiles, workspace and engine, ready to serve.

    Args:
        project_dir: the datafiles, unless a deployed project is served instead (see
            `served_project_dir`).
        data_dir: the workspace and its data; made if missing.
        limits: the limits the server holds requests to.
        database: for a workspace other than the default one, its own database.
        store: for a workspace other than the default one, the default one's chDB folder.

    Returns:
        The state the API handlers share.

    Raises:
        DatafileError: a datafile is wrong, or names a taken name.
        EngineError: ClickHouse refused a table or a pipe's SQL.
    """
    project = load_project(served_project_dir(project_dir, data_dir))
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    # Data sources created through the Data Sources API, kept as datafiles in the data dir.
    for ds in load_created(data):
        if ds.name in project.datasources or ds.name in project.pipes:
            raise DatafileError(ds.path, 1, f"name {ds.name!r} is already taken by the project")
        project.datasources[ds.name] = ds
    workspace = ensure_workspace(data, project)
    engine = Engine(data, query_timeout=limits.query_timeout, database=database, store=store)
    try:
        check_pipes(engine, project)
        apply_project(engine, project)
        return LocalState(project=project, workspace=workspace, engine=engine, limits=limits)
    except Exception:
        engine.close()
        raise


def open_other(folder: Path, database: str, store: Path, limits: Limits) -> LocalState:
    """The state of a workspace other than the default one (see `workspaces`).

    It serves what was deployed to it, and nothing before its first deployment.
    """
    (folder / DEPLOYED_DIR).mkdir(parents=True, exist_ok=True)
    return open_state(folder / DEPLOYED_DIR, folder, limits, database=database, store=store)


class LocalServer:
    """One Tinybird Local server on a bound socket."""

    def __init__(self, project_dir: Path | str, data_dir: Path | str,
                 host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 limits: Limits | None = None):
        """Open the data dir and bind the socket; nothing is served until a start.

        Args:
            project_dir: the datafiles to serve (see `served_project_dir`).
            data_dir: the workspace and its data; one server at a time may open it.
            host: the address to listen on.
            port: the port to listen on; 0 picks a free one.
            limits: None means `Limits.resolve()`, read now: the environment, else
                Tinybird's limits. So the embedded server and bench scripts get the
                same defaults as `serve`.

        Raises:
            OSError: the address cannot be bound.
        """
        self.data_dir = Path(data_dir)
        self.limits = Limits.resolve() if limits is None else limits
        self.state = open_state(project_dir, data_dir, self.limits)
        self.workspaces = Workspaces(self.state, self.data_dir, partial(
            open_other, store=self.state.engine.store, limits=self.limits))
        try:
            self.workspaces.open_saved()
        except Exception:
            self.workspaces.close()
            self.state.close()
            raise
        # proto=IPPROTO_TCP matters: only then does asyncio set TCP_NODELAY on accepted
        # sockets. Without it, each keep-alive response waits for the client's delayed ACK.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            self.workspaces.close()
            self.state.close()
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self._socket.listen(2048)
        bound_host, bound_port = self._socket.getsockname()[:2]
        shown_host = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
        self.url = f"http://{shown_host}:{bound_port}"
        config = uvicorn.Config(create_app(self.state, self.workspaces), log_level="warning",
                                access_log=False, lifespan="off", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def workspace(self) -> Workspace:
        """The workspace served: its id and tokens."""
        return self.state.workspace

    def _write_server_file(self) -> None:
        (self.data_dir / SERVER_FILE).write_text(json.dumps({"host": self.url, "pid": os.getpid()}))

    def serve_forever(self, before_close: Callable[[], None] | None = None) -> None:
        """Serve in this thread until SIGINT/SIGTERM, then flush and close the engine.

        Args:
            before_close: called once serving has stopped and before the engine closes,
                to stop what writes to it (`serve --stream`).
        """
        self._write_server_file()
        try:
            self._server.run(sockets=[self._socket])
        finally:
            try:
                if before_close is not None:
                    before_close()
            finally:
                self.close()

    def start_in_thread(self, timeout: float = 30.0) -> LocalServer:
        """Serve in a daemon thread; return once it accepts requests."""
        self._write_server_file()
        self._thread = threading.Thread(target=self._run_thread, name="tinybird-local",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("Tinybird Local stopped during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError("Tinybird Local did not start in time")
            time.sleep(0.01)
        return self

    def _run_thread(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def stop(self) -> None:
        """Stop a server started with `start_in_thread`, then close it."""
        self._server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)
        self.close()

    def close(self) -> None:
        """Close the socket and the engine, and remove the server file."""
        try:
            self._socket.close()
            self.workspaces.close()
        finally:
            self.state.close()
            server_file = self.data_dir / SERVER_FILE
            if server_file.exists():
                server_file.unlink()


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
