"""Read a Tinybird API Endpoint with a JWT.

`PipeClient` sends one request per fetch over one `requests.Session` and measures the
round trip. On a 403 it asks its token source for a fresh JWT and tries once more (the
guide's refresh rule). Failures are typed (see `errors`): catch `TinybirdError` for all
of them, or one subclass.

`list_pipes` is the one call made with the admin token. Like JWT minting, it runs in
the server process only, and its answer holds no token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from requests.auth import AuthBase

from .errors import BadResponse, Unreachable
from .http import Bearer, error_for

DEFAULT_TIMEOUT = (3.05, 10.0)  # connect, read


class TokenProvider(Protocol):
    """Where a client gets its JWT: `tokens.TokenSource`, or anything shaped like it."""

    def get(self) -> str: ...

    def invalidate(self) -> None: ...

    @property
    def scope(self) -> str:
        """What the JWTs may read, as stable text: clients with equal scopes may share answers."""
        ...


@dataclass(frozen=True)
class PipeResult:
    """One endpoint answer: its rows, column types, statistics and timings."""

    data: list[dict[str, Any]]
    meta: list[dict[str, str]]
    rows: int
    elapsed_seconds: float | None  # statistics.elapsed: time spent in the database
    rows_read: int | None
    round_trip_seconds: float
    fetched_at: float = field(default_factory=time.time)
    # The request as sent, parameters included: the JWT travels in a header, never here.
    url: str = ""
    # The JSON body as the server sent it, for a reader who wants to see it whole.
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _result(body: object, round_trip: float, url: str = "") -> PipeResult:
    """The PipeResult in a JSON body, or BadResponse if it is not Tinybird's shape."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise BadResponse("The endpoint's JSON has no 'data' list")
    data = body["data"]
    if not all(isinstance(row, dict) for row in data):
        raise BadResponse("The endpoint's 'data' rows are not JSON objects")
    meta = body.get("meta")
    stats = body.get("statistics")
    meta = meta if isinstance(meta, list) else []
    stats = stats if isinstance(stats, dict) else {}
    elapsed, rows_read = stats.get("elapsed"), stats.get("rows_read")
    rows = body.get("rows")
    return PipeResult(
        data=data, meta=meta,
        rows=rows if isinstance(rows, int) and not isinstance(rows, bool) else len(data),
        elapsed_seconds=float(elapsed) if isinstance(elapsed, (int, float)) else None,
        rows_read=rows_read if isinstance(rows_read, int) else None,
        round_trip_seconds=round_trip,
        url=url,
        body=body,
    )


def _get(session: requests.Session, host: str, url: str, params: dict[str, Any] | None,
         auth: AuthBase, timeout: Any) -> requests.Response:
    """One GET; a network failure becomes `Unreachable` naming the host, not the URL.

    The URL is left out of the message on purpose: with `?token=` it could hold a token.
    """
    try:
        return session.get(url, params=params or {}, auth=auth, timeout=timeout)
    except requests.Timeout:
        raise Unreachable(f"{host} did not answer in time") from None
    except requests.ConnectionError:
        raise Unreachable(f"Cannot connect to {host}") from None
    except requests.RequestException as exc:
        raise Unreachable(f"Request to {host} failed: {type(exc).__name__}") from None


ADMIN_AUTH_HINT = ("The workspace admin token was refused: check that it is this workspace's "
                   "admin token and that the host is the workspace's region.")


def list_pipes(host: str, admin_token: str, *, timeout: Any = DEFAULT_TIMEOUT,
               session: requests.Session | None = None) -> list[dict[str, Any]]:
    """`GET /v0/pipes`: every pipe of the workspace, as the server describes it.

    It needs the admin token, so call it in the server process only. The token travels
    in the Authorization header; nothing here keeps or logs it.

    Args:
        host: the API host.
        admin_token: the workspace admin token.
        timeout: (connect, read) seconds, as requests takes them.
        session: a requests session to use; without one, a new one is made and closed.

    Returns:
        The pipes, each the JSON object the server sent.

    Raises:
        TinybirdError: the listing failed or is not the expected shape.
    """
    host = host.rstrip("/")
    own = session is None
    session = session or requests.Session()
    try:
        response = _get(session, host, f"{host}/v0/pipes", None, Bearer(admin_token), timeout)
    finally:
        if own:
            session.close()
    if response.status_code != 200:
        raise error_for(response, ADMIN_AUTH_HINT)
    try:
        body = response.json()
    except ValueError:
        raise BadResponse("The pipe listing is not JSON", response.status_code) from None
    pipes = body.get("pipes") if isinstance(body, dict) else None
    if not isinstance(pipes, list):
        raise BadResponse("The pipe listing has no 'pipes' list", response.status_code)
    return [pipe for pipe in pipes if isinstance(pipe, dict)]


class PipeClient:
    """Reads API Endpoints of one host with the JWTs of one token source.

    Reuse one client: its session keeps the connection open between fetches. Call
    `close()` when done, or use it in a `with` block.
    """

    def __init__(self, host: str, tokens: TokenProvider, *, timeout: Any = DEFAULT_TIMEOUT,
                 session: requests.Session | None = None):
        """Make the client; nothing is sent yet.

        Args:
            host: the API host.
            tokens: where each request gets its JWT.
            timeout: (connect, read) seconds, as requests takes them.
            session: the requests session to use; the client closes it in `close()`.
        """
        self.host = host.rstrip("/")
        self.tokens = tokens
        self.timeout = timeout
        self.session = session or requests.Session()
        self.requests_sent = 0

    def __enter__(self) -> PipeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session and its open connections, including a session passed in."""
        self.session.close()

    def url(self, pipe: str, fmt: str = "json") -> str:
        """The endpoint's URL, without parameters."""
        return f"{self.host}/v0/pipes/{pipe}.{fmt}"

    def request_url(self, pipe: str, params: dict[str, Any] | None = None) -> str:
        """The URL `fetch` sends, parameters included; the JWT is not in it (it is a header)."""
        return requests.Request("GET", self.url(pipe), params=params or {}).prepare().url or ""

    def fetch(self, pipe: str, params: dict[str, Any] | None = None) -> PipeResult:
        """One read of `pipe`; a 403 gets one fresh JWT and one retry. Raises TinybirdError."""
        started = time.perf_counter()
        response = self._send(pipe, params)
        if response.status_code == 403:
            # The guide's rule: a 403 means "get a new JWT", once.
            self.tokens.invalidate()
            response = self._send(pipe, params)
        round_trip = time.perf_counter() - started
        if response.status_code != 200:
            raise error_for(response)
        try:
            body = response.json()
        except ValueError:
            raise BadResponse("The endpoint did not answer with JSON", response.status_code)\
                from None
        return _result(body, round_trip, response.url)

    def _send(self, pipe: str, params: dict[str, Any] | None) -> requests.Response:
        auth = Bearer(self.tokens.get())
        self.requests_sent += 1
        return _get(self.session, self.host, self.url(pipe), params, auth, self.timeout)
