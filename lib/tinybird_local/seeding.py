"""Bulk-load generated bookings straight into the engine, for `seed` and the demo.

The rows are made by `lib.bookings.distributions.seed_select_sql` inside ClickHouse, so a
seed of any size is one statement, and shares the distributions of the streamed rows.
"""

from __future__ import annotations

import random

from lib.bookings.distributions import COLUMNS, seed_select_sql

from .datafile_sql import NO_TIME_LIMIT
from .datafiles import Datasource
from .engine import Engine
from .sql_template import quote_identifier


class SeedError(ValueError):
    pass


def seed_bookings(engine: Engine, datasource: Datasource, rows: int, days: float = 30,
                  seed: int | None = None) -> int:
    """Insert generated bookings into `datasource`.

    Args:
        engine: the engine to write into.
        datasource: a data source with the booking columns.
        rows: how many bookings.
        days: the bookings' times spread over this many days up to now.
        seed: the generator's seed; random if None.

    Returns:
        How many were inserted.
    """
    if rows < 0:
        raise SeedError("rows must be zero or more")
    missing = [c for c in COLUMNS if datasource.column(c) is None]
    if missing:
        raise SeedError(f"datasource '{datasource.name}' has no booking column(s): "
                        + ", ".join(missing))
    if rows == 0:
        return 0
    seed = random.randrange(2**31) if seed is None else seed
    columns = ", ".join(quote_identifier(c) for c in COLUMNS)
    engine.execute(f"INSERT INTO {quote_identifier(datasource.name)} ({columns})\n"
                   f"SELECT {columns} FROM ({seed_select_sql(rows, days=days, seed=seed)})\n"
                   f"{NO_TIME_LIMIT}")
    return rows
