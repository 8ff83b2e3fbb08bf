"""The HTTP API: Tinybird's routes, check order, status codes, headers and error bodies.

Handlers raise `APIError`; `_render_error` is the one place that turns an exception into
the `{"error", "documentation"}` body a client sees. Engine calls run in worker threads
so a slow query never blocks the event loop. Nothing here logs a query string: tokens
travel in `?token=`, and the admin token must never reach a log line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import Grant, VerifiedJWTs, authenticate, raise_for_rate, token_from_request
from .datafiles import IDENTIFIER, Project
from .engine import Engine, EngineError, pipe_sql
from .errors import (
    AUTH_DOCS,
    EVENTS_DOCS,
    PIPE_DOCS,
    SQL_DOCS,
    TEMPLATE_DOCS,
    APIError,
    no_access,
)
from .ingest import CheckedBatch, RowChecker, split_events
from .ratelimit import RateLimiter
from .seeding import SeedError, seed_bookings
from .sql_template import TemplateError, declared_params
from .workspace import Workspace

log = logging.getLogger("tinybird_local")

FORMATS = {"json": "JSON", "csv": "CSVWithNames", "ndjson": "JSONEachRow", "parquet": "Parquet"}
CONTENT_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "parquet": "application/octet-stream",
}
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Requested-With, X-Tb-Warning",
    "Access-Control-Expose-Headers": "X-Tb-Warning",
    "Access-Control-Max-Age": "86400",
}
# Parameters that steer the request rather than the template.
RESERVED_PARAMS = {"token", "q", "from"}
MAX_EVENTS_BODY = int(os.environ.get("TB_LOCAL_MAX_EVENTS_BYTES", 10 * 1024 * 1024))
EVENTS_RPS_PER_DATASOURCE = 1000
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def request_id() -> str:
    """A ULID, as Tinybird's X-Request-ID: 48 bits of milliseconds then 80 random bits."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


@dataclass
class LocalState:
    project: Project
    workspace: Workspace
    engine: Engine
    limiter: RateLimiter = field(default_factory=RateLimiter)
    checkers: dict[str, RowChecker] = field(default_factory=dict)
    verified_jwts: VerifiedJWTs = field(default_factory=VerifiedJWTs)

    def secrets(self) -> list[str]:
        return [self.workspace.admin_token] + [t.token for t in self.workspace.tokens.values()]

    def __post_init__(self) -> None:
        self.checkers = {name: RowChecker(ds) for name, ds in self.project.datasources.items()}
        self.pipe_ids = {self.workspace.pipe_id(name): name for name in self.project.pipes}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def _grant(request: Request, state: LocalState) -> Grant:
    token = token_from_request(request.query_params, request.headers.get("authorization"))
    return authenticate(token, state.workspace, state.pipe_ids, state.verified_jwts)


def _require_admin(grant: Grant) -> None:
    if not grant.is_admin:
        raise no_access()


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
    state: LocalState = request.app.state.local
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=CORS_HEADERS)
    grant = _grant(request, state)
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
    body = await _run_query(state, f"{sql}\nFORMAT {FORMATS[fmt]}")
    elapsed = time.perf_counter() - started
    headers = {
        **rate_headers,
        "X-TB-Statistics": json.dumps({"elapsed": round(elapsed, 6)}),
        "X-Tb-Warning": "[]",
    }
    return Response(body, media_type=CONTENT_TYPES[fmt], headers=headers)


async def _run_query(state: LocalState, sql: str) -> bytes:
    try:
        return await run_in_threadpool(state.engine.query, sql, "JSON")
    except EngineError as exc:
        if exc.is_timeout:
            raise APIError(408, f"[Error] Timeout exceeded: {exc.message}", PIPE_DOCS) from None
        raise APIError(400, f"[Error] {exc.message}", PIPE_DOCS,
                       headers={"X-DB-Exception-Code": str(exc.code)}) from None


async def list_pipes(request: Request) -> Response:
    state: LocalState = request.app.state.local
    _require_admin(_grant(request, state))
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
    return _json({"pipes": pipes})


async def list_datasources(request: Request) -> Response:
    state: LocalState = request.app.state.local
    _require_admin(_grant(request, state))
    out = []
    for ds in state.project.datasources.values():
        rows = await run_in_threadpool(state.engine.row_count, ds.name)
        out.append({
            "name": ds.name,
            "description": ds.description,
            "columns": [{"name": c.name, "type": c.type, "jsonpath": c.json_path,
                         "default_value": c.default} for c in ds.columns],
            "engine": {"engine": ds.engine, "sorting_key": ds.sorting_key,
                       "partition_key": ds.partition_key, "ttl": ds.ttl},
            "statistics": {"row_count": rows},
        })
    return _json({"datasources": out})


_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*$", re.I)


async def sql_query(request: Request) -> Response:
    """The Query API: `q` from the URL, or a POST body (form field `q` or the raw SQL)."""
    state: LocalState = request.app.state.local
    _require_admin(_grant(request, state))
    q = request.query_params.get("q")
    if request.method == "POST" and not q:
        if request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            q = str((await request.form()).get("q") or "")
        else:
            q = (await request.body()).decode("utf-8", "replace")
    q = (q or "").strip().rstrip(";").strip()
    if not q:
        raise APIError(400, "The 'q' parameter with a SQL query is required", SQL_DOCS)
    match = _TRAILING_FORMAT.search(q)
    fmt_name = match.group(1) if match else "JSON"
    if not match:
        q = f"{q}\nFORMAT JSON"
    body = await _run_query(state, q)
    media = "application/json" if fmt_name.upper().startswith("JSON") else "text/plain"
    return Response(body, media_type=media)


