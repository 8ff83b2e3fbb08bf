"""The v1 import routes the Forward CLI calls, and the Jobs API it polls after them.

`tb datasource append NAME FILE` and `tb datasource replace` (tinybird 5.x) send the file
as the raw body of `POST /v1/datasources/NAME/append|replace?format=csv|ndjson|parquet`
(`Content-Type` the format's, `Content-Encoding: gzip` for a `.gz` file);
`tb datasource append NAME --events '...'` sends NDJSON the same way. The answer must
hold the job's `id` (or `import_id`); the CLI then polls `GET /v0/jobs/ID` until its
`status` is `done` and adds up `blocks[].process_return[].lines` and `quarantine`.

The import itself is the one of `POST /v0/datasources?mode=append|replace`, with its
checks, scope (DATASOURCES:APPEND or admin), quarantine and errors: an import that
fails answers its error at once, and nothing is written.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .api_datasources import import_request, read_request
from .catalog import now_text
from .errors import DOCS, NotFound, no_access
from .jobs import import_job
from .state import grant_for, json_response, require_admin, state_of

JOBS_DOCS = f"{DOCS}/api-reference/jobs-api"


async def v1_import(request: Request) -> Response:
    """`POST /v1/datasources/{name}/append|replace`: the import, answered as a done job."""
    state = state_of(request)
    grant = grant_for(request, state)
    started_at = now_text()
    params, data, filename = await read_request(request)
    mode = request.path_params["mode"]
    # The path names the data source and the mode; the query may not say otherwise.
    params.update(name=request.path_params["name"], mode=mode)
    result = await import_request(state, grant, params, data, filename)
    job = import_job(result, mode, started_at, str(request.base_url).rstrip("/"))
    state.jobs.add(job)
    return json_response({**job, "job": job})


async def get_job(request: Request) -> Response:
    """`GET /v0/jobs/{id}`: one job, for the admin token or one that may append to its
    data source (the token that started it)."""
    state = state_of(request)
    grant = grant_for(request, state)
    job_id = request.path_params["job_id"]
    job = state.jobs.get(job_id)
    if job is None:
        raise NotFound(f"Job with id '{job_id[:100]}' not found", JOBS_DOCS)
    if not grant.can_append(job["datasource"]["name"]):
        raise no_access()
    return json_response(job)


async def list_jobs(request: Request) -> Response:
    """`GET /v0/jobs`: the recent jobs, newest first (the admin token); `kind` and
    `status` filter them as on Tinybird."""
    state = state_of(request)
    require_admin(grant_for(request, state))
    kind = request.query_params.get("kind")
    status = request.query_params.get("status")
    jobs = [job for job in state.jobs.newest_first()
            if (kind is None or job["kind"] == kind)
            and (status is None or job["status"] == status)]
    return json_response({"jobs": jobs})
