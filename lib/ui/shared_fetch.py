"""One fetch per refresh interval for every viewer of the same view.

A shared dashboard link means many viewers asking for the same rows. Each viewer keeps
a JWT of their own (minted again before `exp` and after a 403), but the rows come from
one process-wide cache. The first viewer whose poll finds the cached answer older than
its interval fetches, with its own JWT. Viewers who poll meanwhile wait for that fetch
and take its answer: at most one request per key is in flight ("single flight"). So a
hundred viewers of one link cost Tinybird one request per interval.

The key holds everything that decides what the server may answer: the connection (host,
workspace, and a fingerprint of the signing token), the pipe, the request's parameters,
and the JWT's scope with its `fixed_params`. Two tenants' JWTs pin different airlines,
so their keys differ, and one tenant's rows can never reach another tenant's viewer.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lib.client.errors import TinybirdError
from lib.client.pipes import PipeClient, PipeResult
from lib.ui.rows import check_columns

# Good fetches whose latency a view keeps and charts: five minutes at the default interval.
LATENCY_HISTORY = 60
# Views kept at most; past that, the ones idle longest are dropped (a view is cheap to
# start again: its next poll fetches).
MAX_VIEWS = 512
# A cached answer serves polls for this share of their interval: a viewer whose timer
# fires a little early still gets fresh rows, and one interval costs at most two fetches.
FRESH_SHARE = 0.8


@dataclass(frozen=True)
class LatencySample:
    """One good fetch's timings: the server's statistics.elapsed and the round trip."""

    at: float  # when the answer arrived (Unix seconds)
    elapsed_ms: float | None
    round_trip_ms: float

    @classmethod
    def of(cls, result: PipeResult) -> LatencySample:
        elapsed = None if result.elapsed_seconds is None else result.elapsed_seconds * 1000
        return cls(at=result.fetched_at, elapsed_ms=elapsed,
                   round_trip_ms=result.round_trip_seconds * 1000)


@dataclass(frozen=True)
class FetchOutcome:
    """What one fetch gave: rows or a typed error, and when (monotonic seconds)."""

    result: PipeResult | None
    error: TinybirdError | None
    at: float


@dataclass
class View:
    """Everything the process knows of one view: its newest answer and recent latency."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latest: FetchOutcome | None = None
    last_good: PipeResult | None = None
    fetches: int = 0
    latency_history: deque[LatencySample] = field(
        default_factory=lambda: deque(maxlen=LATENCY_HISTORY))


def connection_key(host: str, workspace_id: str, signing_token: str) -> tuple[str, str, str]:
    """Enough to tell connections apart, a changed signing token too, without the token.

    Args:
        host: the API host.
        workspace_id: the workspace.
        signing_token: the workspace admin token; only a short hash of it is kept.

    Returns:
        `(host, workspace_id, token_hash)`.
    """
    return (host, workspace_id, hashlib.sha256(signing_token.encode()).hexdigest()[:16])


def cache_key(*, connection: tuple[str, ...], pipe: str, params: Mapping[str, Any] | None,
             scope: str) -> tuple[object, ...]:
    """The cache key of a view.

    Args:
        connection: the `connection_key` of the host, workspace and signing token.
        pipe: the endpoint.
        params: the request's parameters, or None.
        scope: the JWT's scopes with their fixed_params, as JSON (`TokenSource.scope`).

    Returns:
        A hashable key, equal for every viewer of the same view.
    """
    shown = tuple(sorted((str(k), json.dumps(v, sort_keys=True, default=str))
                         for k, v in (params or {}).items()))
    return (connection, pipe, shown, scope)


class SharedFetches:
    """The process-wide views; `fetch` is safe to call from every session's thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock  # monotonic seconds; tests pass a clock they move themselves
        self._views: dict[tuple[object, ...], View] = {}
        self._lock = threading.Lock()

    def view(self, key: tuple[object, ...]) -> View:
        """The view for `key`, made on first use; idle views are dropped past `MAX_VIEWS`."""
        with self._lock:
            view = self._views.get(key)
            if view is None:
                if len(self._views) >= MAX_VIEWS:
                    self._drop_idle()
                view = self._views[key] = View()
            return view

    def _drop_idle(self) -> None:
        """Forget the half of the views that fetched least recently."""
        def last_fetch(key: tuple[object, ...]) -> float:
            latest = self._views[key].latest
            return latest.at if latest is not None else 0.0

        for key in sorted(self._views, key=last_fetch)[:len(self._views) // 2]:
            del self._views[key]

    def fetch(self, key: tuple[object, ...], interval_seconds: float,
              fetch: Callable[[], PipeResult]) -> FetchOutcome:
        """The view's answer, fetched only if the cached one is too old.

        The view's lock is held while fetching, so a second caller waits until the first
        caller's answer is in, then takes it. A failure is shared the same way, so an
        outage also costs the API one request per interval.

        Args:
            key: the view's `cache_key`.
            interval_seconds: the refresh interval; an answer younger than
                `FRESH_SHARE` of it is reused.
            fetch: makes the request; a `TinybirdError` it raises becomes the outcome's
                error.

        Returns:
            The newest outcome, fetched now or shared.
        """
        view = self.view(key)
        with view.lock:
            latest = view.latest
            if latest is not None and self.clock() - latest.at < interval_seconds * FRESH_SHARE:
                return latest
            try:
                outcome = FetchOutcome(fetch(), None, self.clock())
            except TinybirdError as exc:
                outcome = FetchOutcome(None, exc, self.clock())
            view.fetches += 1
            view.latest = outcome
            if outcome.result is not None:
                view.last_good = outcome.result
                view.latency_history.append(LatencySample.of(outcome.result))
            return outcome

    def fetch_pipe(self, client: PipeClient, connection: tuple[str, ...], pipe: str,
                   params: Mapping[str, Any] | None, interval_seconds: float,
                   columns: Sequence[str] = ()) -> PipeResult:
        """`client.fetch(pipe, params)`, shared with every viewer of the same view.

        The key takes the scope from the client's own token source.

        Args:
            client: this viewer's client; its JWT is used if a fetch is due.
            connection: the `connection_key` the cache is keyed by.
            pipe: the endpoint.
            params: the request's parameters, or None.
            interval_seconds: the refresh interval (see `fetch`).
            columns: the columns every row must have, the last a number; checked
                before the answer is shared.

        Returns:
            The rows.

        Raises:
            TinybirdError: the fetch's error, the same one for every viewer it is
                shared with.
        """
        key = cache_key(connection=connection, pipe=pipe, params=params,
                       scope=client.tokens.scope)

        def fetch() -> PipeResult:
            result = client.fetch(pipe, dict(params or {}))
            check_columns(result, columns)
            return result

        outcome = self.fetch(key, interval_seconds, fetch)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.result is not None  # one of the two is always set
        return outcome.result
