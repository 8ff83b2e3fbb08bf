"""Every failure of a Tinybird call, in one class hierarchy.

As with requests' exceptions, catch `TinybirdError` for every failure, or one subclass
for one case. Each error carries the HTTP status (None when no answer came), the
server's message (with any JWT in it replaced) and a one-line `hint` for the reader.

Two flags answer the questions every caller asks:
- `retryable`: a later attempt may succeed (the host was unreachable, or asked to slow
  down).
- `maybe_written`: a write may or may not have taken effect, so sending it again could
  write it twice.
"""

from __future__ import annotations


class TinybirdError(Exception):
    """Any failure to talk to Tinybird; `hint` says what the reader can do about it."""

    hint = "Check the settings and try again."
    retryable = False
    maybe_written = False

    def __init__(self, message: str, status: int | None = None, hint: str | None = None):
        """Make the error.

        Args:
            message: what went wrong, usually the server's own message.
            status: the HTTP status, or None when no answer came.
            hint: what the reader can do; None keeps the class's default hint.
        """
        super().__init__(message)
        self.message = message
        self.status = status
        if hint:
            self.hint = hint


class AuthError(TinybirdError):
    """401/403: the token was refused, or may not do this."""

    hint = ("The token was refused. A JWT must be signed with the workspace admin token (not "
            "a personal one), name that workspace's id, and have a scope for this pipe.")


class NotFound(TinybirdError):
    """404: no such pipe, or it is not published as an API Endpoint."""

    hint = "Check the pipe's name, and that it is published as an API Endpoint."


class BadRequest(TinybirdError):
    """400, 408, 413, 422: the request itself is wrong; sending it again will not help."""

    hint = "A parameter or the pipe's SQL is wrong; the message says which."


class RateLimited(TinybirdError):
    """429: `retry_after` is the server's Retry-After in seconds, when it sent one."""

    hint = "Too many requests; wait a little before the next."
    retryable = True

    def __init__(self, message: str, status: int | None = 429, retry_after: float | None = None):
        """Make the error; the hint names the wait when the server sent one.

        Args:
            message: the server's message.
            status: the HTTP status, 429 unless told otherwise.
            retry_after: the server's Retry-After in seconds, or None.
        """
        hint = None
        if retry_after is not None:
            hint = f"Too many requests; Tinybird asks to wait {retry_after:g} s before the next."
        super().__init__(message, status, hint)
        self.retry_after = retry_after


class ServerError(TinybirdError):
    """5xx. A 503 refuses the request unprocessed; any other 5xx may have done part of a write."""

    hint = "Tinybird had a problem answering; try again later."

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status == 503

    @property
    def maybe_written(self) -> bool:  # type: ignore[override]
        return self.status != 503


class Unreachable(TinybirdError):
    """No answer: the connection was never made, or (for a read) timed out."""

    hint = "Check the host and the network, then try again."
    retryable = True


class OutcomeUnknown(TinybirdError):
    """A write whose answer never came (the connection broke, or the read timed out).

    The server may have written it; sending it again could count it twice.
    """

    hint = "Check the data before sending it again: it may or may not have been written."
    maybe_written = True


class AccessExpired(TinybirdError):
    """No JWT may be minted any more: the access it stood for has ended.

    A token source with a `valid_until` (a shared link's expiry, a login's maximum age)
    raises this instead of minting a JWT that would outlive that access.
    """

    hint = "Open a new link, or log in again."


class BadResponse(TinybirdError):
    """An answer that is not Tinybird's JSON shape (an HTML page from a proxy, say)."""

    hint = "The answer is not what was expected: check that the pipe is the right one."
