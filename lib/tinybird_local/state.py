"""What a running Tinybird Local holds, and the steps every handler shares.

There is one `LocalState` per workspace: the datafiles, the workspace, the engine, the
rate limiter, a row checker per data source and the recent import jobs. Handlers reach the
one a request's token belongs to with `state_of`: the default workspace's
(`request.app.state.local`) unless the token is one of another workspace's
(`workspaces.Workspaces` keeps those).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .auth import (
    Grant,
    VerifiedJWTs,
    authenticate,
    token_from_request,
    unverified_workspace_id,
)
from .batch_writes import settle
from .catalog import Catalog
from .datafiles import Datasource, Project
from .engine import Engine, EngineError
from .errors import PIPE_DOCS, BadRequest, Timeout, no_access
from .jobs import Jobs
from .limits import Limits
from .quarantine import QUARANTINE_SUFFIX
from .ratelimit import RateLimiter
from .row_checks import RowChecker
from .service_log import OpsLog, PipeStats, ServiceLog
from .sql_guard import SERVICE_DATABASE, SQLGuard, SQLRefused
from .workspace import Workspace


@dataclass
class LocalState:
    """Everything one running server holds; see the module's docstring."""

    project: Project
    workspace: Workspace
    engine: Engine
    limits: Limits = field(default_factory=Limits)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    checkers: dict[str, RowChecker] = field(default_factory=dict)
    verified_jwts: VerifiedJWTs = field(default_factory=VerifiedJWTs)
    jobs: Jobs = field(default_factory=Jobs)
    guard: SQLGuard = field(init=False)
    catalog: Catalog = field(init=False)
    service_log: ServiceLog = field(init=False)
    # The default workspace's only: each static token and id of another workspace, to its
    # state. Replaced whole, never changed in place, so a request reads either the old map
    # or the new one.
    others: dict[str, LocalState] = field(default_factory=dict)
    # Called when the workspace's static tokens change, so `others` can follow.
    on_tokens_changed: Callable[[], None] = field(default=lambda: None)

    def secrets(self) -> list[str]:
        """Every token of the workspace: none may appear in an error body."""
        return [self.workspace.admin_token] + [t.token for t in self.workspace.tokens.values()]

    def __post_init__(self) -> None:
        self.checkers = {name: RowChecker(ds) for name, ds in self.project.datasources.items()}
        self.pipe_ids = {self.workspace.pipe_id(name): name for name in self.project.pipes}
        self.guard = SQLGuard(self.engine, self.project)
        self.catalog = Catalog.open(self.engine.data_dir, self.workspace, self.project)
        # Tinybird-style ids of the data sources (`t_<32 hex>`), kept by the catalog. The
        # ops log reads this same dict, so a data source created later is named there too.
        self.datasource_ids = {name: self.catalog.datasource(name).id
                               for name in self.project.datasources}
        service_database = (SERVICE_DATABASE if self.engine.database is None
                            else f"{self.engine.database}_service")
        self.service_log = ServiceLog(self.engine, self.datasource_ids,
                                      database=service_database)

    def add_datasource(self, ds: Datasource) -> None:
        """Serve a data source created while running; its tables must already exist."""
        self.checkers[ds.name] = RowChecker(ds)
        self.project.datasources[ds.name] = ds
        self.guard.add_resources({ds.name, ds.name + QUARANTINE_SUFFIX})
        self.datasource_ids[ds.name] = self.catalog.see_datasource(ds).id

    def swap_project(self, project: Project, workspace: Workspace) -> None:
        """Serve `project` from now on, after a deployment made its tables and views.

        The dicts are changed in place, because handlers and the service log hold
        references to them. `workspace` is the one `ensure_workspace` saved with the new
        TOKEN lines.
        """
        for name, ds in project.datasources.items():
            self.checkers[name] = RowChecker(ds)
            self.datasource_ids[name] = self.catalog.see_datasource(ds).id
        for pipe in project.pipes.values():
            self.catalog.see_pipe(pipe, self.workspace)
        self.workspace.tokens.update(workspace.tokens)
        self.guard = SQLGuard(self.engine, project)
        self.project.datasources.clear()
        self.project.datasources.update(project.datasources)
        self.project.pipes.clear()
        self.project.pipes.update(project.pipes)
        self.pipe_ids.clear()
        self.pipe_ids.update({self.workspace.pipe_id(name): name for name in project.pipes})
        self.on_tokens_changed()

    @property
    def ops_log(self) -> OpsLog:
        """`tinybird.datasources_ops_log`: `state.ops_log.record(event_type, datasource, ...)`."""
        return self.service_log.ops_log

    @property
    def pipe_stats(self) -> PipeStats:
        """`tinybird.pipe_stats_rt`: one row per pipe endpoint request."""
        return self.service_log.pipe_stats

    def close(self) -> None:
        """Write the service logs' last rows, then close the engine."""
        try:
            self.service_log.close()
        finally:
            self.engine.close()


