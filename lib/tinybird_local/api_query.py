"""The Query API (`/v0/sql`) and the datasource listing.

`/v0/sql` answers every token, limited to what it may read (`sql_access`): the admin
token reads everything, service data sources included; another token reads the
datasources and pipes its scopes name, pipes through their endpoint SQL with the
token's fixed params.
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .errors import SQL_DOCS, BadRequest
from .sql_access import compose
from .state import grant_for, run_query, state_of

_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*$", re.I)


async def sql_query(request: Request) -> Response:
    """The Query API: `q` from the URL, or a POST body (form field `q` or the raw SQL)."""
    state = state_of(request)
    grant = grant_for(request, state)
    q = request.query_params.get("q")
    if request.method == "POST" and not q:
        if request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            q = str((await request.form()).get("q") or "")
        else:
            q = (await request.body()).decode("utf-8", "replace")
    q = (q or "").strip().rstrip(";").strip()
    if not q:
        raise BadRequest("The 'q' parameter with a SQL query is required", SQL_DOCS)
    match = _TRAILING_FORMAT.search(q)
    fmt_name = match.group(1) if match else "JSON"
    if match:
        q = q[: match.start()].rstrip()
    composed = await run_in_threadpool(compose, state, grant, q)
    if composed.reads_service:
        await run_in_threadpool(state.service_log.flush)
    body = await run_query(state, f"{composed.sql}\nFORMAT {fmt_name}", SQL_DOCS)
    media = "application/json" if fmt_name.upper().startswith("JSON") else "text/plain"
    return Response(body, media_type=media)
