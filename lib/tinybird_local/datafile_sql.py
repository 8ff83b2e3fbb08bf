"""The SQL that datafiles become: a data source's table, and a pipe's query.

The schema, the endpoints, `/v0/sql` and the deploy checks all need the same text for
the same datafile, so it is built here, in one place, and run by whoever needs it.
Nothing here touches the engine.
"""

from __future__ import annotations

import re
from typing import Any

from .datafiles import Datasource, Pipe
from .sql_template import quote_identifier, render_sql

# Lifts the endpoints' time limit for one statement: bulk loads and back-fills run long.
NO_TIME_LIMIT = "SETTINGS max_execution_time = 0"


def create_table_sql(ds: Datasource) -> str:
    """The `CREATE TABLE IF NOT EXISTS` of a data source, from its datafile."""
    columns = []
    for c in ds.columns:
        line = f"{quote_identifier(c.name)} {c.type}"
        if c.default is not None:
            line += f" DEFAULT {c.default}"
        columns.append(line)
    sql = f"CREATE TABLE IF NOT EXISTS {quote_identifier(ds.name)} (\n  " + ",\n  ".join(columns)
    sql += f"\n) ENGINE = {ds.engine if '(' in ds.engine else ds.engine + '()'}"
    if ds.partition_key:
        sql += f"\nPARTITION BY {ds.partition_key}"
    if ds.engine.endswith("MergeTree") or "MergeTree(" in ds.engine:
        sql += f"\nORDER BY ({ds.sorting_key})" if ds.sorting_key else "\nORDER BY tuple()"
    if ds.ttl:
        sql += f"\nTTL {ds.ttl}"
    if ds.engine_settings:
        sql += f"\nSETTINGS {ds.engine_settings}"
    return sql


def pipe_sql(pipe: Pipe, params: dict[str, Any], node_index: int = -1,
             binds: dict[str, str] | None = None) -> str:
    """The SQL of one node with the nodes before it as CTEs, so a node can read them by name.

    Args:
        pipe: the pipe whose nodes are rendered.
        params: the values of the templates' parameters.
        node_index: the node to end with; the last one by default.
        binds: where text values go as query parameters; None writes them as literals.

    Returns:
        One statement: the earlier nodes as `WITH` stages, then the chosen node.
    """
    nodes = pipe.nodes[: (node_index % len(pipe.nodes)) + 1]
    rendered = [(n.name, render_sql(n.sql, params, binds).strip().rstrip(";")) for n in nodes]
    *earlier, (_, final) = rendered
    return with_ctes(earlier, final)


def with_ctes(ctes: list[tuple[str, str]], sql: str) -> str:
    """`sql` with `ctes` ((name, query) pairs) as `WITH` stages before its own, if any.

    A stage may read the stages before it, and `sql` may read all of them.
    """
    if not ctes:
        return sql
    stages = ",\n".join(f"{quote_identifier(name)} AS (\n{body}\n)" for name, body in ctes)
    if re.match(r"(?is)^\s*WITH\s", sql):
        return f"WITH {stages},\n" + re.sub(r"(?is)^\s*WITH\s", "", sql, count=1)
    return f"WITH {stages}\n{sql}"
