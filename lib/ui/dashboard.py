"""One viewer's connection to the endpoint: its JWT, its client and its last good answer.

Lives in `st.session_state`, one per browser session, so each viewer has a JWT of their
own, minted once and re-minted only near expiry or after a 403.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

from lib.client.errors import TinybirdError
from lib.client.pipes import PipeClient, PipeResult
from lib.client.settings import Settings
from lib.client.tokens import TokenSource

log = logging.getLogger("top_airlines.dashboard")

# The columns the page's chart needs from the endpoint's rows.
CHART_COLUMNS = ("airline", "bookings")
# Polls whose latency the page keeps and charts: five minutes at the default interval.
LATENCY_HISTORY = 60


@dataclass(frozen=True)
class LatencySample:
    """One good poll's timings: the server's statistics.elapsed and the round trip."""

    at: float  # when the answer arrived (Unix seconds)
    elapsed_ms: float | None
    round_trip_ms: float

    @classmethod
    def of(cls, result: PipeResult) -> LatencySample:
        elapsed = None if result.elapsed_seconds is None else result.elapsed_seconds * 1000
        return cls(at=result.fetched_at, elapsed_ms=elapsed,
                   round_trip_ms=result.round_trip_seconds * 1000)


@dataclass
class PollOutcome:
    result: PipeResult | None  # the newest good result (maybe from an earlier poll)
    error: TinybirdError | None  # what went wrong in this poll, if anything

    @property
    def stale_seconds(self) -> float | None:
        """How old the result on screen is, when this poll failed and an older one shows."""
        if self.error is None or self.result is None:
            return None
        return max(0.0, time.time() - self.result.fetched_at)


@dataclass
class DashboardSession:
    host: str
    pipe: str
    tokens: TokenSource
    client: PipeClient
    last_good: PipeResult | None = None
    polls: int = field(default=0)
    columns: tuple[str, ...] = CHART_COLUMNS
    # Bounded, so a page left open for days holds the same few samples.
    latency_history: deque[LatencySample] = field(
        default_factory=lambda: deque(maxlen=LATENCY_HISTORY))

    @classmethod
    def create(cls, host: str, workspace_id: str, signing_token: str,
               settings: Settings) -> DashboardSession:
        """A session with its own token source, so each viewer mints their own JWT."""
        tokens = TokenSource(signing_token, workspace_id, settings.pipe,
                             ttl_seconds=settings.jwt_ttl_seconds)
        return cls(host=host, pipe=settings.pipe, tokens=tokens,
                   client=PipeClient(host, tokens))

    def poll(self) -> PollOutcome:
        """One read of the endpoint; never raises, so no traceback can reach the page."""
        self.polls += 1
        try:
            result = self.client.fetch(self.pipe)
            result.check_columns(self.columns)
        except TinybirdError as exc:
            return PollOutcome(self.last_good, exc)
        except Exception as exc:  # a bug of ours: say so on the page, log the kind only
            log.error("poll of %s failed: %s", self.pipe, type(exc).__name__)
            return PollOutcome(self.last_good, TinybirdError(
                f"Unexpected {type(exc).__name__} while reading the endpoint",
                hint="This is a bug in the dashboard; the next poll will try again."))
        self.last_good = result
        self.latency_history.append(LatencySample.of(result))
        return PollOutcome(result, None)
