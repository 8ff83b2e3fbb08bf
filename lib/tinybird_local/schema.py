"""The schema's life: the tables and views a project needs, kept true to its datafiles.

At every start the datafiles become tables, quarantine tables and materialized views,
each view back-filled once, and after an unclean stop every materialized target is
rebuilt from its sources. Data sources created at run time, and the replace of a whole
data source, go through here too, because only this module follows which table feeds
which.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Callable

from .datafile_sql import NO_TIME_LIMIT, create_table_sql, pipe_sql
from .datafiles import Datasource, Pipe, Project
from .engine import Engine
from .quarantine import (
    FILLED_COLUMNS,
    compact_rows_name,
    deduplication_sql,
    rejected_rows_sql,
    storage_name,
    storage_names,
    storage_sql,
    view_name,
    view_sql,
)
from .sift import sift_sql
from .sql_template import quote_identifier, quote_string

# Which materialized views were back-filled, and from which SQL (`_ensure_materialized_view`).
BACKFILLS_TABLE = "`_tb_local_backfills`"


def apply_project(engine: Engine, project: Project) -> None:
    """Create what the datafiles describe; existing tables and their rows are kept."""
    for ds in project.datasources.values():
        engine.execute(create_table_sql(ds))
        _ensure_quarantine(engine, ds)
    engine.execute(f"CREATE TABLE IF NOT EXISTS {BACKFILLS_TABLE} (view String, sql_hash String, "
                   "done DateTime DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY view")
    materialized = _materialized_pipes(project)
    _drop_views_of_removed_pipes(engine, materialized)
    feeders: dict[str, int] = {}
    for pipe in materialized:
        feeders[pipe.target_datasource or ""] = feeders.get(pipe.target_datasource or "", 0) + 1
    for pipe in materialized:
        _ensure_materialized_view(engine, pipe,
                                  sole_feeder=feeders[pipe.target_datasource or ""] == 1)
    if engine.recovering and materialized:
        _rebuild_materialized(engine, materialized)
    engine.recovering = False


def create_datasource(engine: Engine, ds: Datasource) -> None:
    """The tables of a data source created at run time (`POST /v0/datasources`)."""
    engine.execute(create_table_sql(ds))
    _ensure_quarantine(engine, ds)


def staging_table(engine: Engine, ds: Datasource) -> str:
    """An empty table shaped like `ds` with no views on it, for a replace to fill."""
    staging = f"_tb_local_{ds.name}_replace_{uuid.uuid4().hex[:12]}"
    engine.execute(f"CREATE TABLE {quote_identifier(staging)} AS {quote_identifier(ds.name)}")
    return staging


def replace_from(engine: Engine, ds: Datasource, staging: str, project: Project,
                 condition: str | None = None) -> None:
    """Make `ds` hold exactly the rows of `staging`, and its materialized targets agree.

    One exclusive hold of the engine, so no query sees the source or a target half
    replaced: the source and every target downstream of it are emptied, the staged
    rows go into the source (its views fill the targets, in cascade), and a view that
    feeds one of those targets from elsewhere is run again over its own source, as at
    its first back-fill. Then the staging table is dropped.

    With a `condition`, as Tinybird's `replace_condition`: the rows of `ds` that match
    it give way to the staged rows that match it; every other row of `ds` stays, and
    staged rows that do not match are dropped. Both sets are gathered first, within the
    same hold, so a condition the engine refuses changes nothing.

    Args:
        engine: the engine holding the tables.
        ds: the data source to replace.
        staging: the table holding its new rows (`staging_table`).
        project: the project whose materialized pipes follow `ds`.
        condition: a WHERE expression over `ds`'s columns, already checked by the
            guard; None to replace every row.
    """
    triggers = _view_sources(engine)
    materialized = _materialized_pipes(project)
    downstream: set[str] = set()
    frontier = {ds.name}
    while frontier:
        found = {p.target_datasource or "" for p in materialized
                 if triggers.get(f"{p.name}__mv") in frontier} - downstream
        downstream |= found
        frontier = found
    merged = f"{staging}_merged"
    with engine.exclusive() as execute:
        try:
            if condition:
                _merge_for_condition(execute, ds, staging, merged, condition)
                staging = merged
            for table in [ds.name, *sorted(downstream)]:
                execute(f"TRUNCATE TABLE {quote_identifier(table)}")
            execute(f"INSERT INTO {quote_identifier(ds.name)} SELECT * FROM "
                    f"{quote_identifier(staging)}\n{NO_TIME_LIMIT}")
            for pipe in materialized:
                source = triggers.get(f"{pipe.name}__mv")
                if pipe.target_datasource in downstream and source != ds.name \
                        and source not in downstream:
                    execute(_refill_sql(pipe))
        finally:
            execute(f"DROP TABLE IF EXISTS {quote_identifier(staging)}")
            execute(f"DROP TABLE IF EXISTS {quote_identifier(merged)}")


def _merge_for_condition(execute: Callable[[str], None], ds: Datasource, staging: str,
                         merged: str, condition: str) -> None:
    """Fill `merged` with what `ds` holds after a replace with `condition`.

    A row for which the condition is NULL counts as not matching: it is kept from `ds`
    and not taken from the new rows.
    """
    matches = f"ifNull(({condition}), 0)"
    execute(f"CREATE TABLE {quote_identifier(merged)} AS {quote_identifier(ds.name)}")
    execute(f"INSERT INTO {quote_identifier(merged)} SELECT * FROM {quote_identifier(staging)} "
            f"WHERE {matches}\n{NO_TIME_LIMIT}")
    execute(f"INSERT INTO {quote_identifier(merged)} SELECT * FROM {quote_identifier(ds.name)} "
            f"WHERE NOT ({matches})\n{NO_TIME_LIMIT}")


def _drop_views_of_removed_pipes(engine: Engine, materialized: list[Pipe]) -> None:
    """Drop the view of a materialized pipe the project no longer has.

    Left in place, it would go on adding to its target on every insert. Our own views
    (`_tb_local_...`) are not a pipe's and are kept.
    """
    wanted = {f"{pipe.name}__mv" for pipe in materialized}
    views = json.loads(engine.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND "
        "engine = 'MaterializedView' AND endsWith(name, '__mv') AND "
        "NOT startsWith(name, '_tb_local_')", "JSON"))["data"]
    for row in views:
        if row["name"] not in wanted:
            engine.execute(f"DROP VIEW IF EXISTS {quote_identifier(row['name'])}")


def _materialized_pipes(project: Project) -> list[Pipe]:
    return [p for p in project.pipes.values() if p.type == "materialized"]


def _refill_sql(pipe: Pipe) -> str:
    """Run a materialized pipe over its source as it is now, into its target."""
    return (f"INSERT INTO {quote_identifier(pipe.target_datasource or '')}\n"
            f"{pipe_sql(pipe, {})}\n{NO_TIME_LIMIT}")


def _view_sources(engine: Engine) -> dict[str, str]:
    """Each materialized view's source: the table whose inserts it follows."""
    listing = json.loads(engine.query(
        "SELECT name, dependencies_table FROM system.tables "
        "WHERE database = currentDatabase()", "JSON"))["data"]
    return {view: row["name"] for row in listing for view in row["dependencies_table"]}


