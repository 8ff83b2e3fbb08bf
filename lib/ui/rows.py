"""What a chart needs of an endpoint's rows, checked before anyone sees them.

A chart draws named columns, the last of them a number. An endpoint that answers with
another shape must show an error panel (and keep the last good chart), never a
traceback. So the rows are checked before a result replaces the last good one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lib.client.errors import BadResponse
from lib.client.pipes import PipeResult

# Said under a result whose rows are not what the chart draws.
WRONG_SHAPE_HINT = ("The endpoint answered with rows this page cannot draw. Check that "
                    "TINYBIRD_PIPE names an endpoint with the expected columns.")


def check_columns(result: PipeResult, columns: Sequence[str]) -> None:
    """Raise BadResponse unless every row has `columns` and the last of them is a number."""
    if not columns:
        return
    value = columns[-1]
    for row in result.data:
        missing = [c for c in columns if c not in row]
        if missing:
            raise BadResponse(f"The endpoint's rows lack the column(s) {', '.join(missing)}",
                              hint=WRONG_SHAPE_HINT)
        number = row[value]
        if isinstance(number, bool):
            number = None
        try:
            ok = number is not None and math.isfinite(float(number))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise BadResponse(f"The endpoint's column {value} holds a non-number",
                              hint=WRONG_SHAPE_HINT)
