"""The routes of Tinybird Local itself, which the Forward CLI's local mode calls first.

Every `tb --local ...` command (tinybird 5.x, `tb/modules/local_common.py`) starts with
`GET /tokens` for the user's tokens, then finds the workspace named after the project's
folder in `GET /v1/user/workspaces` and makes it with `POST /v1/workspaces` if missing;
`tb test run` also deletes its throwaway workspaces with `DELETE /v1/workspaces/{id}`.

`GET /tokens` needs no token in Tinybird Local in Docker, because only the machine that
runs the container reaches it. Here the server may listen on any address, so it answers
only a loopback client: the tokens it gives let anyone read and change every workspace.
The other routes need one of the user's two tokens; a workspace's admin token lists its
own workspace only.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .auth import token_from_request
from .errors import AUTH_DOCS, DOCS, BadRequest, Forbidden, NotFound, forbidden
from .state import LocalState, grant_for, json_response, require_admin, state_of
from .workspaces import NameTaken, Workspaces

WORKSPACES_DOCS = f"{DOCS}/api-reference/workspace-api"
# Letters, digits and underscores, starting with a letter: the Forward CLI's build and
# test workspace names (`Tinybird_Local_Build_<sha256>`) and branch names fit.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")


def registry_of(request: Request) -> Workspaces:
    """The server's workspaces, as the local routes reach them."""
    return request.app.state.workspaces


def is_loopback(host: str | None) -> bool:
    """True if `host` (a client's address) is this machine's own loopback."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def _require_user(request: Request, registry: Workspaces) -> None:
    """A 403 unless the request carries one of the user's tokens."""
    token = token_from_request(request.query_params, request.headers.get("authorization"))
    if not registry.user.owns(token):
        raise forbidden("This route needs the user token or the admin token that "
                        "GET /tokens gives")


def _workspace_json(state: LocalState, registry: Workspaces) -> dict[str, Any]:
    """A workspace as the user's workspace listing shows it."""
    workspace = state.workspace
    return {"id": workspace.workspace_id, "name": workspace.name,
            "token": workspace.admin_token, "role": "admin", "is_branch": False,
            "main": None, "plan": "local", "organization_id": registry.user.organization_id}


async def local_tokens(request: Request) -> Response:
    """`GET /tokens`: the user's tokens and the default workspace's admin token."""
    if not is_loopback(request.client.host if request.client else None):
        raise Forbidden("GET /tokens answers only clients on this machine: it gives "
                        "every workspace's keys", AUTH_DOCS)
    registry = registry_of(request)
    return json_response({"user_token": registry.user.user_token,
                          "admin_token": registry.user.admin_token,
                          "workspace_admin_token": registry.default.workspace.admin_token})


async def user_workspaces(request: Request) -> Response:
    """`GET /v1/user/workspaces`: every workspace, each with its admin token.

    A workspace's own admin token (`tb --local info` sends it) sees its workspace only:
    the others' tokens are not its to read.
    """
    registry = registry_of(request)
    token = token_from_request(request.query_params, request.headers.get("authorization"))
    if registry.user.owns(token):
        states = registry.all()
    else:
        state = state_of(request)
        require_admin(grant_for(request, state))
        states = [state]
    body: dict[str, Any] = {"workspaces": [_workspace_json(state, registry)
                                           for state in states]}
    if request.query_params.get("with_organization", "").lower() == "true":
        body["organization_id"] = registry.user.organization_id
    return json_response(body)


async def create_workspace(request: Request) -> Response:
    """`POST /v1/workspaces?name=`: a new, empty workspace."""
    registry = registry_of(request)
    _require_user(request, registry)
    name = request.query_params.get("name", "")
    if not _NAME.fullmatch(name):
        raise BadRequest("Invalid 'name' parameter: a workspace name has letters, digits "
                         "and underscores, starts with a letter and is at most 128 long",
                         WORKSPACES_DOCS)
    try:
        state = await run_in_threadpool(registry.create, name)
    except NameTaken:
        raise BadRequest(f"Invalid 'name' parameter: the workspace name '{name}' is "
                         "already taken", WORKSPACES_DOCS) from None
    return json_response(_workspace_json(state, registry))


async def delete_workspace(request: Request) -> Response:
    """`DELETE /v1/workspaces/{id}?hard_delete_confirmation=yes`: a workspace and its data."""
    registry = registry_of(request)
    _require_user(request, registry)
    ident = request.path_params["ident"]
    if request.query_params.get("hard_delete_confirmation") != "yes":
        raise BadRequest("Missing 'hard_delete_confirmation' parameter: set it to 'yes' to "
                         "delete the workspace and all its data", WORKSPACES_DOCS)
    state = registry.by_id(ident)
    if state is None:
        raise NotFound("Workspace not found", WORKSPACES_DOCS)
    if state is registry.default:
        raise BadRequest("The default workspace cannot be deleted: it is the one the "
                         "server was started with", WORKSPACES_DOCS)
    body = _workspace_json(state, registry)
    try:
        await run_in_threadpool(registry.delete, ident)
    except KeyError:
        raise NotFound("Workspace not found", WORKSPACES_DOCS) from None
    return json_response(body)
