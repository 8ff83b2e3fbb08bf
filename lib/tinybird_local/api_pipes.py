"""Pipe endpoints: `/v0/pipes/{name}.{format}` in Tinybird's check order, and the listing.

Clients rely on the order of the checks:
1. authentication (403);
2. rate limit (429);
3. pipe name (400);
4. format (400);
5. existence (404, even for a JWT whose scopes name other pipes);
6. scope (403);
7. the template's parameters (400 naming the parameter).

`q` is SQL over the endpoint's result. In it, `_` stands for the pipe rendered with the
request's parameters and the token's fixed params (see `sql_access`). Every request that
names an existing pipe adds a row to `tinybird.pipe_stats_rt`; the row is kept in
memory until the service log writes it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .auth import Grant, raise_for_rate
from .datafile_sql import pipe_sql
from .datafiles import IDENTIFIER, Pipe
from .errors import PIPE_DOCS, TEMPLATE_DOCS, APIError, BadRequest, NotFound, no_access
from .pipe_reads import PipeReadError, may_read_pipes, with_pipe_reads
from .sql_access import compose
from .sql_guard import SYNTAX_ERROR, SQLRefused
from .sql_template import TemplateError, declared_params
from .state import (
    LocalState,
    grant_for,
    json_response,
    require_admin,
    run_query_stats,
    state_of,
)

FORMATS = {"json": "JSON", "csv": "CSVWithNames", "ndjson": "JSONEachRow", "parquet": "Parquet"}
CONTENT_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "parquet": "application/octet-stream",
}
# Parameters that steer the request rather than the template.
RESERVED_PARAMS = {"token", "q", "from"}


_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+\w+\s*$", re.I)
_ROWS = re.compile(rb'"rows":\s*(\d+)')


async def _params(request: Request) -> tuple[dict[str, str], str | None]:
    """The template's parameters, and `q` (from the URL or the body) if there is one."""
    params = {k: v for k, v in request.query_params.items() if k not in RESERVED_PARAMS}
    q = request.query_params.get("q")
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        raw = await request.body()
        if raw:
            if "application/json" in content_type or raw.lstrip().startswith(b"{"):
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise BadRequest("The request body is not valid JSON", PIPE_DOCS) from None
                if not isinstance(body, dict):
                    raise BadRequest("The request body must be a JSON object", PIPE_DOCS)
                params.update({k: v if isinstance(v, str) else json.dumps(v)
                               for k, v in body.items() if k not in RESERVED_PARAMS})
                if q is None and isinstance(body.get("q"), str):
                    q = body["q"]
            else:
                form = await request.form()
                params.update({k: str(v) for k, v in form.items() if k not in RESERVED_PARAMS})
                if q is None and form.get("q") is not None:
                    q = str(form.get("q"))
    return params, q


def _result_rows(body: bytes, fmt: str) -> int:
    """How many rows an answer holds, for the stats row; 0 for Parquet."""
    if fmt == "json":
        # The engine writes `"rows": N` near the end, after the data.
        found = _ROWS.findall(body[-400:])
        return int(found[-1]) if found else 0
    if fmt in ("csv", "ndjson"):
        lines = body.count(b"\n")
        return max(lines - 1, 0) if fmt == "csv" else lines
    return 0


def _url_without_token(request: Request) -> str:
    """The request's path and query, with any `token` parameter left out."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    return f"{request.url.path}?{urlencode(query)}" if query else request.url.path


async def pipe_data(request: Request) -> Response:
    """`GET|POST /v0/pipes/{name}.{format}`: the endpoint's data, checked in Tinybird's order."""
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
        raise BadRequest("Invalid pipe name", PIPE_DOCS)
    if fmt not in FORMATS:
        raise BadRequest(
            f"Format '{fmt}' not supported, it must be one of csv, json, ndjson, parquet",
            PIPE_DOCS,
        )
    pipe_name = state.pipe_ids.get(name, name)
    pipe = state.project.pipes.get(pipe_name)
    if pipe is None:
        raise NotFound(f"The pipe '{name}' does not exist", PIPE_DOCS)
    started_at, started = time.time(), time.perf_counter()
    shown_params: dict[str, str] = {}
    stats = (0, 0, 0)
    status = 500
    try:
        if not grant.can_read(pipe.name):
            raise no_access()
        if not pipe.is_endpoint:
            raise NotFound(f"The pipe '{name}' does not have an endpoint yet", PIPE_DOCS)
        params, q = await _params(request)
        shown_params = dict(params)
        # The JWT's fixed params always win over what the request says.
        params.update({k: str(v) for k, v in grant.fixed_params(pipe.name).items()})
        sql, binds = await _endpoint_sql(state, pipe, params)
        if q is not None:
            shown_params["q"] = q
            sql = await _over_result(state, grant, sql, q)
        body, read_rows, read_bytes = await run_query_stats(
            state, f"{sql}\nFORMAT {FORMATS[fmt]}", binds=binds)
        stats = (read_rows, read_bytes, _result_rows(body, fmt))
        status = 200
    except APIError as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        state.pipe_stats.record(
            pipe_id=state.workspace.pipe_id(pipe.name), pipe_name=pipe.name,
            started=started_at, duration=elapsed, status_code=status,
            request_id=getattr(request.state, "request_id", ""),
            url=_url_without_token(request), method=request.method,
            parameters=shown_params, token_id=grant.token_id, token_name=grant.name,
            read_rows=stats[0], read_bytes=stats[1], result_rows=stats[2],
            user_agent=request.headers.get("user-agent"))
    headers = {
        **rate_headers,
        "X-TB-Statistics": json.dumps({"elapsed": round(elapsed, 6)}),
        "X-Tb-Warning": "[]",
    }
    return Response(body, media_type=CONTENT_TYPES[fmt], headers=headers)


async def _endpoint_sql(state: LocalState, pipe: Pipe,
                        params: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The pipe rendered with the request's parameters, with the pipes it reads.

    Returns:
        The SQL and the values of its query parameters. Text values are bound, so the
        text is the same for any values and the guard's verdict on it is reused. Where
        ClickHouse takes only a literal (`COLLATE 'tr'`), the bound text is a syntax
        error; that pipe is then rendered with literals instead.
    """
    binds: dict[str, str] = {}
    sql = await _rendered(state, pipe, params, binds)
    if binds:
        verdict = state.guard.cached(sql)
        if verdict is None:
            try:
                verdict = await run_in_threadpool(state.guard.check, sql)
            except SQLRefused as exc:
                verdict = exc
        if isinstance(verdict, SQLRefused) and verdict.code == SYNTAX_ERROR:
            return await _rendered(state, pipe, params, None), {}
    return sql, binds


