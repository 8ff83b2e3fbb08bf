"""Send events to a Tinybird Events API (ours or Tinybird's cloud), losing none.

One persistent session; NDJSON batches to `POST /v0/events?name=...` with the token in
the Authorization header. A 429 waits for `Retry-After`; a network fault or a 5xx retries
the same batch with backoff. A 4xx that will not heal raises at once with the server's
message, because retrying a refused token only hides the mistake.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import requests
from urllib3.exceptions import NewConnectionError


class EventsError(Exception):
    """The batch could not be delivered; the message says why, for a person."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status, self.retryable = status, retryable


@dataclass(frozen=True)
class SendResult:
    successful_rows: int
    quarantined_rows: int
    attempts: int


def to_ndjson(events: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events).encode()


class EventsClient:
    def __init__(self, host: str, token: str, *, timeout: float = 30.0, max_attempts: int = 6,
                 backoff_seconds: float = 0.5, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.host = host.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.session = session or requests.Session()
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"EventsClient(host={self.host!r})"

    def send(self, datasource: str, events: list[dict[str, Any]], wait: bool = True) -> SendResult:
        """Deliver one batch. `wait=True` so that a success means written and durable.

        A retry after a lost response could add the batch twice, so a batch is sent again
        only when it certainly was not written: the connection was never made, or the
        server answered 429 or 5xx.
        """
        body = to_ndjson(events)
        params = {"name": datasource}
        if wait:
            params["wait"] = "true"
        headers = {"Authorization": f"Bearer {self._token}",
                   "Content-Type": "application/x-ndjson"}
        delay = self.backoff_seconds
        last_error: EventsError | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.session.post(f"{self.host}/v0/events", params=params, data=body,
                                             headers=headers, timeout=self.timeout)
            except requests.ConnectionError as exc:  # includes ConnectTimeout
                if not _never_sent(exc):
                    raise EventsError(f"the connection to {self.host} broke during the request; "
                                      "the batch may or may not have been written") from None
                last_error = EventsError(f"cannot reach {self.host}", retryable=True)
            except requests.Timeout:
                raise EventsError(f"{self.host} did not answer in {self.timeout:g}s; the batch "
                                  "may or may not have been written") from None
            else:
                if response.status_code in (200, 202):
                    payload = response.json()
                    return SendResult(int(payload.get("successful_rows", 0)),
                                      int(payload.get("quarantined_rows", 0)), attempt)
                message = _message(response)
                if response.status_code == 429:
                    wait_for = _retry_after(response) or delay
                    last_error = EventsError(f"rate limited: {message}", 429, retryable=True)
                    if attempt < self.max_attempts:
                        self._sleep(wait_for)
                    continue
                if response.status_code >= 500:
                    last_error = EventsError(f"server error {response.status_code}: {message}",
                                             response.status_code, retryable=True)
                else:
                    raise EventsError(_explain(response.status_code, message, datasource),
                                      response.status_code)
            if attempt < self.max_attempts:
                self._sleep(delay)
                delay = min(delay * 2, 30.0)
        assert last_error is not None
        raise last_error


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection was never made, so a retry cannot add rows twice."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("error") or response.text[:200])
    except ValueError:
        return response.text[:200] or f"HTTP {response.status_code}"


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _explain(status: int, message: str, datasource: str) -> str:
    if status == 403:
        return f"token lacks APPEND on {datasource} (or is not valid): {message}"
    if status == 413:
        return f"batch too large: {message}; send smaller batches"
    return f"refused ({status}): {message}"
