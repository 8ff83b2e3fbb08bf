"""A node that reads another pipe by name, as on Tinybird: `SELECT ... FROM other_pipe`.

On Tinybird a node may read a data source, an earlier node of its pipe, or another
pipe's published node (its endpoint node; a pipe with no TYPE publishes its last node).
The other pipe gets the same parameters as the request ("cascading parameters"), so one
value passed to the endpoint reaches every pipe that declares that parameter. A token
that may read the endpoint reads through the pipes it uses, as on Tinybird: the other
pipe's SQL comes from the project's datafiles, never from the request.

Here the other pipe's SQL becomes a `WITH` stage named after it, before the node's own
stages, and the pipes that one reads become stages of its own query, nested. Which names
a query reads as tables comes from the engine's parser (the guard's `check`), never from
matching words; a name that does not even appear in the text needs no parse.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .datafile_sql import pipe_sql, with_ctes
from .datafiles import Pipe, Project

# The guard's `check`: the tables a query reads, from the engine's parser.
TablesOf = Callable[[str], tuple[str, ...]]


class PipeReadError(ValueError):
    """A pipe read that cannot be served: a cycle, or a pipe that publishes nothing."""


def may_read_pipes(project: Project, pipe: Pipe, sql: str) -> bool:
    """True when another pipe's name (or the pipe's own) appears in `sql` at all.

    Cheap, and never wrong when it says False, so a query that reads no pipe is not
    parsed for nothing (and an endpoint need not wait for a worker thread).
    """
    local = {node.name for node in pipe.nodes}
    return any(name in sql for name in project.pipes if name not in local)


def with_pipe_reads(tables_of: TablesOf, project: Project, pipe: Pipe, sql: str,
                    params: Mapping[str, Any], binds: dict[str, str] | None = None) -> str:
    """`sql` (the pipe's rendered query) with each pipe it reads as a stage before it.

    It blocks while the engine parses, so call it in a worker thread.

    Args:
        tables_of: the guard's `check`, which names the tables a query reads.
        project: the project, whose pipes may be read.
        pipe: the pipe `sql` was rendered from.
        sql: its rendered query.
        params: the request's parameters, which the pipes it reads are rendered with.
        binds: the query parameters `sql` was rendered with, if any; the pipes it reads
            add theirs.

    Returns:
        The query to run.

    Raises:
        PipeReadError: a cycle, or a read of a pipe that publishes nothing.
        TemplateError: a pipe read cannot render with these parameters.
        SQLRefused: the guard refused one of the queries.
    """
    return _expand(tables_of, project, pipe, sql, params, binds, ())


def _expand(tables_of: TablesOf, project: Project, pipe: Pipe, sql: str,
            params: Mapping[str, Any], binds: dict[str, str] | None,
            chain: tuple[str, ...]) -> str:
    if not may_read_pipes(project, pipe, sql):
        return sql
    chain = (*chain, pipe.name)
    local = {node.name for node in pipe.nodes}
    read = [name for name in tables_of(sql)
            if "." not in name and name not in local and name in project.pipes]
    stages = []
    for name in dict.fromkeys(read):
        if name in chain:
            cycle = " -> ".join((*chain[chain.index(name):], name))
            raise PipeReadError(f"Pipe '{chain[0]}' cannot be served: pipes read each "
                                f"other in a cycle ({cycle})")
        other = project.pipes[name]
        if not other.is_endpoint:
            target = f": read its data source '{other.target_datasource}' instead" \
                if other.target_datasource else ""
            raise PipeReadError(f"Pipe '{pipe.name}' reads pipe '{name}', which publishes "
                                f"no node (it is {other.type}){target}")
        rendered = pipe_sql(other, dict(params), binds=binds)
        stages.append((name, _expand(tables_of, project, other, rendered, params, binds,
                                     chain)))
    return with_ctes(stages, sql)
