"""The engine's quick pass over a body that is mostly bad lines: the sift.

Checking a line in Python costs about the same however small the line is, so a flood of
tiny bad lines would cost the server far more than the same bytes of good bookings.
When a piece of a body has shown many bad lines, `batches.checked_body` sends the rest
of the body to the engine as sent, one row per line, and the engine:

- groups alike lines, so a line sent a million times is looked at once;
- keeps the lines that cannot be events (not blank, not `{...}`) as rejected lines;
- keeps the lines that surely lack a required column as unchecked lines;
- gives every other line back to the Python checks.

A line surely lacks a column when the column's key, in quotes, is nowhere in its text,
and the line has no `\\u` escape that could spell a key. Whatever such a line holds,
Python would quarantine it. The engine does not work out why: before anyone reads the
quarantine, `settle` checks the unchecked lines in Python and writes the usual rows. So
the sift changes what a request costs, never what is stored.

This module only says what to create; `batch_writes.sift_lines` runs it.
"""

from __future__ import annotations

import uuid

from .datafiles import Datasource
from .quarantine import (
    IMPORT_ID,
    INSERTED_AT,
    REPEAT,
    rejected_rows_name,
    write_settings,
)
from .row_checks import unwrap_type
from .sql_template import quote_identifier, quote_string

# The id of one call's unchecked lines: `batch_writes.settle` writes the rows of each
# call once, even when two calls' lines are alike and came in the same second.
SIFT_ID = "sift_id"
# What a sifted line is (the `kind` of the sifted lines).
BLANK, REJECTED, UNCHECKED, KEPT = 0, 1, 2, 3
# A `\u` escape that could spell a letter, digit or underscore of a key.
_KEY_ESCAPE = r"\\u00[3-7][0-9a-fA-F]"
# What earlier versions made for the sift; dropped at start.
_OLD_VIEWS = ("lines", "rejected", "rejected_count", "lenient", "compact", "compact_count",
              "kept", "broken", "checked")
_OLD_TABLES = ("sift_lines", "sift_checked", "sift_compact_rows")


def sift_names(ds: Datasource) -> tuple[str, str, str]:
    """The Null table that takes the lines, the Memory table of the lines grouped, and
    its view."""
    return (f"_tb_local_{ds.name}_sift", f"_tb_local_{ds.name}_sifted",
            f"_tb_local_{ds.name}_sifted__mv")


def unchecked_rows_name(ds: Datasource) -> str:
    """Where the lines that surely lack a column wait for `settle`."""
    return f"_tb_local_{ds.name}_unchecked_rows"


def _required_keys(ds: Datasource) -> list[str]:
    """The JSON keys a line must hold for each column that has no DEFAULT and no NULL.

    For a column read from a nested path, any key of the path will do: without it the
    path is missing.
    """
    keys = []
    for column in ds.columns:
        _, nullable = unwrap_type(column.type)
        if not nullable and column.default is None:
            keys.append(column.json_keys[-1])
    return keys


def _kind_sql(ds: Datasource) -> str:
    """What a line is: BLANK, REJECTED, UNCHECKED or KEPT, for the `line` column.

    A line may be an event when, blanks trimmed, it starts with `{` and ends with `}`:
    the test of `batches._OBJECT_LINE`, byte for byte. Plain text tests, not regexes,
    since the engine runs them on every distinct line of a flood. One search looks for
    all the required keys at once (up to 255 keys a search); a line lacks a column when
    its key is found nowhere.
    """
    keys = [quote_string(chr(34) + key + chr(34)) for key in _required_keys(ds)]
    absent = " OR ".join(
        f"has(multiSearchAllPositions(line, [{', '.join(keys[at:at + 255])}]), 0)"
        for at in range(0, len(keys), 255)) or "0"
    escape = (f"position(line, {quote_string(chr(92) + 'u00')}) > 0 "
              f"AND match(line, {quote_string(_KEY_ESCAPE)})")
    return (f"multiIf((trim(BOTH ' \\t\\r' FROM line) AS trimmed) = '', {BLANK}, "
            f"NOT (length(trimmed) >= 2 AND startsWith(trimmed, '{{') "
            f"AND endsWith(trimmed, '}}')), {REJECTED}, "
            f"NOT ({escape}) AND ({absent}), {UNCHECKED}, "
            f"{KEPT})")


