"""The words around the chart: latency, staleness and what to do about an error."""

from __future__ import annotations

from lib.tinybird_api import PipeResult, TinybirdError


def latency_text(result: PipeResult) -> str:
    """`Latency: N ms` from statistics.elapsed, as the guide shows it, plus the round trip."""
    round_trip = f"round trip {result.round_trip_seconds * 1000:.0f} ms"
    if result.elapsed_seconds is None:
        return f"Latency: n/a ({round_trip})"
    return f"Latency: {result.elapsed_seconds * 1000:.1f} ms ({round_trip})"


def age_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def error_title(error: TinybirdError) -> str:
    status = f" (HTTP {error.status})" if error.status else ""
    return f"Could not refresh the chart{status}: {error.message}"


def stale_caption(age_seconds: float) -> str:
    return f"Showing the last good data, {age_text(age_seconds)} old."
