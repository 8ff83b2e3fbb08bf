"""Which SQL a client or a datafile may run: a single read of the workspace's own data.

The Query API and pipe nodes take SQL from outside, and the engine would run any of it:
DDL, inserts, several statements, `file()`/`url()`, `system.*`, `INTO OUTFILE`, settings
that lift the time limit. Tinybird allows only a SELECT over the workspace's resources,
so the guard refuses the rest before it reaches the engine.

The decision comes from ClickHouse's own parser, never from matching words in the text.
`Engine.parse` checks that the text is a single statement and returns its `EXPLAIN AST`
tree, and the guard walks that tree. The tree is made from exactly the text that runs
afterwards (templates are rendered and pipe nodes joined as CTEs first). So no comment,
quoting or casing trick can make the check and the run see different queries.
An endpoint's request values are bound as query parameters, outside the text, so the
verdict on one text holds for any values: they are data, never SQL.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .datafile_sql import pipe_sql
from .datafiles import DatafileError
from .engine import EngineError
from .pipe_reads import PipeReadError, with_pipe_reads
from .quarantine import QUARANTINE_SUFFIX
from .schema import BACKFILLS_TABLE
from .sql_template import BOUND_PREFIX, TemplateError, quote_identifier

if TYPE_CHECKING:
    from .datafiles import Project
    from .engine import Engine

# Table functions that read nothing outside the query itself; every other one is refused.
# file/url/s3/hdfs/remote/cluster/mysql/postgresql/executable/input/dictionary/merge and
# chDB's python() reach files, hosts, processes or tables outside the workspace. A list
# of what is allowed stays closed when a ClickHouse upgrade adds a new table function.
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "generateRandom", "values"})
# Ordinary functions that read a file, a dictionary or another table by name.
# Compared in lower case: some function names are case-insensitive.
_DENIED_FUNCTIONS = frozenset({"file", "joinget", "joingetornull", "hascolumnintable",
                               "catboostevaluate", "naivebayesclassifier"})
# `x IN db.table`: the right-hand identifier names a table.
_IN_FUNCTIONS = frozenset({"in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn",
                           "globalNullIn", "globalNotNullIn"})
ALLOWED_STATEMENTS = frozenset({"SelectWithUnionQuery", "DescribeQuery"})

# Tinybird's Service Data Sources: the only tables outside the workspace's own database a
# query may read (`SELECT ... FROM tinybird.pipe_stats_rt`). Every other database,
# `system` first, stays refused.
SERVICE_DATABASE = "tinybird"
SERVICE_TABLES = frozenset({"pipe_stats_rt", "datasources_ops_log"})

_CHILDREN = re.compile(r" \(children (\d+)\)$")
_SETTING_NAME = re.compile(r"\bSETTINGS\s+([A-Za-z_][A-Za-z0-9_]*)\s*=")
_CACHE_SIZE = 1024
# ClickHouse's error code for text its parser cannot read.
SYNTAX_ERROR = 62
# The query parameters an endpoint's render writes (`sql_template`).
_BOUND = re.compile(r"\{(" + BOUND_PREFIX + r"\d+):String\}")


class SQLRefused(ValueError):
    """SQL the guard will not let run; the message names the reason, as the client sees it."""

    def __init__(self, message: str, code: int = 0):
        """Make the error.

        Args:
            message: the reason, for the client.
            code: the engine's error code when its parser refused the text (a syntax
                error, several statements); else 0.
        """
        super().__init__(message)
        self.message, self.code = message, code


@dataclass(frozen=True)
class _Node:
    """One line of `EXPLAIN AST`: its depth, kind, detail, and its parent's kind."""

    depth: int
    kind: str
    detail: str
    parent: str


def _nodes(ast: str) -> list[_Node]:
    """`EXPLAIN AST` output as (depth, kind, detail, parent kind), in document order.

    The output prints identifiers and aliases as they are, line breaks included, so a
    query could add lines that look like nodes. Every node declares how many children
    it has. A forged line always leaves some real node with a count that does not match,
    so any mismatch refuses the query instead of guessing.
    """
    lines = [line for line in ast.split("\n") if line.strip()]
    nodes: list[_Node] = []
    stack: list[tuple[str, int]] = []  # (kind, index in nodes) of the open ancestors
    declared: list[int] = []
    actual: list[int] = []
    for line in lines:
        depth = len(line) - len(line.lstrip(" "))
        if (depth == 0) != (not nodes) or depth > len(stack):
            raise _unreadable()
        del stack[depth:]
        text = line.strip()
        m = _CHILDREN.search(text)
        declared.append(int(m.group(1)) if m else 0)
        actual.append(0)
        if m:
            text = text[: m.start()]
        text = text.split(" (alias ", 1)[0]
        kind, _, detail = text.partition(" ")
        if stack:
            actual[stack[-1][1]] += 1
        nodes.append(_Node(depth, kind, detail.strip(), stack[-1][0] if stack else ""))
        stack.append((kind, len(nodes) - 1))
    if declared != actual:
        raise _unreadable()
    return nodes


