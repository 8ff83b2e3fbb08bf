"""Altair charts for the dashboard, built from endpoint rows and nothing else."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

BAR_COLOR = "#27F795"  # the first colour of the guide's palette


def top_airlines_chart(rows: list[dict[str, Any]], height: int = 360) -> alt.Chart:
    """Horizontal bars ranked from most to fewest bookings, exact counts in the tooltip."""
    frame = pd.DataFrame(rows, columns=["airline", "bookings"])
    frame["bookings"] = pd.to_numeric(frame["bookings"])
    return (
        alt.Chart(frame)
        .mark_bar(color=BAR_COLOR, cornerRadiusEnd=3)
        .encode(
            x=alt.X("bookings:Q", title="Bookings"),
            y=alt.Y("airline:N", sort="-x", title=None, axis=alt.Axis(labelLimit=220)),
            tooltip=[alt.Tooltip("airline:N", title="Airline"),
                     alt.Tooltip("bookings:Q", title="Bookings", format=",")],
        )
        .properties(height=height)
    )