def _ensure_quarantine(engine: Engine, ds: Datasource) -> None:
    """The quarantine's storage tables, the view clients read, and the rejected-lines
    view (see `quarantine`); made again at every start, so the views are current.

    A data dir may hold `{ds}_quarantine` as a table of Tinybird's form rather than a
    view: it becomes the storage table of whole rows as it is, with the defaults.
    """
    # Nothing here makes these (a compact quarantine table, and a view that expanded its
    # rows as they were written); a data dir may still hold them.
    compact = f"_tb_local_{ds.name}_compact_quarantine"
    engine.execute(f"DROP VIEW IF EXISTS {quote_identifier(compact + '__mv')}")
    engine.execute(f"DROP TABLE IF EXISTS {quote_identifier(compact)}")
    view, storage = view_name(ds), storage_name(ds)
    kinds = dict(json.loads(engine.query(
        "SELECT name, engine FROM system.tables WHERE database = currentDatabase() AND "
        f"name IN ({quote_string(view)}, {quote_string(storage)})", "JSONCompact"))["data"])
    if kinds.get(view, "View") != "View" and storage not in kinds:
        engine.execute(f"RENAME TABLE {quote_identifier(view)} TO {quote_identifier(storage)}")
    for statement in storage_sql(ds):
        engine.execute(statement)
    for table in (storage, compact_rows_name(ds)):
        for column in FILLED_COLUMNS:
            engine.execute(f"ALTER TABLE {quote_identifier(table)} MODIFY COLUMN {column}")
    for statement in rejected_rows_sql(ds) + sift_sql(ds):
        engine.execute(statement)
    names = ", ".join(map(quote_string, storage_names(ds)))
    engines = dict(json.loads(engine.query(
        "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() "
        f"AND name IN ({names})", "JSONCompact"))["data"])
    for statement in deduplication_sql(ds, engines):
        engine.execute(statement)
    engine.execute(view_sql(ds))


