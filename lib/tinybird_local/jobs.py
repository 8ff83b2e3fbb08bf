"""Import jobs, kept so a client can ask about them after the import.

The Forward CLI's `tb datasource append` posts the file to `/v1/datasources/NAME/append`,
which on Tinybird queues an import job and answers its id; the CLI then polls
`GET /v0/jobs/ID` until the job is `done` or `error`. Tinybird Local imports the file
while the request waits, so a job is already finished when its id is answered. Jobs
live in memory only: the Jobs API shows recent jobs, and a restart starts a new list.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from .catalog import now_text

# Tinybird's Jobs API lists the last 100 jobs.
KEPT_JOBS = 100


def import_job(result: dict[str, Any], mode: str, started_at: str,
               host: str) -> dict[str, Any]:
    """A finished import as the Jobs API shows it, from the import's own answer.

    Args:
        result: what the import answered (`import_id`, `datasource`, `blocks`...).
        mode: append or replace.
        started_at: when the request came, in Tinybird's date format.
        host: this server's address, for the job's `job_url`.

    Returns:
        The job's JSON.
    """
    lines = sum(r["lines"] for b in result["blocks"] for r in b["process_return"])
    size = sum(r["bytes"] for b in result["blocks"] for r in b["process_return"])
    datasource = result["datasource"]
    return {
        "kind": "import",
        "id": result["import_id"],
        "job_id": result["import_id"],
        "import_id": result["import_id"],
        "job_url": f"{host}/v0/jobs/{result['import_id']}",
        "status": "done",
        "mode": mode,
        "created_at": started_at,
        "started_at": started_at,
        "updated_at": now_text(),
        "is_cancellable": False,
        "datasource": {"id": datasource["id"], "name": datasource["name"]},
        "statistics": {"bytes": size, "row_count": lines},
        "quarantine_rows": result["quarantine_rows"],
        "invalid_lines": result["invalid_lines"],
        "blocks": result["blocks"],
        "errors": [],
    }


class Jobs:
    """The last `KEPT_JOBS` jobs, by id; safe to use from several threads."""

    def __init__(self, size: int = KEPT_JOBS):
        self._jobs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def add(self, job: dict[str, Any]) -> None:
        """Keep `job`, forgetting the oldest one past the limit."""
        with self._lock:
            self._jobs[job["id"]] = job
            while len(self._jobs) > self._size:
                self._jobs.popitem(last=False)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job with this id, or None."""
        with self._lock:
            return self._jobs.get(job_id)

    def newest_first(self) -> list[dict[str, Any]]:
        """Every kept job, the newest first, as the Jobs API lists them."""
        with self._lock:
            return list(reversed(self._jobs.values()))
