"""Bulk-load generated bookings straight into the engine, for `seed` and the demo.

The rows are made by `lib.bookings.distributions.seed_select_sql` inside ClickHouse, so a
million bookings take seconds and share the distributions of the streamed ones.
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


def seed_bookings(engine: Engine, datasource: Datasource, rows: int, days: int = 30,
                  seed: int | None = None) -> int:
    """Insert `rows` bookings into `datasource`; returns how many were inserted."""
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