def state_of(request: Request) -> LocalState:
    """The state of the workspace the request's token belongs to.

    A server with no other workspace (the dashboard's) answers with one attribute read;
    with others, a static token is looked up once in a dict. A JWT the default workspace
    has not verified already goes to the workspace its `workspace_id` claim names. A token
    no other workspace has, or none, gets the default workspace, whose own checks then
    accept or refuse it.
    """
    local: LocalState = request.app.state.local
    if not local.others:
        return local
    token = token_from_request(request.query_params, request.headers.get("authorization"))
    if not token:
        return local
    owner = local.others.get(token)
    if owner is None and not token.startswith("p.") and local.verified_jwts.get(token) is None:
        owner = local.others.get(unverified_workspace_id(token))
    return owner or local


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response.

    Args:
        body: anything JSON can hold.
        status: the HTTP status.
        headers: extra headers, or None.

    Returns:
        The response.
    """
    return JSONResponse(body, status_code=status, headers=headers)


def grant_for(request: Request, state: LocalState) -> Grant:
    """Who is asking: `?token=` first, then `Authorization: Bearer` (403 if nobody)."""
    token = token_from_request(request.query_params, request.headers.get("authorization"))
    return authenticate(token, state.workspace, state.pipe_ids, state.verified_jwts)


def require_admin(grant: Grant) -> None:
    """Raise the 403 for a missing scope unless `grant` is the admin's."""
    if not grant.is_admin:
        raise no_access()


async def run_query(state: LocalState, sql: str, documentation: str = PIPE_DOCS) -> bytes:
    """Run `sql` off the event loop and return the engine's JSON bytes.

    `sql` comes from a client or a datafile. So it runs only if the guard finds it is a
    single read of the workspace's data; otherwise the answer is a 400 naming the reason.
    The text checked is exactly the text run.

    Args:
        state: the server's state.
        sql: the query.
        documentation: the link a refused query's error carries.

    Returns:
        The engine's answer in ClickHouse's JSON format.

    Raises:
        BadRequest: the guard refused the query, or the engine failed.
        Timeout: the query ran past the time limit.
    """
    body, _, _ = await run_query_stats(state, sql, documentation)
    return body


async def run_query_stats(state: LocalState, sql: str, documentation: str = PIPE_DOCS,
                          binds: dict[str, str] | None = None) -> tuple[bytes, int, int]:
    """`run_query`, with the rows and bytes the engine read.

    Args:
        state: the server's state.
        sql: the query.
        documentation: the link a refused query's error carries.
        binds: the values of the query parameters in `sql`, if any.

    Returns:
        The JSON bytes, the rows read and the bytes read.
    """
    try:
        tables = await run_in_threadpool(state.guard.check, sql)
        await run_in_threadpool(_settle_quarantines, state, tables)
        return await run_in_threadpool(state.engine.query_stats, sql, "JSON", binds)
    except SQLRefused as exc:
        headers = {"X-DB-Exception-Code": str(exc.code)} if exc.code else None
        raise BadRequest(exc.message, documentation, headers=headers) from None
    except EngineError as exc:
        if exc.is_timeout:
            raise Timeout(f"[Error] Timeout exceeded: {exc.message}", PIPE_DOCS) from None
        raise BadRequest(f"[Error] {exc.message}", PIPE_DOCS,
                         headers={"X-DB-Exception-Code": str(exc.code)}) from None


def _settle_quarantines(state: LocalState, tables: tuple[str, ...]) -> None:
    """Before a quarantine is read, the lines the sift left unchecked get their rows."""
    for name in tables:
        table = name.rpartition(".")[2]
        if table.endswith(QUARANTINE_SUFFIX):
            datasource = table[: -len(QUARANTINE_SUFFIX)]
            if datasource in state.checkers:
                settle(state.engine, state.checkers[datasource].datasource,
                       state.checkers[datasource])
