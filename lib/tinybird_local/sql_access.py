"""What a token may read through SQL: the Query API (`/v0/sql`) and a pipe's `q`.

The guard (`sql_guard`) decides whether a text is a single read of the workspace's data,
and names the tables it reads. This module decides whether *this token* may read each of
them. It also turns the resources that are not tables into SQL the engine can run:

- A pipe read by name (Tinybird's `/v0/sql` reads pipes as tables) becomes a CTE of the
  pipe's SQL. The SQL is rendered with the token's fixed params for that pipe (a JWT's
  `fixed_params`), so the token reads exactly what the endpoint would give it.
- A data source read through a token's row filter (`DATASOURCES:READ:events:<filter>`,
  or a JWT's `filter`) becomes a CTE of its filtered rows.
- In a pipe's `q`, `_` becomes the pipe's rendered SQL.

The guard checks the text the client sent first, and checks the composed text again when
it runs (`state.run_query`), so nothing here widens what may run. This module reads the
running server only through the `Resources` protocol (a `LocalState` fits it), so it
does not import the server's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

from .auth import Grant
from .datafile_sql import pipe_sql
from .datafiles import Project
from .errors import AUTH_DOCS, SQL_DOCS, TEMPLATE_DOCS, BadRequest, Forbidden
from .pipe_reads import PipeReadError, with_pipe_reads
from .quarantine import QUARANTINE_SUFFIX
from .sql_guard import SERVICE_DATABASE, SERVICE_TABLES, SQLGuard, SQLRefused
from .sql_template import TemplateError, quote_identifier


class Resources(Protocol):
    """What `compose` reads of the running server: its datafiles, its guard, its pipe ids."""

    @property
    def project(self) -> Project: ...

    @property
    def guard(self) -> SQLGuard: ...

    @property
    def pipe_ids(self) -> Mapping[str, str]:
        """Pipe id to pipe name: a query may name a pipe either way."""
        ...


@dataclass
class Composed:
    """What `compose` gives: the SQL to run, and whether it reads the service tables."""

    sql: str  # what runs (without FORMAT)
    reads_service: bool  # reads tinybird.*: flush the service log first


def lacks(kind: str, name: str) -> Forbidden:
    """The 403 for a token without READ on a pipe or data source."""
    return Forbidden("The token you have provided doesn't have access to this resource: "
                     f"it lacks READ on {kind} '{name}'", AUTH_DOCS)


def compose(state: Resources, grant: Grant, sql: str,
            underscore: str | None = None, documentation: str = SQL_DOCS) -> Composed:
    """The SQL to run for `sql`, read with `grant`.

    It blocks while the guard asks the engine, so call it in a worker thread.

    Args:
        state: the running server's datafiles, guard and pipe ids.
        grant: what the token may read.
        sql: the query the client sent.
        underscore: the rendered SQL that `_` stands for (a pipe endpoint's `q`), or
            None.
        documentation: the link a refused query's error carries.

    Returns:
        The SQL to run, and whether it reads the service tables.

    Raises:
        BadRequest: the guard refused the query, or a pipe could not be rendered.
        Forbidden: the token may not read something the query reads.
    """
    try:
        tables = state.guard.check(sql)
    except SQLRefused as exc:
        headers = {"X-DB-Exception-Code": str(exc.code)} if exc.code else None
        raise BadRequest(exc.message, documentation, headers=headers) from None
    ctes: dict[str, str] = {}
    reads_service = False
    for name in tables:
        database, _, table = name.rpartition(".")
        if database == SERVICE_DATABASE and table in SERVICE_TABLES:
            if not grant.is_admin:
                raise Forbidden(f"Services Data Sources like '{name}' can't be directly "
                                "accessed without an ADMIN token", AUTH_DOCS)
            reads_service = True
            continue
        if table == "_" and underscore is not None and not database:
            ctes["_"] = underscore
            continue
        datasource = table[: -len(QUARANTINE_SUFFIX)] if table.endswith(QUARANTINE_SUFFIX) \
            else table
        if datasource in state.project.datasources:
            if not grant.can_read_datasource(datasource):
                raise lacks("Data Source", datasource)
            row_filter = grant.row_filter(datasource)
            if row_filter:
                if database or table != datasource:
                    raise Forbidden(f"This token reads '{datasource}' through a filter: "
                                    f"query it as {datasource}, unqualified", AUTH_DOCS)
                ctes[table] = (f"SELECT * FROM {quote_identifier(state.guard.database)}."
                               f"{quote_identifier(table)} WHERE {row_filter}")
            continue
        pipe_name = state.pipe_ids.get(table, table)
        if not database and pipe_name in state.project.pipes:
            if not grant.can_read(pipe_name):
                raise lacks("Pipe", pipe_name)
            ctes[table] = render_pipe(state, pipe_name, grant.fixed_params(pipe_name))
            continue
        # Anything else is a CTE of the query itself, or a table the engine will not find.
    if not ctes:
        return Composed(sql, reads_service)
    if sql.lstrip()[:4].upper() == "DESC":
        raise BadRequest("DESCRIBE reads datasources only, not pipes or filtered data",
                         documentation)
    with_clause = ",\n".join(f"{quote_identifier(n)} AS (\n{body}\n)" for n, body in ctes.items())
    return Composed(f"WITH {with_clause}\nSELECT * FROM (\n{sql}\n)", reads_service)


def render_pipe(state: Resources, pipe_name: str, params: Mapping[str, object]) -> str:
    """The pipe's SQL, its earlier nodes and the pipes it reads as CTEs, rendered with
    `params`.

    Args:
        state: the running server's datafiles.
        pipe_name: the pipe.
        params: the template's parameters.

    Returns:
        The SQL.

    Raises:
        BadRequest: the template refused the parameters, or the pipes it reads cannot
            be served (a cycle).
    """
    pipe = state.project.pipes[pipe_name]
    values = {k: str(v) for k, v in params.items()}
    try:
        return with_pipe_reads(state.guard.check, state.project, pipe,
                               pipe_sql(pipe, values), values)
    except TemplateError as exc:
        raise BadRequest(str(exc), TEMPLATE_DOCS) from None
    except (PipeReadError, SQLRefused) as exc:
        raise BadRequest(str(exc), SQL_DOCS) from None
