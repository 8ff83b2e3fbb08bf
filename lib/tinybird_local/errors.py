"""The errors an API handler may raise; one place (app.py) renders them as Tinybird does.

Every error body is `{"error": ..., "documentation": ...}` with Tinybird's status code,
so a client written for Tinybird handles ours the same way.
"""

from __future__ import annotations

DOCS = "https://docs.tinybird.co"
AUTH_DOCS = f"{DOCS}/api-reference/overview#authentication"
PIPE_DOCS = f"{DOCS}/api-reference/pipe-api.html"
LIMITS_DOCS = f"{DOCS}/api-reference/api-reference.html#limits"
EVENTS_DOCS = f"{DOCS}/api-reference/events-api"
SQL_DOCS = f"{DOCS}/api-reference/query-api.html"
TEMPLATE_DOCS = f"{DOCS}/cli/advanced-templates.html"


class APIError(Exception):
    """An error a client sees: HTTP status, message, documentation link, extra headers."""

    def __init__(self, status: int, message: str, documentation: str = DOCS,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.documentation = documentation
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.message, "documentation": self.documentation}


INVALID_AUTH = "invalid authentication token"


def forbidden(reason: str | None = None) -> APIError:
    message = INVALID_AUTH if reason is None else f"{INVALID_AUTH}. {reason}"
    return APIError(403, message, AUTH_DOCS)


def no_access() -> APIError:
    return APIError(403, "The token you have provided doesn't have access to this resource",
                    AUTH_DOCS)
