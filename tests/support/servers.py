"""Real Tinybird Local servers for tests: subprocesses on free loopback ports.

chDB lets one process open one data directory in its whole life, so the test process
never opens one itself: every server is a `python -m lib.tinybird_local serve`
subprocess with its own temporary data directory, reached over HTTP.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from lib.client.tokens import mint_jwt
from lib.tinybird_local.workspace import Workspace, load_workspace

ROOT = Path(__file__).resolve().parents[2]
PROJECT_DIR = ROOT / "tinybird"
START_TIMEOUT = 60


@dataclass
class RunningServer:
    url: str
    project_dir: Path
    data_dir: Path
    process: subprocess.Popen
    log_path: Path

    @property
    def workspace(self) -> Workspace:
        workspace = load_workspace(self.data_dir)
        assert workspace is not None
        return workspace

    @property
    def admin_token(self) -> str:
        return self.workspace.admin_token

    def jwt(self, pipes: str | list[str] = "top_airlines", **options) -> str:
        return mint_jwt(self.admin_token, self.workspace.workspace_id, pipes, **options)

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def sql(self, q: str) -> dict:
        response = requests.get(f"{self.url}/v0/sql", params={"q": q},
                                headers=self.admin_headers(), timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def count(self, table: str) -> int:
        return int(self.sql(f"SELECT count() AS n FROM {table}")["data"][0]["n"])

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.process.wait(timeout=10)
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def seed(self, rows: int, seed: int | None = None) -> None:
        """Bulk-load `rows` generated bookings through the server (`POST /v0/local/seed`)."""
        params = {"rows": rows} if seed is None else {"rows": rows, "seed": seed}
        response = requests.post(f"{self.url}/v0/local/seed", params=params,
                                 headers=self.admin_headers(), timeout=120)
        assert response.status_code == 200, response.text


def start_server(project_dir: Path, data_dir: Path, port: int = 0,
                 env: dict[str, str] | None = None) -> RunningServer:
    """Start `serve` and wait for its 'listening on' line (the socket is bound by then)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    log_file = open(log_path, "a")  # noqa: SIM115 - the subprocess owns it
    process = subprocess.Popen(
        [sys.executable, "-m", "lib.tinybird_local", "serve", "--project-dir", str(project_dir),
         "--data-dir", str(data_dir), "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=log_file, text=True,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + START_TIMEOUT
    line = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "listening on" in line or not line:
            break
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"Tinybird Local did not start: {line!r}\n{log_path.read_text()}")
    url = line.split("listening on ", 1)[1].split()[0]
    return RunningServer(url=url, project_dir=project_dir, data_dir=data_dir,
                         process=process, log_path=log_path)


def make_project(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    """A copy of the real datafiles plus `extra` files ({relative path: text})."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT_DIR, project)
    for relative, text in (extra or {}).items():
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return project
