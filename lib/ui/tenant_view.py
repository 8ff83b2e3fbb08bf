"""An airline partner's view: its own bookings, read with a JWT pinned to its airline.

This follows Tinybird's multi-tenancy recipe. The backend mints a JWT whose scopes carry
`fixed_params: {"airline": <partner>}`, and the server puts that value in the query
whatever the request says. The partner's requests do not even send `airline`. `peek`
shows the pin at work: the same request with another airline in the URL still answers
with the partner's own bookings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lib.client.errors import TinybirdError
from lib.client.pipes import PipeClient, PipeResult
from lib.client.tokens import TokenSource
from lib.ui.rows import check_columns
from lib.ui.shared_fetch import SharedFetches
from lib.ui.view_state import ViewState

DAILY_PIPE, ROUTES_PIPE, MEALS_PIPE = "airline_daily_bookings", "airline_top_routes", \
    "airline_meal_mix"
TENANT_PIPES = (DAILY_PIPE, ROUTES_PIPE, MEALS_PIPE)
# The endpoints' parameter that names the tenant: the one a JWT pins.
TENANT_PARAM = "airline"
# The columns each chart needs, the number it draws last.
COLUMNS = {
    DAILY_PIPE: ("day", "bookings"),
    ROUTES_PIPE: ("flight_from", "flight_to", "bookings"),
    MEALS_PIPE: ("meal_choice", "bookings"),
}
# The peek asks the daily bookings endpoint, so the answers can be compared day by day.
PEEK_PIPE = DAILY_PIPE


def jwt_name(airline: str) -> str:
    """`tenant_<name>`: one JWT name per tenant.

    With its own name, a tenant's reads can be told apart in `tinybird.pipe_stats_rt`,
    and Tinybird counts `limits.rps` per name.
    """
    return "tenant_" + (re.sub(r"[^a-z0-9]+", "_", airline.lower()).strip("_") or "unnamed")


def tenant_client(host: str, workspace_id: str, signing_token: str, airline: str, *,
                  ttl_seconds: float, name: str | None = None, rps: float | None = None,
                  valid_until: float | None = None) -> PipeClient:
    """A client whose JWTs read the tenant endpoints for `airline` and nothing else.

    Args:
        host: the Tinybird API host.
        workspace_id: the workspace the JWTs are for.
        signing_token: the workspace admin token; it stays on the server.
        airline: the tenant, pinned in every JWT's `fixed_params`.
        ttl_seconds: each JWT's lifetime.
        name: the JWTs' `name`; by default `jwt_name(airline)`.
        rps: the JWTs' `limits.rps`, if any.
        valid_until: when the viewer's access ends; no JWT outlives it.
    """
    tokens = TokenSource(signing_token, workspace_id, list(TENANT_PIPES),
                         ttl_seconds=ttl_seconds, name=name or jwt_name(airline), rps=rps,
                         fixed_params={TENANT_PARAM: airline}, valid_until=valid_until)
    return PipeClient(host, tokens)


def request_params(view: ViewState, pipe: str) -> dict[str, str]:
    """What the page sends: the date range (and top N for routes). Never `airline`."""
    params = {"date_from": view.date_from.isoformat(), "date_to": view.date_to.isoformat()}
    if pipe == ROUTES_PIPE:
        params["limit"] = str(view.top)
    return params


def _bookings(result: PipeResult | None) -> int:
    """The sum of the rows' `bookings`; 0 without a result."""
    return sum(int(row["bookings"]) for row in result.data) if result else 0


@dataclass(frozen=True)
class TenantReport:
    """The three endpoints' answers for one view; `error` is the first failure, if any."""

    daily: PipeResult | None = None
    routes: PipeResult | None = None
    meals: PipeResult | None = None
    error: TinybirdError | None = None

    @property
    def total_bookings(self) -> int:
        return _bookings(self.daily)

    def meal_average(self, column: str) -> float | None:
        """A per-booking average of a meal-mix column, weighted by each row's bookings."""
        if self.meals is None or not self.meals.data:
            return None
        weights = [int(row["bookings"]) for row in self.meals.data]
        if not sum(weights):
            return None
        total = sum(float(row.get(column) or 0) * w for row, w in zip(
            self.meals.data, weights, strict=True))
        return total / sum(weights)

    @property
    def slowest_elapsed_seconds(self) -> float | None:
        elapsed = [r.elapsed_seconds for r in (self.daily, self.routes, self.meals)
                   if r is not None and r.elapsed_seconds is not None]
        return max(elapsed) if elapsed else None


