"""Read a Tinybird API Endpoint with a JWT: the dashboard's only way to get data.

`PipeClient` sends one request per fetch over one `requests.Session`, measures the
round trip, and on a 403 asks its token source for a fresh JWT and tries once more (the
guide's refresh rule). Failures are typed, as in requests' own hierarchy: catch
`TinybirdError` for all, or one subclass; each carries the status, the server's message
and a hint for the person reading the page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

DEFAULT_TIMEOUT = (3.05, 10.0)  # connect, read


class TokenProvider(Protocol):
    def get(self) -> str: ...

    def invalidate(self) -> None: ...


class TinybirdError(Exception):
    hint = "Check the settings and try again."

    def __init__(self, message: str, status: int | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        if hint:
            self.hint = hint


class AuthError(TinybirdError):
    hint = ("The JWT was refused twice. Check that TINYBIRD_SIGNING_TOKEN is the workspace "
            "admin token (not a personal one), that TINYBIRD_WORKSPACE is that workspace's "
            "id, and that the JWT's scope names this pipe.")


class NotFound(TinybirdError):
    hint = "Check TINYBIRD_PIPE and that the pipe is published as an API Endpoint."


class BadRequest(TinybirdError):
    hint = "A parameter or the pipe's SQL is wrong; the message says which."


class RateLimited(TinybirdError):
    hint = "Too many requests; the next poll will try again."

    def __init__(self, message: str, status: int | None = 429, retry_after: float | None = None):
        super().__init__(message, status)
        self.retry_after = retry_after


class ServerError(TinybirdError):
    hint = "Tinybird had a problem answering; the next poll will try again."


class Unreachable(TinybirdError):
    hint = "Check TINYBIRD_HOST and the network; the next poll will try again."


@dataclass(frozen=True)
class PipeResult:
    data: list[dict[str, Any]]
    meta: list[dict[str, str]]
    rows: int
    elapsed_seconds: float | None  # statistics.elapsed: time spent in the database
    rows_read: int | None
    round_trip_seconds: float
    fetched_at: float = field(default_factory=time.time)


def _server_message(response: requests.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("error"):
            return str(body["error"])
    except ValueError:
        pass
    return f"HTTP {response.status_code}"


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class PipeClient:
    def __init__(self, host: str, tokens: TokenProvider, *, timeout: Any = DEFAULT_TIMEOUT,
                 session: requests.Session | None = None):
        self.host = host.rstrip("/")
        self.tokens = tokens
        self.timeout = timeout
        self.session = session or requests.Session()
        self.requests_sent = 0

    def url(self, pipe: str, fmt: str = "json") -> str:
        return f"{self.host}/v0/pipes/{pipe}.{fmt}"

    def fetch(self, pipe: str, params: dict[str, Any] | None = None) -> PipeResult:
        started = time.perf_counter()
        response = self._send(pipe, params)
        if response.status_code == 403:
            # The guide's rule: a 403 means "get a new JWT", once.
            self.tokens.invalidate()
            response = self._send(pipe, params)
        round_trip = time.perf_counter() - started
        if response.status_code != 200:
            raise self._error(response)
        try:
            body = response.json()
        except ValueError:
            raise ServerError("The endpoint did not answer with JSON", response.status_code)\
                from None
        stats = body.get("statistics") or {}
        return PipeResult(data=body.get("data", []), meta=body.get("meta", []),
                          rows=int(body.get("rows", len(body.get("data", [])))),
                          elapsed_seconds=stats.get("elapsed"), rows_read=stats.get("rows_read"),
                          round_trip_seconds=round_trip)

    def _send(self, pipe: str, params: dict[str, Any] | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens.get()}"}
        self.requests_sent += 1
        try:
            return self.session.get(self.url(pipe), params=params or {}, headers=headers,
                                    timeout=self.timeout)
        except requests.Timeout:
            raise Unreachable(f"{self.host} did not answer in time") from None
        except requests.ConnectionError:
            raise Unreachable(f"Cannot connect to {self.host}") from None
        except requests.RequestException as exc:
            raise Unreachable(f"Request to {self.host} failed: {type(exc).__name__}") from None

    @staticmethod
    def _error(response: requests.Response) -> TinybirdError:
        status, message = response.status_code, _server_message(response)
        if status == 403:
            return AuthError(message, status)
        if status == 404:
            return NotFound(message, status)
        if status == 429:
            return RateLimited(message, status, _retry_after(response))
        if status in (400, 408, 413, 422):
            return BadRequest(message, status)
        if status >= 500:
            return ServerError(message, status)
        return TinybirdError(message, status)
