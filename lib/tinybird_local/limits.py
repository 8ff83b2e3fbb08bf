"""The server's limits, decided once when a server starts and fixed while it runs.

The `serve` command and `LocalServer` resolve them when they start: a value passed in
first, then the environment variable, then Tinybird's own limit. Because they are read
at start and not at import, a value set late (by a test, a script, or the app's
embedded server) still counts, and two servers in one process may differ.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

QUERY_TIMEOUT_ENV = "TB_LOCAL_QUERY_TIMEOUT"
MAX_EVENTS_BYTES_ENV = "TB_LOCAL_MAX_EVENTS_BYTES"
EVENTS_RPS_ENV = "TB_LOCAL_EVENTS_RPS"
# Tinybird's: endpoint queries stop after 10 s (408); an Events API body is at most 10 MiB.
DEFAULT_QUERY_TIMEOUT = 10.0
DEFAULT_MAX_EVENTS_BYTES = 10 * 1024 * 1024
# Tinybird's Events API: 1000 requests per second per Data Source, then 429.
DEFAULT_EVENTS_RPS = 1000.0


@dataclass(frozen=True)
class Limits:
    """The limits one server holds its requests to.

    Attributes:
        query_timeout: seconds a pipe or /v0/sql query may run before a 408.
        max_events_bytes: the largest Events API body, before and after gunzip; past
            it, a 413.
        events_rps: Events API requests per second per Data Source; past it, a 429.
    """

    query_timeout: float = DEFAULT_QUERY_TIMEOUT
    max_events_bytes: int = DEFAULT_MAX_EVENTS_BYTES
    events_rps: float = DEFAULT_EVENTS_RPS

    def __post_init__(self) -> None:
        if not self.query_timeout > 0:
            raise ValueError(f"the query timeout must be more than 0 seconds, "
                             f"not {self.query_timeout:g}")
        if not self.max_events_bytes > 0:
            raise ValueError(f"the Events API body limit must be more than 0 bytes, "
                             f"not {self.max_events_bytes}")
        if not self.events_rps > 0:
            raise ValueError(f"the Events API rate must be more than 0 requests per second, "
                             f"not {self.events_rps:g}")

    @classmethod
    def resolve(cls, query_timeout: float | None = None, max_events_bytes: int | None = None,
                environ: Mapping[str, str] | None = None,
                events_rps: float | None = None) -> Limits:
        """Each limit from its argument, else its environment variable, else the default.

        A variable that is set but cannot be read raises a ValueError naming it; it never
        falls back to the default without a word.

        Args:
            query_timeout: seconds, or None to read `TB_LOCAL_QUERY_TIMEOUT`.
            max_events_bytes: bytes, or None to read `TB_LOCAL_MAX_EVENTS_BYTES`.
            environ: the environment to read; None means `os.environ`.
            events_rps: requests per second, or None to read `TB_LOCAL_EVENTS_RPS`.

        Returns:
            The limits, checked.
        """
        env = os.environ if environ is None else environ
        if query_timeout is None:
            text = _setting(env, QUERY_TIMEOUT_ENV)
            query_timeout = DEFAULT_QUERY_TIMEOUT if text is None else _number(
                QUERY_TIMEOUT_ENV, text, float)
        if max_events_bytes is None:
            text = _setting(env, MAX_EVENTS_BYTES_ENV)
            max_events_bytes = DEFAULT_MAX_EVENTS_BYTES if text is None else int(_number(
                MAX_EVENTS_BYTES_ENV, text, int))
        if events_rps is None:
            text = _setting(env, EVENTS_RPS_ENV)
            events_rps = DEFAULT_EVENTS_RPS if text is None else _number(
                EVENTS_RPS_ENV, text, float)
        return cls(query_timeout=query_timeout, max_events_bytes=max_events_bytes,
                   events_rps=events_rps)


def _setting(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value stripped, or None when it is unset or blank."""
    text = env.get(name, "").strip()
    return text or None


def _number(name: str, text: str, kind: type[int] | type[float]) -> float:
    """`text` as `kind`; a ValueError names the variable when it is not one."""
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not {'a whole number' if kind is int else 'a number'}"
                         ) from None