def _unreadable() -> SQLRefused:
    """The refusal for an `EXPLAIN AST` output that cannot be read safely."""
    return SQLRefused("The query could not be checked: identifiers and aliases may not "
                      "contain line breaks")


def _not_found(name: str) -> SQLRefused:
    """The refusal for a table the query may not read, worded as Tinybird words it."""
    # Tinybird's sql_toolset.InvalidResource: "Resource '<db.table>' not found".
    return SQLRefused(f"Resource '{name}' not found")


class SQLGuard:
    """Checks SQL against one workspace: its data sources and their quarantine tables.

    `internal` holds the server's own tables in the engine's database, which a client
    must not read: the log of materialized views being filled, and the views
    themselves. Verdicts are cached by the exact text, so an endpoint called again with
    the same parameters is not parsed again.
    """

    def __init__(self, engine: Engine, project: Project):
        self.engine = engine
        self.database = engine.scalar("SELECT currentDatabase()")
        # Only the default workspace's service tables are in `tinybird`; another
        # workspace's are kept apart, and `tinybird.*` is not found there.
        self.service_database = SERVICE_DATABASE if engine.database is None else ""
        self.resources = set(project.datasources) | {
            name + QUARANTINE_SUFFIX for name in project.datasources}
        self.internal = {BACKFILLS_TABLE.strip("`")} | {
            f"{p.name}__mv" for p in project.pipes.values()}
        self._cache: OrderedDict[str, SQLRefused | tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def add_resources(self, names: set[str]) -> None:
        """Let queries read tables created while running (a new data source's)."""
        with self._lock:
            self.resources |= names
            self._cache.clear()  # a verdict of "not found" may name one of them

    def check(self, sql: str) -> tuple[str, ...]:
        """Check that `sql` is a single read of this workspace's data.

        Returns:
            The tables it names, as written (`events`, `db.events`,
            `tinybird.pipe_stats_rt`), in FROM/JOIN or as `x IN name`. A bare name may
            also be a CTE of the query.

        Raises:
            SQLRefused: the query may not run; the message says why.
            EngineError: any engine failure other than a parse error (a closed engine,
                say), as it is.
        """
        with self._lock:
            if sql in self._cache:
                self._cache.move_to_end(sql)
                verdict = self._cache[sql]
                if isinstance(verdict, SQLRefused):
                    raise SQLRefused(verdict.message, verdict.code)
                return verdict
        try:
            verdict = self._check(sql)
        except SQLRefused as exc:
            verdict = exc
        with self._lock:
            self._cache[sql] = verdict
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        if isinstance(verdict, SQLRefused):
            raise SQLRefused(verdict.message, verdict.code)
        return verdict

    def cached(self, sql: str) -> SQLRefused | tuple[str, ...] | None:
        """The verdict already given on `sql` (a refusal or its tables); None if none yet.

        It never waits for the engine, so the event loop may ask.
        """
        with self._lock:
            return self._cache.get(sql)

    def check_condition(self, table: str, condition: str) -> None:
        """Check a WHERE condition a server statement will embed (`replace_condition`).

        It is checked inside a text of the same shape as the one it will run in,
        `SELECT * FROM t WHERE ifNull((condition), 0)`, under the usual rules; then it
        must read `table` alone, in that one SELECT: no subquery, no UNION, no other
        table. So the condition can only pick rows of that table, whatever brackets it
        opens or closes. Last, the engine runs that text with `LIMIT 0`, which reads no
        row, so an unknown column or a wrong type is refused before anything is written.

        Raises:
            SQLRefused: the condition may not run; the message says why.
        """
        sql = f"SELECT * FROM {quote_identifier(table)} WHERE ifNull(({condition}), 0) LIMIT 0"
        tables = self.check(sql)
        _, ast = self.engine.parse(sql)
        selects = sum(1 for node in _nodes(ast) if node.kind == "SelectQuery")
        if selects != 1 or tables != (table,):
            raise SQLRefused("the condition may use only the Data Source's own columns, "
                             "with no subquery or other table")
        try:
            self.engine.query(sql, "JSON")
        except EngineError as exc:
            raise SQLRefused(f"[Error] {exc.message}", exc.code) from None

    def _check(self, sql: str) -> tuple[str, ...]:
        """`check` without the cache."""
        try:
            canonical, ast = self.engine.parse(sql, _BOUND.findall(sql))
        except EngineError as exc:
            if exc.name != "SYNTAX_ERROR" and exc.code != SYNTAX_ERROR:
                raise
            # ClickHouse's parser's own words, e.g. "Syntax error (Multi-statements are
            # not allowed): failed at position 9 (end of query): ; DROP TABLE events."
            raise SQLRefused(f"[Error] {_parse_message(exc)}", exc.code) from None
        nodes = _nodes(ast)
        if not nodes:
            raise SQLRefused("Only SELECT queries are supported")
        root = nodes[0]
        tables: list[str] = []
        if root.kind not in ALLOWED_STATEMENTS:
            # Tinybird's answer to a CREATE on /v0/sql, observed:
            # "DB::Exception: Only SELECT or DESCRIBE queries are supported. Got: CreateQuery"
            raise SQLRefused(
                f"DB::Exception: Only SELECT or DESCRIBE queries are supported. Got: {root.kind}")
        for node in nodes:
            if node.depth == 1 and node.kind == "Literal" and root.kind == "SelectWithUnionQuery":
                # The only literal directly under the statement is INTO OUTFILE's path.
                raise SQLRefused("INTO OUTFILE is not allowed: the Query API answers in the "
                                 "response body only")
            if node.kind == "Set":
                m = _SETTING_NAME.search(canonical)
                name = m.group(1) if m else "SETTINGS"
                # Tinybird (chtoolset) refuses settings outside its allow-list this way.
                raise SQLRefused(
                    f"DB::Exception: Usage of setting '{name}' is restricted. Contact "
                    "support@tinybird.co if you require access to this feature")
            if node.kind == "TableIdentifier":
                self._check_table(node.detail)
                tables.append(node.detail)
            elif node.kind == "Function" and node.parent == "TableExpression":
                if node.detail not in ALLOWED_TABLE_FUNCTIONS:
                    # Tinybird's sql_toolset.InvalidFunction, word for word.
                    raise SQLRefused(
                        f"The query uses disabled table functions: '{node.detail}'")
            elif node.kind == "Function":
                name = node.detail.lower()
                if name in _DENIED_FUNCTIONS or name.startswith("dict"):
                    raise SQLRefused(f"The query uses disabled functions: '{node.detail}'")
        tables += self._check_in_tables(nodes)
        return tuple(dict.fromkeys(tables))

    def _check_in_tables(self, nodes: list[_Node]) -> list[str]:
        """`x IN system.tables` reads a table through an identifier, not a FROM."""
        names = []
        for i, node in enumerate(nodes):
            if node.kind != "Function" or node.detail not in _IN_FUNCTIONS:
                continue
            # Stop at the end of this call's argument list.
            end = next((j for j, n in enumerate(nodes[i + 1:]) if n.depth <= node.depth),
                       len(nodes) - i - 1)
            args = [n for n in nodes[i + 1:i + 1 + end] if n.depth == node.depth + 2]
            if len(args) == 2 and args[1].kind == "Identifier":
                name = args[1].detail
                if "." in name or name in self.internal:
                    self._check_table(name)
                names.append(name)
        return names

    def _check_table(self, name: str) -> None:
        """Raise SQLRefused unless the query may read the table `name`."""
        database, _, table = name.rpartition(".")
        if database and database == self.service_database and table in SERVICE_TABLES:
            return
        if database and database != self.database:
            raise _not_found(name)
        if table in self.internal:
            raise _not_found(table)
        if database and table not in self.resources:
            raise _not_found(name)
        # A bare unknown name may be a CTE; the engine says if it is neither.


def _parse_message(exc: EngineError) -> str:
    """A parse error without the `formatQuery(...)` wrapper it was raised in."""
    return re.sub(r"[\s.:]*In scope SELECT formatQuery\(.*$", "", exc.message, flags=re.S) + "."


def check_pipes(engine: Engine, project: Project) -> None:
    """Every pipe node's SQL passes the guard, or start-up stops at `file:line: reason`.

    Each node is checked as it runs (with the nodes before it and the pipes it reads as
    CTEs), so the first refused node is the one to blame, and pipes that read each other
    in a cycle stop start-up too. A templated node that cannot render without
    request parameters is checked on each request instead.
    """
    guard = SQLGuard(engine, project)
    for pipe in project.pipes.values():
        for index, node in enumerate(pipe.nodes):
            try:
                sql = with_pipe_reads(guard.check, project, pipe, pipe_sql(pipe, {}, index), {})
                guard.check(sql)
            except TemplateError:
                continue
            except (SQLRefused, PipeReadError) as exc:
                raise DatafileError(pipe.path, node.line, str(exc)) from None
