"""The errors an API handler may raise; one place (app.py) renders them as Tinybird does.

Every error body is `{"error": ..., "documentation": ...}` with Tinybird's status code,
so a client written for Tinybird handles Tinybird Local's errors the same way. Each
error is a class named for its status. The class holds the status and a default
documentation link; the code that raises it may pass a more specific link:

    APIError                      the base: app.py renders any of these
      ├── BadRequest              400
      ├── Forbidden               403  (`forbidden()`, `no_access()`)
      ├── NotFound                404
      ├── Timeout                 408
      ├── PayloadTooLarge         413
      └── TooManyRequests         429

Anything else a handler raises is not meant for the client: app.py answers it with a
500 that names only the request id.
"""

from __future__ import annotations

from typing import ClassVar

DOCS = "https://docs.tinybird.co"
AUTH_DOCS = f"{DOCS}/api-reference/overview#authentication"
PIPE_DOCS = f"{DOCS}/api-reference/pipe-api.html"
LIMITS_DOCS = f"{DOCS}/api-reference/api-reference.html#limits"
EVENTS_DOCS = f"{DOCS}/api-reference/events-api"
SQL_DOCS = f"{DOCS}/api-reference/query-api.html"
TEMPLATE_DOCS = f"{DOCS}/cli/advanced-templates.html"


class APIError(Exception):
    """An error a client sees: HTTP status, message, documentation link, extra headers.

    Raise one of the subclasses: the class says the status.
    """

    status: ClassVar[int] = 500
    documentation: str = DOCS

    def __init__(self, message: str, documentation: str | None = None,
                 headers: dict[str, str] | None = None):
        """Make the error.

        Args:
            message: what the client reads as `error`.
            documentation: a link more specific than the class's default, or None.
            headers: extra response headers, e.g. `Retry-After`.
        """
        super().__init__(message)
        self.message = message
        if documentation is not None:
            self.documentation = documentation
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        """The JSON body the client receives."""
        return {"error": self.message, "documentation": self.documentation}


class BadRequest(APIError):
    """The request cannot be served as sent: a missing or wrong parameter, bad SQL or data."""

    status = 400


class Forbidden(APIError):
    """No token, a token that does not verify, or one without the scope the request needs."""

    status = 403
    documentation = AUTH_DOCS


class NotFound(APIError):
    """The pipe, data source, token or deployment the request names does not exist."""

    status = 404


class Timeout(APIError):
    """A query ran past the query time limit."""

    status = 408
    documentation = PIPE_DOCS


class PayloadTooLarge(APIError):
    """A body over its limit, before or after gunzip."""

    status = 413
    documentation = LIMITS_DOCS


class TooManyRequests(APIError):
    """Over the rate limit; the headers say when to retry."""

    status = 429
    documentation = LIMITS_DOCS


INVALID_AUTH = "invalid authentication token"


def forbidden(reason: str | None = None) -> Forbidden:
    """The 403 for a token that does not verify, with the check that failed."""
    message = INVALID_AUTH if reason is None else f"{INVALID_AUTH}. {reason}"
    return Forbidden(message, AUTH_DOCS)


def no_access() -> Forbidden:
    """The 403 for a valid token without the scope the request needs."""
    return Forbidden("The token you have provided doesn't have access to this resource",
                     AUTH_DOCS)
