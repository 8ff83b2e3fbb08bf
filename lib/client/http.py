"""What every request to Tinybird shares: the bearer token, the server's message, errors.

One place turns an HTTP answer into a typed `TinybirdError`, reads `Retry-After`, and
keeps tokens out of messages, so the pipe client and the Events client report alike.
"""

from __future__ import annotations

import email.utils
import re
import time

import requests
from requests.auth import AuthBase

from .errors import (
    AuthError,
    BadRequest,
    NotFound,
    RateLimited,
    ServerError,
    TinybirdError,
)

MAX_MESSAGE_CHARS = 300  # of the server's error message, for a page or a terminal
# A JWT (or the start of one): Tinybird's own messages may quote the token they refused.
JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*){0,2}")


class Bearer(AuthBase):
    """`Authorization: Bearer <token>` as requests auth, not as a plain header.

    requests replaces a plain Authorization header with credentials from ~/.netrc when
    it finds some for the host; an auth object is never overridden.
    """

    def __init__(self, token: str):
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request

    def __repr__(self) -> str:  # a token is a credential: keep it out of log lines
        return "Bearer(<token>)"


def server_message(response: requests.Response) -> str:
    """The server's `error` (or its text), any JWT in it replaced, short enough to show."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        text = str(body["error"])
    else:
        text = response.text.strip() if response.text else ""
        if not text or text.lstrip().startswith("<"):  # an HTML error page says nothing useful
            text = f"HTTP {response.status_code}"
    return JWT_LIKE.sub("<jwt>", text)[:MAX_MESSAGE_CHARS]


def retry_after(response: requests.Response, now: float | None = None) -> float | None:
    """`Retry-After` in seconds, whether sent as seconds or as an HTTP date; None if absent."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def error_for(response: requests.Response, auth_hint: str | None = None) -> TinybirdError:
    """The typed error for a refused request; `auth_hint` replaces the JWT advice on 401/403."""
    status, message = response.status_code, server_message(response)
    if status in (401, 403):
        return AuthError(message, status, auth_hint)
    if status == 404:
        return NotFound(message, status)
    if status == 429:
        return RateLimited(message, status, retry_after(response))
    if status in (400, 408, 413, 422):
        return BadRequest(message, status)
    if status >= 500:
        return ServerError(message, status)
    return TinybirdError(message, status)
