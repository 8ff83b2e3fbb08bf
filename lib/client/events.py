"""Send events to a Tinybird Events API (Tinybird Local or the cloud), never counting one twice.

The client keeps one session open and posts NDJSON batches to
`POST /v0/events?name=...`, with the token in the Authorization header.

A batch is sent again only when it certainly was not written:
- the connection was never made (it waits longer before each new try);
- the server said so: 429 (it waits as long as `Retry-After` asks) or 503.

A connection that breaks mid-request, a read timeout, or a 500, 502 or 504 may have
written the batch. Those raise an error whose `maybe_written` is true (`OutcomeUnknown`,
`ServerError`) instead of retrying, because a silent retry there counts rows twice. Any
other 4xx raises at once with the server's message: retrying a refused token would only
hide the mistake.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import NameResolutionError, NewConnectionError

from .errors import (
    AuthError,
    BadRequest,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    ServerError,
    TinybirdError,
    Unreachable,
)
from .http import Bearer, retry_after, server_message

USER_AGENT = "top-airlines-events/1"


@dataclass(frozen=True)
class SendResult:
    successful_rows: int
    quarantined_rows: int
    attempts: int


def to_ndjson(events: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events).encode()


class EventsClient:
    """A client for one host and token; reuse it, its session keeps the connection open.

    Call `close()` when done, or use it in a `with` block.
    """

    def __init__(self, host: str, token: str, *, timeout: float = 30.0,
                 connect_timeout: float = 5.0, max_attempts: int = 6,
                 backoff_seconds: float = 0.5, max_backoff_seconds: float = 30.0,
                 session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[TinybirdError, float, int], None] | None = None):
        """Make the client; nothing is sent yet.

        Args:
            host: the API host, e.g. `https://api.tinybird.co`.
            token: a token with APPEND on the Data Sources to write.
            timeout: seconds to wait for an answer once a batch is sent.
            connect_timeout: seconds to wait for a connection (at most `timeout`).
            max_attempts: tries per batch, the first included.
            backoff_seconds: the first wait before a new try; it doubles each time.
            max_backoff_seconds: the longest wait between tries.
            session: the requests session to use; the client closes it in `close()`.
            sleep: how to wait (tests pass one that does not).
            on_retry: called as `on_retry(error, delay_seconds, next_attempt)` before
                each wait, so a command-line tool can say why it waits.
        """
        self.host = host.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.session = session or requests.Session()
        self._sleep = sleep
        self._on_retry = on_retry

    def __repr__(self) -> str:  # never the token
        return f"EventsClient(host={self.host!r})"

    def __enter__(self) -> EventsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session and its open connections, including a session passed in."""
        self.session.close()

    def send(self, datasource: str, events: list[dict[str, Any]], wait: bool = True) -> SendResult:
        """Deliver one batch, retrying only while it cannot have been written.

        Args:
            datasource: the Data Source to append to.
            events: the rows, as JSON objects.
            wait: ask the server to answer only once the rows are written, so that a
                success means they are stored.

        Returns:
            The rows written and quarantined, and how many tries it took.

        Raises:
            TinybirdError: the batch was refused, or the tries ran out.
            OutcomeUnknown: the batch may or may not have been written.
        """
        if not events:
            return SendResult(0, 0, 0)
        body = to_ndjson(events)
        params = {"name": datasource}
        if wait:
            params["wait"] = "true"
        headers = {"Content-Type": "application/x-ndjson", "User-Agent": USER_AGENT}
        delay = self.backoff_seconds
        for attempt in range(1, self.max_attempts + 1):
            outcome = self._attempt(datasource, params, body, headers)
            if isinstance(outcome, SendResult):
                return SendResult(outcome.successful_rows, outcome.quarantined_rows, attempt)
            error = outcome
            wait_for = error.retry_after if isinstance(error, RateLimited) else None
            if wait_for is None:
                wait_for = delay
            if attempt == self.max_attempts:
                tries = "once" if attempt == 1 else f"{attempt} times"
                if error.status is None:
                    raise _reworded(error, f"{error}, tried {tries}; is the server running and "
                                           "the host right?")
                raise _reworded(error, f"{error} (tried {tries})")
            if self._on_retry:
                self._on_retry(error, wait_for, attempt + 1)
            self._sleep(wait_for)
            delay = min(delay * 2, self.max_backoff_seconds)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, datasource: str, params: dict[str, str], body: bytes,
                 headers: dict[str, str]) -> SendResult | TinybirdError:
        """One POST: its result, or the retryable error to wait on; raises the others."""
        try:
            response = self.session.post(
                f"{self.host}/v0/events", params=params, data=body, headers=headers,
                auth=Bearer(self._token), timeout=(self.connect_timeout, self.timeout),
                allow_redirects=False)
        except requests.exceptions.SSLError:
            raise TinybirdError(f"TLS handshake with {self.host} failed: check the host name "
                                "and the certificates") from None
        except requests.ConnectionError as exc:  # includes ConnectTimeout
            if not _never_sent(exc):
                raise OutcomeUnknown(f"the connection to {self.host} broke during the request; "
                                     "the batch may or may not have been written, so it was "
                                     "not sent again") from None
            return Unreachable(f"cannot reach {self.host} ({_reason(exc)})")
        except requests.Timeout:  # a read timeout: the server had the whole batch
            raise OutcomeUnknown(f"{self.host} did not answer in {self.timeout:g}s; the batch "
                                 "may or may not have been written, so it was not sent "
                                 "again") from None
        except requests.RequestException as exc:  # a bad URL and the like
            raise TinybirdError(f"cannot send to {self.host}: {exc}") from None
        if 200 <= response.status_code < 300:
            return _result(response, self.host)
        error = _refusal(response, datasource, self.host)
        if not error.retryable:
            raise error
        return error