def _rebuild_materialized(engine: Engine, materialized: list[Pipe]) -> None:
    """After an unclean stop, make every materialized target agree with its sources.

    Why it is needed: an INSERT into a source writes the source's part and then each
    view's part into its target; every part is committed on its own (the engine has no
    transaction across tables), so a kill -9 between the two leaves rows in the source
    that the target never counted. Which inserts were cut short is not recorded
    anywhere, and the totals cannot be compared with their source in general.

    Why this is correct: the data dir holds a marker from the moment an engine opens
    it until `Engine.close()` has finished, and a clean close waits for every insert
    (close takes the lock each insert holds), so no marker means every INSERT that started
    also finished into every target. A marker found at open means anything may be cut
    short, so every target is emptied and recomputed from its source, as the first
    back-fill did: target = view(source as it is now on disk), so each row in the
    source, and so each acknowledged row (an INSERT returns only once all its parts
    are committed), is counted exactly once. The marker is removed only by a clean
    close, so a crash during this rebuild is repaired again at the next start.

    A target fed from another target (a chain) is refilled by the engine itself: the
    views are in place, so inserting into the first target cascades down; only views
    on a table that is not a target are run here, or the chain would count twice.
    """
    targets = {pipe.target_datasource or "" for pipe in materialized}
    triggers = _view_sources(engine)  # view -> the table whose inserts it follows
    with engine.exclusive() as execute:
        for target in sorted(targets):
            execute(f"TRUNCATE TABLE {quote_identifier(target)}")
        for pipe in materialized:
            if triggers.get(f"{pipe.name}__mv") in targets:
                continue  # refilled by the cascade from its own source target
            execute(_refill_sql(pipe))


def _ensure_materialized_view(engine: Engine, pipe: Pipe, sole_feeder: bool) -> None:
    """The view exists with the datafile's SQL and its target was back-filled once.

    The back-fill is recorded in the engine itself; a start that finds the view but no
    record (a crash in between, or changed SQL) empties the target and fills it again,
    so the totals are never counted twice nor left short. (A target fed by several
    views is not emptied: there a changed view's back-fill adds to what is there.)

    Args:
        engine: the engine holding the tables.
        pipe: the materialized pipe.
        sole_feeder: whether no other view feeds the pipe's target.
    """
    view = quote_identifier(f"{pipe.name}__mv")
    select = pipe_sql(pipe, {})
    target = quote_identifier(pipe.target_datasource or "")
    name = quote_string(f"{pipe.name}__mv")
    sql_hash = hashlib.sha256(select.encode()).hexdigest()
    recorded = engine.scalar(f"SELECT sql_hash FROM {BACKFILLS_TABLE} FINAL WHERE view = {name}")
    exists = engine.table_exists(f"{pipe.name}__mv")
    if exists and recorded == sql_hash:
        return
    with engine.exclusive() as execute:
        if exists:
            execute(f"DROP VIEW {view}")
        execute(f"CREATE MATERIALIZED VIEW {view} TO {target} AS\n{select}")
        if sole_feeder:
            execute(f"TRUNCATE TABLE {target}")
        # Back-fill once, as Tinybird does when a materialized pipe is pushed.
        execute(f"INSERT INTO {target}\n{select}\n{NO_TIME_LIMIT}")
    engine.execute(f"INSERT INTO {BACKFILLS_TABLE} (view, sql_hash) "
                   f"VALUES ({name}, '{sql_hash}')")
