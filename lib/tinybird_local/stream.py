"""New bookings every second while `serve --stream N` runs, so a chart pointed at it moves.

The dashboard's embedded server does the same with a trickle of bookings through the
Events API. Here the rows come from the seed's own generator (`seed_bookings`, drawn
inside the engine with the distributions of `lib.bookings`), stamped within the last
interval, so Tinybird Local needs no client of itself and no second generator.
"""

from __future__ import annotations

import logging
import threading

from .datafiles import Datasource
from .engine import Engine, EngineError
from .seeding import seed_bookings

log = logging.getLogger("tinybird_local.stream")
SECONDS_PER_DAY = 86_400


class BookingStream(threading.Thread):
    """Inserts `rows_per_second` generated bookings a second, in one batch an interval."""

    def __init__(self, engine: Engine, datasource: Datasource, rows_per_second: float):
        """Check the data source can take bookings; nothing is written until `start`.

        Args:
            engine: the server's engine.
            datasource: the data source to fill; it must have the booking columns.
            rows_per_second: the pace; more than 0.

        Raises:
            SeedError: the data source lacks booking columns.
            ValueError: the pace is not more than 0.
        """
        super().__init__(name="tinybird-local-stream", daemon=True)
        if not rows_per_second > 0:
            raise ValueError(f"the stream's pace must be more than 0, not {rows_per_second}")
        seed_bookings(engine, datasource, 0)  # raises SeedError for a wrong data source
        self.engine = engine
        self.datasource = datasource
        # Whole rows each time: a slow pace sends one row less often.
        self.batch = max(1, round(rows_per_second))
        self.interval = self.batch / rows_per_second
        self.stopped = threading.Event()
        self.sent = 0

    def run(self) -> None:
        """One batch an interval until stopped; a failed batch is logged and skipped."""
        days = self.interval / SECONDS_PER_DAY
        while not self.stopped.wait(self.interval):
            try:
                self.sent += seed_bookings(self.engine, self.datasource, self.batch, days=days)
            except EngineError as exc:
                log.warning("streamed bookings skipped: %s", exc.message)

    def stop(self) -> None:
        """Stop after the batch being written, if any."""
        self.stopped.set()
        self.join(timeout=10)