async def _rendered(state: LocalState, pipe: Pipe, params: dict[str, str],
                    binds: dict[str, str] | None) -> str:
    """`pipe_sql` and `with_pipe_reads`, their errors as the client sees them."""
    try:
        sql = pipe_sql(pipe, params, binds=binds)
        if may_read_pipes(state.project, pipe, sql):
            sql = await run_in_threadpool(with_pipe_reads, state.guard.check, state.project,
                                          pipe, sql, params, binds)
    except TemplateError as exc:
        raise BadRequest(str(exc), TEMPLATE_DOCS) from None
    except (PipeReadError, SQLRefused) as exc:
        raise BadRequest(str(exc), PIPE_DOCS) from None
    return sql


def _node_id(pipe_id: str, node: str) -> str:
    """A stable Tinybird-style id (`t_<32 hex>`) for a node of a pipe."""
    return "t_" + hashlib.sha256(f"{pipe_id}:{node}".encode()).hexdigest()[:32]


def pipe_json(state: LocalState, pipe: Pipe) -> dict[str, Any]:
    """A pipe as Tinybird's `GET /v0/pipes/NAME` describes it.

    `endpoint` is the id of the published node, as in classic Tinybird; the dashboard
    only checks that it is set. `url` is the endpoint's address. `params` holds every
    node's template parameters; the endpoint explorer reads them.
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


async def _over_result(state: LocalState, grant: Grant, sql: str, q: str) -> str:
    """`q` over the endpoint's result: `_` is the pipe's SQL as this request renders it."""
    q = q.strip().rstrip(";").strip()
    if q.startswith("%"):
        raise BadRequest("'q' parameter doesn't support templates", PIPE_DOCS)
    if not q:
        raise BadRequest("The 'q' parameter is empty", PIPE_DOCS)
    match = _TRAILING_FORMAT.search(q)
    if match:
        q = q[: match.start()].rstrip()  # the URL's extension says the format
    composed = await run_in_threadpool(compose, state, grant, q, sql, PIPE_DOCS)
    if composed.reads_service:
        await run_in_threadpool(state.service_log.flush)
    return composed.sql


async def list_pipes(request: Request) -> Response:
    """`GET /v0/pipes`: every pipe, for the admin token.

    The `attrs` parameter is ignored: every field is always there.
    """
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
        raise NotFound(f"Pipe '{name[:100]}' not found", PIPE_DOCS)
    return json_response(pipe_json(state, pipe))


async def endpoint_example(request: Request) -> Response:
    """`GET /examples/query.http?pipe=&format=&token=`: the endpoint's URL, as plain text.

    The Forward CLI prints it after `tb build` and in `tb endpoint ls` and `tb endpoint
    url`. Tinybird answers with `http://localhost:8001` in place of its host, which the
    CLI replaces; this server answers with its own address, which the CLI keeps.
    """
    state = state_of(request)
    grant = grant_for(request, state)
    name = request.query_params.get("pipe", "")
    fmt = request.query_params.get("format", "json")
    if fmt not in FORMATS:
        raise BadRequest(f"Invalid 'format' parameter: use one of {', '.join(FORMATS)}",
                         PIPE_DOCS)
    pipe = state.project.pipes.get(state.pipe_ids.get(name, name))
    if pipe is None:
        raise NotFound(f"Pipe '{name[:100]}' not found", PIPE_DOCS)
    if not grant.can_read(pipe.name):
        raise no_access()
    query = {"token": request.query_params.get("token", "")}
    if request.query_params.get("q"):
        query["q"] = request.query_params["q"]
    base = str(request.base_url).rstrip("/")
    return Response(f"{base}/v0/pipes/{pipe.name}.{fmt}?{urlencode(query)}",
                    media_type="text/plain")