def fetch_report(client: PipeClient, view: ViewState,
                 shared: SharedFetches | None = None,
                 connection: tuple[str, ...] = ()) -> TenantReport:
    """The three endpoints for `view`, one after the other.

    With `shared`, viewers of the same tenant view share each answer for most of the
    refresh interval. The JWT's fixed_params are part of the cache key, so no other
    tenant's viewer is ever handed these rows.

    Args:
        client: the tenant's client (see `tenant_client`).
        view: the dates and top N to ask for.
        shared: the process-wide cache; None fetches every time.
        connection: the connection key the cache is keyed by, with `shared`.

    Returns:
        The answers so far; the first failure is the report's `error`, never raised.
    """
    results: dict[str, PipeResult] = {}
    for pipe in TENANT_PIPES:
        params = request_params(view, pipe)
        try:
            if shared is None:
                result = client.fetch(pipe, params)
                check_columns(result, COLUMNS[pipe])
            else:
                result = shared.fetch_pipe(client, connection, pipe, params,
                                           view.refresh_seconds, COLUMNS[pipe])
        except TinybirdError as exc:
            return TenantReport(results.get(DAILY_PIPE), results.get(ROUTES_PIPE),
                                results.get(MEALS_PIPE), error=exc)
        results[pipe] = result
    return TenantReport(results[DAILY_PIPE], results[ROUTES_PIPE], results[MEALS_PIPE])


def _per_day(result: PipeResult | None) -> dict[str, int]:
    """Bookings by day in a daily-bookings answer; empty without a result."""
    return {str(row["day"]): int(row["bookings"]) for row in result.data} if result else {}


@dataclass(frozen=True)
class PeekOutcome:
    """The tenant's JWT asked for another airline's rows: what came back, day by day."""

    tenant: str
    asked_for: str
    url: str  # the request as sent, with `airline=<asked_for>`; the JWT is a header
    own_before: Mapping[str, int] = field(default_factory=dict)
    answered: Mapping[str, int] = field(default_factory=dict)
    own_after: Mapping[str, int] = field(default_factory=dict)
    error: TinybirdError | None = None

    @property
    def answered_total(self) -> int:
        return sum(self.answered.values())

    @property
    def own_total(self) -> int:
        return sum(self.own_before.values())

    @property
    def pinned(self) -> bool:
        """True when every day's answer is the tenant's own count for that day.

        Bookings are only ever added. So on each day, a pinned answer lies between the
        tenant's own count read just before the peek and the one read just after.
        Another airline's rows would fall outside those bounds on some day, or add a day
        on which the tenant has no bookings.
        """
        if self.error is not None:
            return False
        days = set(self.own_before) | set(self.answered) | set(self.own_after)
        return all(self.own_before.get(d, 0) <= self.answered.get(d, 0)
                   <= self.own_after.get(d, 0) for d in days)

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return f"The peek could not be sent: {self.error.message}"
        if not self.pinned:
            return (f"The answer to airline={self.asked_for} is not {self.tenant}'s own: the "
                    "server did not enforce the JWT's fixed_params.")
        return (f"Asked for `airline={self.asked_for}` with {self.tenant}'s JWT, the server "
                f"answered {self.answered_total:,} bookings over {len(self.answered)} days: "
                f"{self.tenant}'s own numbers, day by day. The JWT's fixed_params pin "
                f"`airline={self.tenant}`, so the URL's value was ignored.")


def peek(client: PipeClient, view: ViewState, asked_for: str,
         own: PipeResult | None = None) -> PeekOutcome:
    """Send the daily-bookings request with `airline=<asked_for>` in the URL, on the tenant's JWT.

    The tenant's own rows are read again after the peek only if the answers differ.
    New bookings may have arrived in between, and the second read tells them apart from
    another airline's rows.

    Args:
        client: `view.tenant`'s client (see `tenant_client`).
        view: the tenant's view; its dates go in the request.
        asked_for: the airline put in the URL.
        own: the tenant's answer for the same view, when the page already has it.

    Returns:
        What came back, day by day, beside the tenant's own counts.
    """
    tenant = view.tenant
    params: dict[str, Any] = {**request_params(view, PEEK_PIPE), TENANT_PARAM: asked_for}
    url = client.request_url(PEEK_PIPE, params)
    try:
        before = own if own is not None else client.fetch(PEEK_PIPE,
                                                          request_params(view, PEEK_PIPE))
        answered = client.fetch(PEEK_PIPE, params)
        after = before
        if _per_day(answered) != _per_day(before):
            after = client.fetch(PEEK_PIPE, request_params(view, PEEK_PIPE))
    except TinybirdError as exc:
        return PeekOutcome(tenant, asked_for, url, error=exc)
    return PeekOutcome(tenant, asked_for, url, _per_day(before), _per_day(answered),
                       _per_day(after))

