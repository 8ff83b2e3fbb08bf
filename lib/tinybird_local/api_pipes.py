"""Pipe endpoints: `/v0/pipes/{name}.{format}` in Tinybird's check order, and the listing.

The order matters because clients rely on it: authentication (403), rate limit (429),
pipe name (400), format (400), existence (404, even for a JWT scoped elsewhere), scope
(403), then the template's parameters (400 naming the parameter).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .auth import raise_for_rate
from .datafiles import IDENTIFIER, Pipe
from .engine import pipe_sql
from .errors import PIPE_DOCS, TEMPLATE_DOCS, APIError, no_access
from .sql_template import TemplateError, declared_params
from .state import LocalState, grant_for, json_response, require_admin, run_query, state_of

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


def _node_id(pipe_id: str, node: str) -> str:
    return "t_" + hashlib.sha256(f"{pipe_id}:{node}".encode()).hexdigest()[:32]


def pipe_json(state: LocalState, pipe: Pipe) -> dict[str, Any]:
    """A pipe as Tinybird's `GET /v0/pipes/NAME` describes it.

    `endpoint` is the id of the published node (classic Tinybird; the dashboard only
    tests it for truth), `url` the endpoint's address; `params` (all nodes' template
    parameters) is what the endpoint explorer reads.
    """
    info = state.catalog.pipe(pipe.name)
    params: list[dict[str, Any]] = []
    nodes = []
    for node in pipe.nodes:
        node_params = [p.__dict__ for p in declared_params(node.sql)]
        params += node_params
        is_output = node is pipe.output_node
        nodes.append({
            "id": _node_id(info.id, node.name),
            "name": node.name,
            "description": node.description,
            "sql": node.sql,
            "params": node_params,
            "node_type": (pipe.type or "standard") if is_output else "standard",
            "materialized": pipe.target_datasource if is_output else None,
            "created_at": info.created_at,
            "updated_at": info.updated_at,
        })
    endpoint = _node_id(info.id, pipe.output_node.name) if pipe.is_endpoint else None
    return {
        "id": info.id,
        "name": pipe.name,
        "description": pipe.description,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "type": pipe.type or "default",
        "endpoint": endpoint,
        "url": f"/v0/pipes/{pipe.name}.json" if pipe.is_endpoint else None,
        "parent": None,
        "copy_node": None,
        "sink_node": None,
        "nodes": nodes,
        "params": params,
    }


async def list_pipes(request: Request) -> Response:
    """`GET /v0/pipes`: every pipe, for the admin token (`attrs` filters are not applied:
    every field is always there)."""
    state = state_of(request)
    require_admin(grant_for(request, state))
    return json_response({"pipes": [pipe_json(state, p) for p in state.project.pipes.values()]})


async def pipe_info(request: Request) -> Response:
    """`GET /v0/pipes/{name}` (no extension; name or id): one pipe, for the admin token."""
    state = state_of(request)
    require_admin(grant_for(request, state))
    name = request.path_params["name"]
    pipe = state.project.pipes.get(state.pipe_ids.get(name, name))
    if pipe is None:
        raise APIError(404, f"Pipe '{name[:100]}' not found", PIPE_DOCS)
    return json_response(pipe_json(state, pipe))