def sift_sql(ds: Datasource) -> list[str]:
    """The sift's tables and view, made again at every start; the unchecked lines'
    table is kept."""
    sift, sifted, view = (quote_identifier(n) for n in sift_names(ds))
    unchecked = quote_identifier(unchecked_rows_name(ds))
    old = [f"DROP VIEW IF EXISTS {quote_identifier(f'_tb_local_{ds.name}_sift_{name}__mv')}"
           for name in _OLD_VIEWS]
    old += [f"DROP TABLE IF EXISTS {quote_identifier(f'_tb_local_{ds.name}_{name}')}"
            for name in _OLD_TABLES]
    return old + [
        f"DROP VIEW IF EXISTS {view}",
        f"DROP TABLE IF EXISTS {sifted}",
        f"DROP TABLE IF EXISTS {sift}",
        f"CREATE TABLE {sift} (line String) ENGINE = Null",
        f"CREATE TABLE {sifted} (line String, {REPEAT} UInt32, kind UInt8) ENGINE = Memory",
        f"CREATE MATERIALIZED VIEW {view} TO {sifted} AS\n"
        f"SELECT line, toUInt32(count()) AS {REPEAT}, {_kind_sql(ds)} AS kind\n"
        f"FROM {sift} GROUP BY line",
        f"CREATE TABLE IF NOT EXISTS {unchecked} "
        f"(line String, c__import_id String DEFAULT {IMPORT_ID}, "
        f"insertion_date DateTime DEFAULT {INSERTED_AT}, {REPEAT} UInt32 DEFAULT 1, "
        f"{SIFT_ID} String DEFAULT '') ENGINE = MergeTree() ORDER BY insertion_date",
        f"ALTER TABLE {unchecked} ADD COLUMN IF NOT EXISTS {SIFT_ID} String DEFAULT ''",
    ]


def keep_sql(ds: Datasource, import_id: str) -> list[str]:
    """After the lines went in: keep the rejected and the unchecked lines, by kind; the
    unchecked ones with a new id (`SIFT_ID`)."""
    sifted = quote_identifier(sift_names(ds)[1])
    return [
        f"INSERT INTO {quote_identifier(rejected_rows_name(ds))} (line, {REPEAT}) "
        f"SELECT line, {REPEAT} FROM {sifted} WHERE kind = {REJECTED} "
        f"{write_settings(import_id)}",
        f"INSERT INTO {quote_identifier(unchecked_rows_name(ds))} (line, {REPEAT}, {SIFT_ID}) "
        f"SELECT line, {REPEAT}, {quote_string(str(uuid.uuid4()))} FROM {sifted} "
        f"WHERE kind = {UNCHECKED} SETTINGS log_comment = {quote_string(import_id)}",
    ]


def rejected_sql(ds: Datasource) -> str:
    """How many of the sifted lines were kept as rejected."""
    return (f"SELECT sumIf({REPEAT}, kind = {REJECTED}) "
            f"FROM {quote_identifier(sift_names(ds)[1])}")


def quarantined_sql(ds: Datasource) -> str:
    """How many of the sifted lines were kept as rejected or unchecked."""
    return (f"SELECT sumIf({REPEAT}, kind IN ({REJECTED}, {UNCHECKED})) "
            f"FROM {quote_identifier(sift_names(ds)[1])}")


def kept_sql(ds: Datasource) -> str:
    """The lines left for the Python checks, each as many times as it came."""
    return (f"SELECT line FROM {quote_identifier(sift_names(ds)[1])} "
            f"ARRAY JOIN range({REPEAT}) WHERE kind = {KEPT}")
