"""Run Tinybird Local inside the app's process: what the dashboard uses with no settings.

`start_embedded` is the one place the app uses `lib.tinybird_local`; the server itself
knows nothing of the app. It serves the datafiles on a loopback port and seeds bookings
when `events` is empty. Then it keeps sending a few new bookings every second through
the Events API, so the page shows a moving chart with no account and no network. The
caller gets only what a real workspace would give: a host, a workspace id and a
signing token.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from lib.bookings.generator import BookingGenerator
from lib.client.errors import TinybirdError
from lib.client.events import EventsClient
from lib.tinybird_local import LocalServer, seed_bookings

PROJECT_DIR = Path(__file__).resolve().parents[2] / "tinybird"
log = logging.getLogger("top_airlines.embedded")


@dataclass(frozen=True)
class EmbeddedTinybird:
    """Where the running embedded server is, as a real workspace would be described."""

    host: str
    workspace_id: str
    signing_token: str
    data_dir: str
    seeded_rows: int


class _Trickle(threading.Thread):
    """Sends a few generated bookings every second until stopped."""

    def __init__(self, client: EventsClient, events_per_second: float):
        super().__init__(name="tinybird-local-trickle", daemon=True)
        self.client = client
        self.events_per_second = events_per_second
        self.generator = BookingGenerator()
        self.stopped = threading.Event()
        self.sent = 0

    def run(self) -> None:
        """Send one batch per interval; a failure is logged and the next batch still goes."""
        batch = max(1, round(self.events_per_second))
        interval = batch / self.events_per_second
        while not self.stopped.wait(interval):
            try:
                result = self.client.send("events", list(self.generator.bookings(batch)))
                self.sent += result.successful_rows
            except TinybirdError as exc:
                log.warning("live bookings paused: %s", exc)


def start_embedded(data_dir: Path | str, project_dir: Path | str = PROJECT_DIR, *,
                   seed_rows: int = 100_000, events_per_second: float = 5.0,
                   port: int = 0) -> EmbeddedTinybird:
    """Start Tinybird Local in a thread of this process; it stops when the process exits.

    Args:
        data_dir: where the server keeps its data.
        project_dir: the datafiles to serve.
        seed_rows: bookings to add when `events` is empty; 0 for none.
        events_per_second: the pace of new bookings; 0 for none.
        port: the loopback port; 0 picks a free one.

    Returns:
        The host, workspace id and signing token to use, as for a real workspace.
    """
    server = LocalServer(project_dir, data_dir, port=port)
    seeded = 0
    events = server.state.project.datasources.get("events")
    if events is not None and seed_rows and server.state.engine.row_count("events") == 0:
        seeded = seed_bookings(server.state.engine, events, seed_rows)
    server.start_in_thread()
    workspace = server.workspace
    trickle = None
    if events is not None and events_per_second > 0:
        # Few retries: a late batch is skipped rather than queued behind long waits.
        client = EventsClient(server.url, workspace.admin_token, max_attempts=2)
        trickle = _Trickle(client, events_per_second)
        trickle.start()

    def stop() -> None:
        if trickle:
            trickle.stopped.set()
            trickle.join(timeout=5)
        server.stop()

    atexit.register(stop)
    return EmbeddedTinybird(host=server.url, workspace_id=workspace.workspace_id,
                            signing_token=workspace.admin_token, data_dir=str(data_dir),
                            seeded_rows=seeded)
