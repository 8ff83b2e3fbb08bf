"""Where rows that do not fit a datasource go, and how they are stored.

Tinybird keeps each bad row in `{datasource}_quarantine`: its original values as text,
`c__error_column` and `c__error` (one entry per bad column, in column order),
`c__import_id` and `insertion_date`. Written in that form, a tiny object that lacks
eleven columns would carry eleven long reasons, and each line of a flood a row of a
dozen columns: anyone with an append token could make the server write far more than
they sent.

So what is written is small, and `{ds}_quarantine` is a view that puts Tinybird's form
back, paying only for the rows read:
- `_tb_local_{ds}_compact_rows` holds the bad events: their values as text in one array
  by position, the missing columns' positions only (their reason, "missing value for
  column ...", is the same for every row), and the row's other reasons with their
  positions. Rows that are all alike are written once, with how many they stand for
  (`repeat`).
- `_tb_local_{ds}_quarantine_rows` holds, whole and in Tinybird's form, the rows that
  are not events of the schema: a JSON value that is not an object, a CSV line that
  cannot be read, a row the engine refused (and the rows of data dirs that stored
  everything so).
- `_tb_local_{ds}_rejected_rows` holds the lines that cannot be events, as sent (line,
  import id, time, and `repeat`), kept by the engine from the body's bytes (`sift`),
  and the lines shaped like objects that the Python checks could not parse. Their value
  and reason are made when read.
- `_tb_local_{ds}_unchecked_rows` (made by `sift`) holds lines the engine found surely
  bad without saying why; `batch_writes.settle` moves them into the tables above
  before the quarantine is read.

This module only says what to create; `schema` and `batch_writes` run it.
"""

from __future__ import annotations

import uuid

from .datafiles import Column, Datasource
from .sql_template import quote_identifier, quote_string

QUARANTINE_SUFFIX = "_quarantine"
# The columns of a compact row: the present values by position (1-based column
# numbers), the positions of the required columns it lacks, and the positions of its
# other errors, whose texts are in `c__error`.
ORIGINAL = "original"
MISSING_AT = "missing_at"
ERROR_AT = "error_at"
# How many quarantined rows a compact row stands for: rows that are all alike (events
# with none of the columns) are written once.
REPEAT = "repeat"
# Filled by the engine, so no row carries them: the import id is the insert's
# `log_comment` setting, the same for every row of one insert. A write of rows that
# arrived earlier (`batch_writes.settle`) gives their time after a tab.
IMPORT_ID = "splitByChar('\\t', getSetting('log_comment'))[1]"
INSERTED_AT = ("if(position(getSetting('log_comment'), '\\t') > 0, "
               "toDateTime(splitByChar('\\t', getSetting('log_comment'))[2]), now())")
FILLED_COLUMNS = [f"`c__import_id` Nullable(String) DEFAULT {IMPORT_ID}",
                  f"`insertion_date` DateTime DEFAULT {INSERTED_AT}"]
# A settle (`batch_writes.settle`) cut short after its writes, before it empties the
# unchecked lines, writes the same rows again when it runs next. Its writes carry a token,
# and the storage tables drop a write whose token came among their last writes. Every
# other write carries a token of its own: without one, the engine would drop a write
# whose rows are the same as an earlier one's (`insert_deduplicate = 0` does not stop
# it here).
_DEDUPLICATION_WINDOW = 1000


def view_name(ds: Datasource) -> str:
    """What clients query: Tinybird's `{datasource}_quarantine`."""
    return ds.name + QUARANTINE_SUFFIX


def storage_name(ds: Datasource) -> str:
    return f"_tb_local_{ds.name}_quarantine_rows"


def rejected_rows_name(ds: Datasource) -> str:
    return f"_tb_local_{ds.name}_rejected_rows"


def compact_rows_name(ds: Datasource) -> str:
    return f"_tb_local_{ds.name}_compact_rows"


def missing_reason(column: Column) -> str:
    return (f"missing value for column '{column.name}' (no '{column.json_path or column.name}'"
            " in the event and no DEFAULT)")


def storage_sql(ds: Datasource) -> list[str]:
    whole = [f"{quote_identifier(c.name)} Nullable(String)" for c in ds.columns]
    whole += ["`c__error_column` Array(String)", "`c__error` Array(String)", *FILLED_COLUMNS]
    compact = [f"`{ORIGINAL}` Array(Nullable(String))", "`c__error` Array(String)",
               f"`{MISSING_AT}` Array(UInt16)", f"`{ERROR_AT}` Array(UInt16)",
               f"`{REPEAT}` UInt32 DEFAULT 1", *FILLED_COLUMNS]
    return [f"CREATE TABLE IF NOT EXISTS {quote_identifier(name)} (\n  "
            + ",\n  ".join(columns) + "\n) ENGINE = MergeTree() ORDER BY insertion_date "
            f"SETTINGS non_replicated_deduplication_window = {_DEDUPLICATION_WINDOW}"
            for name, columns in ((storage_name(ds), whole), (compact_rows_name(ds), compact))]


