"""Pipe endpoints: `/v0/pipes/{name}.{format}` in Tinybird's check order, and the listing.

The order matters because clients rely on it: authentication (403), rate limit (429),
pipe name (400), format (400), existence (404, even for a JWT scoped elsewhere), scope
(403), then the template's parameters (400 naming the parameter).
"""

from __future__ import annotations

import json
import time

from starlette.requests import Request
from starlette.responses import Response

from .auth import raise_for_rate
from .datafiles import IDENTIFIER
from .engine import pipe_sql
from .errors import PIPE_DOCS, TEMPLATE_DOCS, APIError, no_access
from .sql_template import TemplateError, declared_params
from .state import grant_for, json_response, require_admin, run_query, state_of

FORMATS = {"json": "JSON", "csv": "CSVWithNames", "ndjson": "JSONEachRow", "parquet": "Parquet"}
CONTENT_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "parquet": "application/octet-stream",
}
# Parameters that steer the request rather than the template.
RESERVED_PARAMS = {"token", "q", "from"}


async def _params(request: Request) -> dict[str, str]:
    params = {k: v for k, v in request.query_params.items() if k not in RESERVED_PARAMS}
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        raw = await request.body()
        if raw:
            if "application/json" in content_type or raw.lstrip().startswith(b"{"):
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise APIError(400, "The request body is not valid JSON", PIPE_DOCS) from None
                if not isinstance(body, dict):
                    raise APIError(400, "The request body must be a JSON object", PIPE_DOCS)
                params.update({k: v if isinstance(v, str) else json.dumps(v)
                               for k, v in body.items() if k not in RESERVED_PARAMS})
            else:
                form = await request.form()
                params.update({k: str(v) for k, v in form.items() if k not in RESERVED_PARAMS})
    return params


async def pipe_data(request: Request) -> Response:
    state = state_of(request)
    grant = grant_for(request, state)
    filename = request.path_params["filename"]
    name, _, fmt = filename.rpartition(".")
    rate_headers: dict[str, str] = {}
    if grant.rps:
        decision = state.limiter.check(
            f"jwt_endpoint_qps_limits_{state.workspace.workspace_id}_{name}_{grant.name}",
            grant.rps,
        )
        raise_for_rate(decision)
        rate_headers = decision.headers()
    if not name or not (IDENTIFIER.match(name)):
        raise APIError(400, "Invalid pipe name", PIPE_DOCS)
    if fmt not in FORMATS:
        raise APIError(
            400, f"Format '{fmt}' not supported, it must be one of csv, json, ndjson, parquet",
            PIPE_DOCS,
        )
    pipe_name = state.pipe_ids.get(name, name)
    pipe = state.project.pipes.get(pipe_name)
    if pipe is None:
        raise APIError(404, f"The pipe '{name}' does not exist", PIPE_DOCS)
    if not grant.can_read(pipe.name):
        raise no_access()
    if not pipe.is_endpoint:
        raise APIError(404, f"The pipe '{name}' does not have an endpoint yet", PIPE_DOCS)
    params = await _params(request)
    # The JWT's fixed params always win over what the request says.
    params.update({k: str(v) for k, v in grant.fixed_params(pipe.name).items()})
    try:
        sql = pipe_sql(pipe, params)
    except TemplateError as exc:
        raise APIError(400, str(exc), TEMPLATE_DOCS) from None
    started = time.perf_counter()
    body = await run_query(state, f"{sql}\nFORMAT {FORMATS[fmt]}")
    elapsed = time.perf_counter() - started
    headers = {
        **rate_headers,
        "X-TB-Statistics": json.dumps({"elapsed": round(elapsed, 6)}),
        "X-Tb-Warning": "[]",
    }
    return Response(body, media_type=CONTENT_TYPES[fmt], headers=headers)


async def list_pipes(request: Request) -> Response:
    state = state_of(request)
    require_admin(grant_for(request, state))
    pipes = []
    for pipe in state.project.pipes.values():
        params = []
        for node in pipe.nodes:
            params += [p.__dict__ for p in declared_params(node.sql)]
        pipes.append({
            "id": state.workspace.pipe_id(pipe.name),
            "name": pipe.name,
            "description": pipe.description,
            "type": pipe.type or "default",
            "endpoint": f"/v0/pipes/{pipe.name}.json" if pipe.is_endpoint else None,
            "nodes": [{"name": n.name, "description": n.description, "sql": n.sql}
                      for n in pipe.nodes],
            "params": params,
        })
    return json_response({"pipes": pipes})