def _read_gzip(raw: bytes, limit: int) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(raw, limit + 1)
    except zlib.error:
        raise APIError(400, "The request body is not valid gzip", EVENTS_DOCS) from None
    if len(data) > limit or decompressor.unconsumed_tail:
        raise APIError(413, f"Request Entity Too Large: the uncompressed body is over {limit} "
                            "bytes", EVENTS_DOCS)
    return data


async def _bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"Request Entity Too Large: the body is over {limit} bytes",
                       EVENTS_DOCS)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"Request Entity Too Large: the body is over {limit} bytes",
                           EVENTS_DOCS)
        chunks.append(chunk)
    return b"".join(chunks)


async def events(request: Request) -> Response:
    state: LocalState = request.app.state.local
    grant = _grant(request, state)
    name = request.query_params.get("name")
    if not name:
        raise APIError(400, "The 'name' parameter with the target Data Source is required",
                       EVENTS_DOCS)
    ds = state.project.datasources.get(name)
    if ds is None:
        raise APIError(400, f"Data Source '{name[:100]}' not found", EVENTS_DOCS)
    if not grant.can_append(ds.name):
        raise APIError(403, "The token you have provided doesn't have access to this "
                            f"resource: it lacks APPEND on Data Source '{ds.name}'", AUTH_DOCS)
    decision = state.limiter.check(f"events_{state.workspace.workspace_id}_{ds.name}",
                                   EVENTS_RPS_PER_DATASOURCE)
    raise_for_rate(decision)
    raw = await _bounded_body(request, MAX_EVENTS_BODY)
    if request.headers.get("content-encoding", "").lower() == "gzip" or raw[:2] == b"\x1f\x8b":
        raw = _read_gzip(raw, MAX_EVENTS_BODY)
    wait = request.query_params.get("wait", "false").lower() == "true"
    result = await run_in_threadpool(_ingest, state, ds.name, raw)
    body = {"successful_rows": result.successful_rows,
            "quarantined_rows": result.quarantined_rows}
    return _json(body, status=200 if wait else 202, headers=decision.headers())


def _ingest(state: LocalState, name: str, raw: bytes) -> Any:
    checker = state.checkers[name]
    batch = CheckedBatch()
    for line in split_events(raw):
        checker.check_line(line, batch)
    return state.engine.insert_batch(state.project.datasources[name], batch)


async def seed(request: Request) -> Response:
    """Tinybird Local only: bulk-load generated bookings (`python -m lib.tinybird_local seed`)."""
    state: LocalState = request.app.state.local
    _require_admin(_grant(request, state))
    name = request.query_params.get("name", "events")
    ds = state.project.datasources.get(name)
    if ds is None:
        raise APIError(400, f"Data Source '{name[:100]}' not found", EVENTS_DOCS)
    rows_text = request.query_params.get("rows", "")
    if not rows_text.isdigit():
        raise APIError(400, "The 'rows' parameter must be a whole number", EVENTS_DOCS)
    seed_text = request.query_params.get("seed")
    if seed_text is not None and not seed_text.isdigit():
        raise APIError(400, "The 'seed' parameter must be a whole number", EVENTS_DOCS)
    try:
        inserted = await run_in_threadpool(
            seed_bookings, state.engine, ds, int(rows_text),
            seed=int(seed_text) if seed_text is not None else None)
    except SeedError as exc:
        raise APIError(400, str(exc), EVENTS_DOCS) from None
    return _json({"successful_rows": inserted, "quarantined_rows": 0})


async def index(request: Request) -> Response:
    state: LocalState = request.app.state.local
    return _json({"service": "Tinybird Local", "workspace_id": state.workspace.workspace_id,
                  "pipes": sorted(state.project.pipes),
                  "datasources": sorted(state.project.datasources)})


async def _render_error(request: Request, exc: Exception) -> Response:
    rid = request.state.request_id if hasattr(request.state, "request_id") else request_id()
    if isinstance(exc, APIError):
        body = exc.body()
        # An engine error may quote the SQL it was given; a token written into that SQL
        # must not come back in the error.
        state: LocalState = request.app.state.local
        for secret in state.secrets():
            body["error"] = body["error"].replace(secret, "[token]")
        return _json(body, status=exc.status, headers=exc.headers)
    log.error("request %s failed: %s", rid, type(exc).__name__)
    return _json({"error": f"Unexpected error, contact support@tinybird.co, request id: {rid}",
                  "documentation": "https://docs.tinybird.co"}, status=500)


class HeadersAndAccessLog:
    """Request id and CORS headers on every response; an access log without query strings."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id()
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = 500
        cors = scope["path"].startswith("/v0/")

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = rid
                if cors:
                    for key, value in CORS_HEADERS.items():
                        if key not in headers:
                            headers[key] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            # The path only: the query string may hold a token.
            log.info("%s %s %s %.1fms", scope["method"], scope["path"], status,
                     (time.perf_counter() - started) * 1000)


def create_app(state: LocalState) -> Starlette:
    routes = [
        Route("/", index),
        Route("/v0/pipes", list_pipes),
        Route("/v0/pipes/{filename:path}", pipe_data, methods=["GET", "POST", "OPTIONS"]),
        Route("/v0/datasources", list_datasources),
        Route("/v0/sql", sql_query, methods=["GET", "POST"]),
        Route("/v0/events", events, methods=["POST"]),
        Route("/v0/local/seed", seed, methods=["POST"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(HeadersAndAccessLog)],
                    exception_handlers={Exception: _render_error, APIError: _render_error})
    app.state.local = state

    return app