def deduplication_sql(ds: Datasource, engines: dict[str, str]) -> list[str]:
    """The storage tables' window of tokens, for tables made before they had one.

    Args:
        ds: the data source whose storage tables these are.
        engines: each storage table's `engine_full` (`system.tables`): a table whose
            engine names the window already is left alone.
    """
    return [f"ALTER TABLE {quote_identifier(name)} MODIFY SETTING "
            f"non_replicated_deduplication_window = {_DEDUPLICATION_WINDOW}"
            for name in storage_names(ds)
            if "non_replicated_deduplication_window" not in engines.get(name, "")]


def storage_names(ds: Datasource) -> tuple[str, str, str]:
    """The three tables the quarantine view reads."""
    return storage_name(ds), compact_rows_name(ds), rejected_rows_name(ds)


def write_settings(import_id: str, token: str | None = None) -> str:
    """The SETTINGS of a write into a storage table: its import id (and time, see
    `IMPORT_ID`), and the settle's token, or else a new one, so it is never dropped."""
    token = f"{import_id}\t{uuid.uuid4()}" if token is None else token
    return (f"SETTINGS log_comment = {quote_string(import_id)}, "
            f"insert_deduplication_token = {quote_string(token)}")


def view_sql(ds: Datasource) -> str:
    """`{ds}_quarantine` in Tinybird's form, from the three storage tables.

    A compact row's errors are its missing columns' and its own, merged in column order.
    A rejected line is kept whole in the first column, with the reason `__row__`.
    """
    names = "[" + ", ".join(quote_string(c.name) for c in ds.columns) + "]"
    reasons = "[" + ", ".join(quote_string(missing_reason(c)) for c in ds.columns) + "]"
    selected = ", ".join(quote_identifier(c.name) for c in ds.columns)
    by_position = ", ".join(f"{ORIGINAL}[{i}] AS {quote_identifier(c.name)}"
                            for i, c in enumerate(ds.columns, 1))
    positions = f"arrayConcat({MISSING_AT}, {ERROR_AT})"
    # Both arrays are sorted by position with lambdas that read only their arguments:
    # a lambda that reads another column of the row is far slower.
    messages = f"arrayConcat(arrayMap(i -> {reasons}[i], {MISSING_AT}), c__error)"
    first, *others = (quote_identifier(c.name) for c in ds.columns)
    nulls = "".join(f"  CAST(NULL, 'Nullable(String)') AS {name},\n" for name in others)
    return (
        f"CREATE OR REPLACE VIEW {quote_identifier(view_name(ds))} AS\n"
        f"SELECT {selected}, c__error_column, c__error, c__import_id, insertion_date\n"
        f"FROM {quote_identifier(storage_name(ds))}\n"
        "UNION ALL\n"
        f"SELECT {by_position},\n"
        f"  arrayMap(i -> {names}[i], arraySort({positions})) AS c__error_column,\n"
        f"  arraySort((m, i) -> i, {messages}, {positions}) AS c__error,\n"
        "  c__import_id, insertion_date\n"
        f"FROM {quote_identifier(compact_rows_name(ds))} ARRAY JOIN range({REPEAT}) AS copy\n"
        "UNION ALL\n"
        "SELECT CAST(leftUTF8(toValidUTF8(trim(BOTH ' \\t\\r' FROM line)), 65536), "
        f"'Nullable(String)') AS {first},\n"
        f"{nulls}"
        "  ['__row__'] AS c__error_column,\n"
        "  [if(match(line, '^[ \\t\\r]*\\{') OR NOT isValidJSON(line), 'invalid JSON', "
        "'the event is not a JSON object')] AS c__error,\n"
        "  CAST(c__import_id, 'Nullable(String)') AS c__import_id, insertion_date\n"
        f"FROM {quote_identifier(rejected_rows_name(ds))} ARRAY JOIN range({REPEAT}) AS copy")


def rejected_rows_sql(ds: Datasource) -> list[str]:
    """The table of rejected lines, kept as sent, with how many times each came.

    Their value and reason are made when read. The Null table and view that earlier
    versions filled it through are dropped.
    """
    rows = quote_identifier(rejected_rows_name(ds))
    old_lines, old_view = (quote_identifier(f"_tb_local_{ds.name}_rejected_lines{end}")
                           for end in ("", "__mv"))
    return [
        f"CREATE TABLE IF NOT EXISTS {rows} (line String, "
        f"c__import_id String DEFAULT {IMPORT_ID}, "
        f"insertion_date DateTime DEFAULT {INSERTED_AT}, {REPEAT} UInt32 DEFAULT 1) "
        "ENGINE = MergeTree() ORDER BY insertion_date "
        f"SETTINGS non_replicated_deduplication_window = {_DEDUPLICATION_WINDOW}",
        f"ALTER TABLE {rows} ADD COLUMN IF NOT EXISTS {REPEAT} UInt32 DEFAULT 1",
        f"ALTER TABLE {rows} MODIFY COLUMN c__import_id String DEFAULT {IMPORT_ID}",
        f"ALTER TABLE {rows} MODIFY COLUMN insertion_date DateTime DEFAULT {INSERTED_AT}",
        f"DROP VIEW IF EXISTS {old_view}",
        f"DROP TABLE IF EXISTS {old_lines}",
    ]
