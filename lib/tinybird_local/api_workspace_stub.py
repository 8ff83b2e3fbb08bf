"""A minimal `GET /v0/workspace`: only what the classic `tb` CLI reads before any command.

`tb` (tinybird-cli) asks for the workspace's `id` whenever it is given a host or token,
and stops with "Not Found" without it. The full workspace answer belongs to the branch
that builds the workspace request; when it lands, this module and its route go.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .state import grant_for, json_response, require_admin, state_of


async def workspace_minimal(request: Request) -> Response:
    state = state_of(request)
    require_admin(grant_for(request, state))
    # `scope` "admin": `tb auth` warns "This token is not an admin token" without it.
    return json_response({"id": state.workspace.workspace_id, "name": state.workspace.name,
                          "scope": "admin"})
