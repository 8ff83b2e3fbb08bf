"""What Tinybird's CLIs ask before anything else: the workspace and the regions.

`tb auth --host H --token T` (classic, tinybird-cli 6.x) checks the token with
`GET /v0/workspace` and keeps `id`, `name` and `scope` (no `scope` prints "This token is
not an admin token"); the Forward CLI (tinybird 5.x) asks `GET /v1/workspace` at every
start and `GET /v0/regions` to name the host. Both send the token as `?token=` with
`cli_version=` (and Forward `from=cli`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .state import grant_for, json_response, state_of


async def workspace_info(request: Request) -> Response:
    """`GET /v0/workspace` and `/v1/workspace`: the workspace of the token (any valid one)."""
    state = state_of(request)
    grant = grant_for(request, state)
    workspace = state.workspace
    body: dict = {
        "id": workspace.workspace_id,
        "name": workspace.name,
        "is_branch": False,
        "main": None,
        "releases": [],
        "plan": "local",
        "limits": {},
        "host": _host(request),
    }
    if grant.is_admin:
        # What Tinybird answers for the workspace admin token (tb auth reads it).
        body["scope"] = "admin"
        body["role"] = "admin"
    return json_response(body)


async def regions(request: Request) -> Response:
    """`GET /v0/regions`: this server is the only region."""
    host = _host(request)
    return json_response({"regions": [{"name": "local", "provider": "local", "api_host": host,
                                       "host": host, "default_password": None}]})


def _host(request: Request) -> str:
    return str(request.base_url).rstrip("/")