def _reworded(error: TinybirdError, message: str) -> TinybirdError:
    """A copy of `error` (same class, status and flags) with a new message."""
    reworded = copy.copy(error)
    reworded.args = (message,)
    reworded.message = message
    return reworded


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection was never made, so a retry cannot add rows twice."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def _reason(exc: requests.ConnectionError) -> str:
    """'connection refused', 'name resolution failed', ... for a connection never made."""
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out"
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, NameResolutionError):
        return "the host name does not resolve"
    cause = getattr(reason, "__cause__", None) or getattr(reason, "__context__", None)
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return "no connection"


def _result(response: requests.Response, host: str) -> SendResult:
    """The counts in a 2xx answer; `OutcomeUnknown` when it is not the Events API's body."""
    try:
        payload = response.json()
        return SendResult(int(payload["successful_rows"]),
                          int(payload.get("quarantined_rows", 0)), 1)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise OutcomeUnknown(f"{host} answered {response.status_code} without the Events API's "
                             "body; is it a Tinybird API host? The batch may or may not have "
                             "been written", response.status_code) from None


def _refusal(response: requests.Response, datasource: str, host: str) -> TinybirdError:
    """The typed error for a refused batch, with a message that says what to do."""
    status = response.status_code
    message = server_message(response)
    if status == 429:
        return RateLimited(f"rate limited: {message}", status, retry_after(response))
    if status == 503:
        return ServerError(f"{host} is unavailable (503): {message}", status)
    if status >= 500:
        return ServerError(f"server error {status}: {message}; the batch may or may not have "
                           "been written, so it was not sent again", status)
    if status in (401, 403):
        return AuthError(f"token lacks APPEND on {datasource} (or is not valid): {message}",
                         status)
    if status == 404:
        return NotFound(f"{host} has no Events API for this token (404: {message}); check "
                        "the host is your workspace's region", status)
    if status == 413:
        return BadRequest(f"batch too large: {message}; send smaller batches", status)
    if 300 <= status < 400:
        return TinybirdError(f"{host} redirects to {response.headers.get('Location', '?')}; "
                             "use that host", status)
    if 400 <= status < 500:
        return BadRequest(f"refused ({status}): {message}", status)
    return TinybirdError(f"refused ({status}): {message}", status)
