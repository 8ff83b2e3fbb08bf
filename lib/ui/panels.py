"""The words around the charts: latency, staleness, and the one panel that shows an error.

Every page draws a failure with `error_panel`, so a viewer reads the same thing
everywhere: what failed and its HTTP status, the server's own message, what to do about
it, and how old the data still on screen is.
"""

from __future__ import annotations

import time

import streamlit as st

from lib.client.errors import (
    AuthError,
    NotFound,
    RateLimited,
    ServerError,
    TinybirdError,
    Unreachable,
)
from lib.client.pipes import PipeResult
from lib.ui.tenant_view import TENANT_PIPES, TenantReport


def latency_text(result: PipeResult) -> str:
    """`Latency: N ms` from statistics.elapsed, as the guide shows it, plus the round trip.

    The time of the answer (UTC, so every viewer reads the same) shows that the numbers
    are fresh even when two polls happen to measure the same latency.
    """
    at = time.strftime("%H:%M:%S", time.gmtime(result.fetched_at))
    details = f"round trip {result.round_trip_seconds * 1000:.0f} ms, at {at} UTC"
    if result.elapsed_seconds is None:
        return f"Latency: n/a ({details})"
    return f"Latency: {result.elapsed_seconds * 1000:.1f} ms ({details})"


def age_text(seconds: float) -> str:
    """An age a reader takes in at a glance: `42 s`, `3 min 5 s`, `2 h 10 min`."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def error_text(error: TinybirdError, what: str | None = None) -> str:
    """`<what> (HTTP n): <server's message>`, or `HTTP n: <message>` for a call shown as is."""
    if what is None:
        return f"{f'HTTP {error.status}: ' if error.status else ''}{error.message}"
    return f"{what}{f' (HTTP {error.status})' if error.status else ''}: {error.message}"


# What a viewer of this app can do about each kind of failure, naming the app's settings.
# The client's own hints are for any program; these are the dashboard's.
PAGE_HINTS: tuple[tuple[type[TinybirdError], str], ...] = (
    (AuthError, "The JWT was refused twice. Check that TINYBIRD_SIGNING_TOKEN is the workspace "
                "admin token (not a personal one), that TINYBIRD_WORKSPACE is that workspace's "
                "id, and that the JWT's scope names this pipe."),
    (NotFound, "Check TINYBIRD_PIPE and that the pipe is published as an API Endpoint."),
    (RateLimited, "Too many requests; the next poll will try again."),
    (ServerError, "Tinybird had a problem answering; the next poll will try again."),
    (Unreachable, "Check TINYBIRD_HOST and the network; the next poll will try again."),
)


def hint_for(error: TinybirdError) -> str:
    """The hint a viewer reads: the error's own when it was given one, else the page's."""
    if "hint" in vars(error):  # set for this error alone (say, Tinybird's Retry-After)
        return error.hint
    return next((hint for kind, hint in PAGE_HINTS if isinstance(error, kind)), error.hint)


def error_panel(error: TinybirdError, what: str | None = None,
                stale_seconds: float | None = None) -> None:
    """Draw a failure: what failed, the hint, and the age of the data still shown.

    Args:
        error: the failure.
        what: what failed, in the page's words; None shows the error as the server said it.
        stale_seconds: the age of the last good data still on screen; None when none is.
    """
    with st.container(border=True):
        st.error(error_text(error, what), icon=":material/error:")
        st.caption(hint_for(error))
        if stale_seconds is not None:
            st.warning(stale_caption(stale_seconds))


def stale_caption(age_seconds: float) -> str:
    """Said under an error while the last good chart stays on screen."""
    return f"Showing the last good data, {age_text(age_seconds)} old."


def latency_history_caption(polls: int) -> str:
    """Under the latency chart: what the two lines are and how many polls they cover."""
    return (f"Latency of the last {polls} good poll{'s' if polls != 1 else ''}: the server's "
            "statistics.elapsed and the round trip this page measured.")


def tenant_caption(report: TenantReport, refresh_seconds: float) -> str:
    """Under the tenant charts: where the numbers come from and how fast they came."""
    slowest = report.slowest_elapsed_seconds
    latency = "n/a" if slowest is None else f"{slowest * 1000:.1f} ms"
    return (f"Three endpoints ({', '.join(TENANT_PIPES)}), slowest server time {latency}; "
            f"refreshed every {refresh_seconds:g} s.")


def utc_text(seconds: float) -> str:
    """A Unix time as every viewer reads it alike: `2026-12-05 09:07 UTC`."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def ms_text(seconds: float | None) -> str:
    """Seconds as milliseconds, `12.3 ms`; `n/a` for None."""
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"
