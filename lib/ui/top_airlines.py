"""The Top airlines page's poll: one viewer's JWT, its client, and the answer it shares.

A `DashboardSession` is kept in the viewer's session (`st.session_state`), so each viewer
has a JWT of their own. It is minted once and minted again only near expiry or after a
403. The rows come through `shared_fetch`, so all viewers of one view cost one request
per interval.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lib.client.errors import TinybirdError
from lib.client.pipes import PipeClient, PipeResult
from lib.client.tokens import TokenSource
from lib.ui.rows import check_columns

from .settings import DashboardSettings
from .shared_fetch import (
    LatencySample,
    SharedFetches,
    cache_key,
    connection_key,
)

log = logging.getLogger("top_airlines.dashboard")

# The columns the page's chart needs from the endpoint's rows.
CHART_COLUMNS = ("airline", "bookings")
DASHBOARD_JWT_NAME = "top_airlines_dashboard"


@dataclass
class PollOutcome:
    """What one poll gives the page: the rows to draw and this poll's error, if any."""

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
    """One viewer's dashboard: its own JWT source and client, the process's shared answers."""

    host: str
    pipe: str
    tokens: TokenSource
    client: PipeClient
    fetches: SharedFetches
    connection: tuple[str, ...]
    last_good: PipeResult | None = None
    polls: int = field(default=0)
    columns: tuple[str, ...] = CHART_COLUMNS
    # What tells this viewer's view apart (window, meal): part of the shared-fetch key.
    filters: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, host: str, workspace_id: str, signing_token: str, settings: DashboardSettings,
               fetches: SharedFetches | None = None, *, jwt_name: str = DASHBOARD_JWT_NAME,
               valid_until: float | None = None) -> DashboardSession:
        """A session with its own token source, so each viewer mints their own JWT.

        Args:
            host: the Tinybird API host.
            workspace_id: the workspace the JWTs are for.
            signing_token: the workspace admin token; it stays on the server.
            settings: the pipe, the JWT lifetime and rate limit.
            fetches: the process-wide cache viewers share; without one the session
                fetches on every poll.
            jwt_name: the JWTs' `name`.
            valid_until: when the viewer's access ends; no JWT outlives it.
        """
        tokens = TokenSource(signing_token, workspace_id, settings.pipe,
                             ttl_seconds=settings.jwt_ttl_seconds, name=jwt_name,
                             rps=settings.jwt_rps, valid_until=valid_until)
        return cls(host=host, pipe=settings.pipe, tokens=tokens, client=PipeClient(host, tokens),
                   fetches=fetches or SharedFetches(),
                   connection=connection_key(host, workspace_id, signing_token))

    @property
    def key(self) -> tuple[object, ...]:
        """This dashboard's view in the shared cache: the same for every viewer of it."""
        return cache_key(connection=self.connection, pipe=self.pipe, params=self.filters,
                        scope=self.tokens.scope)

    @property
    def latency_history(self) -> deque[LatencySample]:
        """The view's recent good fetches (shared by its viewers), oldest first."""
        return self.fetches.view(self.key).latency_history

    def poll(self, interval_seconds: float = 0.0, filters: Mapping[str, str] | None = None,
             params: Callable[[], Mapping[str, str]] | None = None) -> PollOutcome:
        """The view's answer, fetched only when the shared one is too old; never raises.

        No traceback can reach the page: any failure becomes the outcome's typed error.

        Args:
            interval_seconds: the refresh interval; a shared answer younger than most
                of it is reused (see `shared_fetch.FRESH_SHARE`).
            filters: what names the view for sharing, e.g. `{"window": "1h"}`.
            params: called only when a fetch is due, for the endpoint's parameters, so
                "the last hour" means the hour before that fetch.

        Returns:
            The newest good rows and this poll's error, if any.
        """
        self.polls += 1
        if filters is not None and dict(filters) != dict(self.filters):
            self.filters = dict(filters)
            self.last_good = None  # another view's rows must not stand in for this one's
        key = self.key
        try:
            outcome = self.fetches.fetch(key, interval_seconds,
                                         lambda: self._fetch(dict(params() if params else {})))
        except Exception as exc:  # a bug in this app: say so on the page, log the kind only
            log.error("poll of %s failed: %s", self.pipe, type(exc).__name__)
            return PollOutcome(self.last_good, TinybirdError(
                f"Unexpected {type(exc).__name__} while reading the endpoint",
                hint="This is a bug in the dashboard; the next poll will try again."))
        if outcome.error is not None:
            return PollOutcome(self.last_good or self.fetches.view(key).last_good,
                               outcome.error)
        self.last_good = outcome.result
        return PollOutcome(outcome.result, None)

    def _fetch(self, params: dict[str, str]) -> PipeResult:
        """The one request, with this viewer's JWT; rows checked before anyone sees them."""
        result = self.client.fetch(self.pipe, params or None)
        check_columns(result, self.columns)
        return result
