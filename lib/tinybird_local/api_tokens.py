"""The Tokens API (`/v0/tokens`): list, read, create, refresh, change and delete tokens.

It works as Tinybird's does (https://www.tinybird.co/docs/api-reference/token-api).
Static tokens carry scope strings: `PIPES:READ:top_airlines`,
`DATASOURCES:APPEND:events`, `DATASOURCES:READ:events[:filter]`, `ADMIN`, `TOKENS`...
A POST with `expiration_time` signs a JWT instead, from a JSON body of scopes, and
answers `{"token": "<jwt>"}`.

Managing tokens takes the admin token, or a token with the TOKENS scope. Every change is
written to the data dir's workspace file before the answer, so it survives a restart,
and `auth` applies it from the next request on.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from .auth import (
    ADMIN_TOKEN_NAME,
    JWT_SCOPES,
    Grant,
    parse_scope,
    sign_jwt,
)
from .errors import AUTH_DOCS, DOCS, BadRequest, Forbidden, NotFound, no_access
from .sql_guard import SQLRefused
from .state import LocalState, grant_for, json_response, state_of
from .workspace import (
    ORIGIN_CUSTOM,
    ORIGIN_DATASOURCE,
    ORIGIN_PIPE,
    StaticToken,
    new_static_token,
    save_workspace,
)

TOKENS_DOCS = f"{DOCS}/api-reference/token-api.html"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,255}$")


def _require_manager(grant: Grant) -> None:
    """Raise the 403 for a missing scope unless `grant` may manage tokens."""
    if not grant.has_scope("TOKENS"):
        raise no_access()


def _scope_json(scope: str) -> dict[str, str]:
    """A scope string as the Tokens API shows it: type, resource and filter."""
    try:
        kind, resource, row_filter = parse_scope(scope)
    except ValueError:
        return {"type": scope}
    if not resource:
        return {"type": kind}
    return {"type": kind, "resource": resource, "filter": row_filter}


def _origin_json(state: LocalState, token: StaticToken) -> dict[str, str]:
    """Where the token came from, as the Tokens API's `origin` shows it."""
    if token.origin == ORIGIN_PIPE and token.resource:
        return {"type": ORIGIN_PIPE, "resource_id": state.workspace.pipe_id(token.resource)}
    if token.origin == ORIGIN_DATASOURCE and token.resource:
        return {"type": ORIGIN_DATASOURCE,
                "resource_id": state.datasource_ids.get(token.resource, token.resource)}
    return {"type": ORIGIN_CUSTOM}


def _token_json(state: LocalState, token: StaticToken) -> dict[str, Any]:
    """A static token as the Tokens API shows it."""
    return {"id": token.token_id, "token": token.token, "name": token.name,
            "description": token.description,
            "scopes": [_scope_json(s) for s in token.scopes],
            "origin": _origin_json(state, token), "is_internal": False}


def _admin_json(state: LocalState) -> dict[str, Any]:
    """The admin token as the Tokens API shows it."""
    workspace = state.workspace
    return {"id": workspace.admin_token_id, "token": workspace.admin_token,
            "name": ADMIN_TOKEN_NAME, "description": "The workspace's admin token",
            "scopes": [{"type": "ADMIN"}], "origin": {"type": ORIGIN_CUSTOM},
            "is_internal": False}


def _find(state: LocalState, key: str) -> StaticToken | None:
    """A static token by name, id or value (the admin token is not one of them)."""
    tokens = state.workspace.tokens
    if key in tokens:
        return tokens[key]
    return next((t for t in tokens.values() if key in (t.token_id, t.token)), None)


def _is_admin_key(state: LocalState, key: str) -> bool:
    """True if `key` is the admin token's name, id or value."""
    workspace = state.workspace
    return key in (ADMIN_TOKEN_NAME, workspace.admin_token_id, workspace.admin_token)


def _not_found(key: str) -> NotFound:
    """The 404 for an unknown token, without repeating a token value."""
    shown = "[token]" if key.startswith("p.") else key[:100]
    return NotFound(f"Token '{shown}' not found", TOKENS_DOCS)


def _save(state: LocalState) -> None:
    """Write the workspace file with the tokens as they are now."""
    save_workspace(state.engine.data_dir, state.workspace)
    state.on_tokens_changed()


async def list_tokens(request: Request) -> Response:
    """`GET /v0/tokens`: the admin token and every static token, for a manager."""
    state = state_of(request)
    _require_manager(grant_for(request, state))
    tokens = [_admin_json(state)] + [_token_json(state, t)
                                     for t in state.workspace.tokens.values()]
    return json_response({"tokens": tokens})


async def get_token(request: Request) -> Response:
    """`GET /v0/tokens/{token}`: one token, by name, id or value."""
    state = state_of(request)
    grant = grant_for(request, state)
    key = request.path_params["token"]
    presented = _presented(request)
    # A token may read itself; anything else takes a manager.
    if key != presented:
        _require_manager(grant)
    if _is_admin_key(state, key):
        if not grant.is_admin:
            raise no_access()
        return json_response(_admin_json(state))
    token = _find(state, key)
    if token is None:
        raise _not_found(key)
    return json_response(_token_json(state, token))


def _presented(request: Request) -> str:
    """The token the request was sent with, or ""."""
    token = request.query_params.get("token")
    if token:
        return token
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth.startswith("Bearer ") else ""


async def _form(request: Request) -> dict[str, list[str]]:
    """Query string and form body fields, each a list (`scope` repeats)."""
    fields: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        fields.setdefault(key, []).append(value)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        for key, item in form.multi_items():
            fields.setdefault(key, []).append(str(item))
    return fields


def _first(fields: dict[str, list[str]], key: str, default: str = "") -> str:
    """The first value of a field, or `default`."""
    values = fields.get(key)
    return values[0] if values else default


def _check_name(name: str) -> None:
    """Raise a 400 unless `name` may name a new token."""
    if not name:
        raise BadRequest("The 'name' parameter is required", TOKENS_DOCS)
    if not _NAME.match(name) or name == ADMIN_TOKEN_NAME or name.startswith("p."):
        raise BadRequest(f"Invalid token name '{name[:100]}'", TOKENS_DOCS)


def _check_filter(state: LocalState, datasource: str, row_filter: str) -> None:
    """A row filter is SQL that runs inside every read: the guard must accept it."""
    if not row_filter:
        return
    try:
        state.guard.check(f"SELECT * FROM {datasource} WHERE {row_filter}")
    except SQLRefused as exc:
        raise BadRequest(f"Invalid filter '{row_filter[:200]}': {exc.message}",
                         TOKENS_DOCS) from None


def _checked_scopes(state: LocalState, scopes: list[str]) -> list[str]:
    """Scope strings as stored: known types, existing resources, pipe ids as names."""
    out = []
    for scope in scopes:
        try:
            kind, resource, row_filter = parse_scope(scope)
        except ValueError as exc:
            raise BadRequest(str(exc), TOKENS_DOCS) from None
        if kind.startswith("PIPES:") and resource:
            resource = state.pipe_ids.get(resource, resource)
            if resource not in state.project.pipes:
                raise BadRequest(f"Pipe '{resource[:100]}' not found", TOKENS_DOCS)
        elif kind.startswith("DATASOURCES:") and resource:
            resource = _datasource_name(state, resource)
            if resource not in state.project.datasources:
                raise BadRequest(f"Data Source '{resource[:100]}' not found", TOKENS_DOCS)
            _check_filter(state, resource, row_filter)
        out.append(":".join(p for p in (kind, resource, row_filter) if p))
    return out


def _datasource_name(state: LocalState, key: str) -> str:
    """The data source whose id is `key`; else `key` itself, taken as a name."""
    return next((name for name, ds_id in state.datasource_ids.items() if ds_id == key), key)


async def create_token(request: Request) -> Response:
    """`POST /v0/tokens`: a new static token, or a JWT when `expiration_time` is given."""
    state = state_of(request)
    _require_manager(grant_for(request, state))
    fields = await _form(request)
    if "expiration_time" in fields:
        return await _create_jwt(request, state, fields)
    name = _first(fields, "name")
    _check_name(name)
    if name in state.workspace.tokens:
        raise BadRequest(f"Token with name '{name}' already exists", TOKENS_DOCS)
    scopes = _checked_scopes(state, fields.get("scope", []))
    token = StaticToken(name=name, token=new_static_token(), scopes=scopes,
                        description=_first(fields, "description"), origin=ORIGIN_CUSTOM)
    state.workspace.tokens[name] = token
    _save(state)
    return json_response(_token_json(state, token))


async def _create_jwt(request: Request, state: LocalState,
                      fields: dict[str, list[str]]) -> Response:
    """`POST /v0/tokens?expiration_time=<unix>` with `{"scopes": [...], "limits": {...}}`."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise BadRequest("The request body is not valid JSON", TOKENS_DOCS) from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object", TOKENS_DOCS)
    text = _first(fields, "expiration_time")
    try:
        exp = int(float(text))
    except ValueError:
        raise BadRequest("'expiration_time' must be a Unix timestamp", TOKENS_DOCS) from None
    if exp <= time.time():
        raise BadRequest("'expiration_time' must be in the future", TOKENS_DOCS)
    name = _first(fields, "name") or str(body.get("name") or "")
    _check_name(name)
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not scopes:
        raise BadRequest("A JWT needs a list of scopes in the body: "
                         '{"scopes": [{"type": "PIPES:READ", "resource": "<pipe>"}]}',
                         TOKENS_DOCS)
    checked = []
    for scope in scopes:
        if not isinstance(scope, dict) or scope.get("type") not in JWT_SCOPES:
            kind = scope.get("type") if isinstance(scope, dict) else scope
            raise BadRequest(f"Invalid JWT scope '{str(kind)[:40]}': only PIPES:READ and "
                             "DATASOURCES:READ are supported", TOKENS_DOCS)
        resource = scope.get("resource")
        if not isinstance(resource, str) or not resource:
            raise BadRequest("Every JWT scope needs a 'resource'", TOKENS_DOCS)
        if scope["type"] == "PIPES:READ":
            if state.pipe_ids.get(resource, resource) not in state.project.pipes:
                raise BadRequest(f"Pipe '{resource[:100]}' not found", TOKENS_DOCS)
            fixed = scope.get("fixed_params")
            if fixed is not None and not isinstance(fixed, dict):
                raise BadRequest("'fixed_params' must be an object", TOKENS_DOCS)
            entry: dict[str, Any] = {"type": "PIPES:READ", "resource": resource}
            if fixed:
                entry["fixed_params"] = fixed
        else:
            name_ds = _datasource_name(state, resource)
            if name_ds not in state.project.datasources:
                raise BadRequest(f"Data Source '{resource[:100]}' not found", TOKENS_DOCS)
            row_filter = scope.get("filter") or ""
            if not isinstance(row_filter, str):
                raise BadRequest("'filter' must be a string", TOKENS_DOCS)
            _check_filter(state, name_ds, row_filter)
            entry = {"type": "DATASOURCES:READ", "resource": name_ds}
            if row_filter:
                entry["filter"] = row_filter
        checked.append(entry)
    limits = body.get("limits")
    if limits is not None and not isinstance(limits, dict):
        raise BadRequest("'limits' must be an object", TOKENS_DOCS)
    token = sign_jwt(state.workspace, name=name, exp=exp, scopes=checked, limits=limits)
    return json_response({"token": token})


def _managed_token(request: Request, refusal: str) -> tuple[LocalState, StaticToken]:
    """The token the path names, for a manager; the admin token is refused with `refusal`."""
    state = state_of(request)
    _require_manager(grant_for(request, state))
    key = request.path_params["token"]
    if _is_admin_key(state, key):
        raise Forbidden(refusal, AUTH_DOCS)
    token = _find(state, key)
    if token is None:
        raise _not_found(key)
    return state, token


async def refresh_token(request: Request) -> Response:
    """`POST /v0/tokens/{token}/refresh`: a new value for a static token."""
    state, token = _managed_token(request, "The admin token can't be refreshed in Tinybird "
                                           "Local: it signs every JWT the dashboard uses")
    token.token = new_static_token()
    _save(state)
    return json_response(_token_json(state, token))


async def update_token(request: Request) -> Response:
    """`PUT /v0/tokens/{name}`: new `name`, `description` and/or scopes (all replaced)."""
    state, token = _managed_token(request, "The admin token can't be changed")
    fields = await _form(request)
    if not fields and (raw := await request.body()):
        # `tb` sends long scope lists as a raw `scope=...&scope=...` body.
        fields = parse_qs(raw.decode("utf-8", "replace"))
    scopes = _checked_scopes(state, fields["scope"]) if "scope" in fields else None
    new_name = _first(fields, "name", token.name)
    if new_name != token.name:
        _check_name(new_name)
        if new_name in state.workspace.tokens:
            raise BadRequest(f"Token with name '{new_name}' already exists", TOKENS_DOCS)
    if scopes is not None:
        token.scopes = scopes
    if "description" in fields:
        token.description = _first(fields, "description")
    if new_name != token.name:
        del state.workspace.tokens[token.name]
        token.name = new_name
        state.workspace.tokens[new_name] = token
    _save(state)
    return json_response(_token_json(state, token))


async def delete_token(request: Request) -> Response:
    """`DELETE /v0/tokens/{token}`: remove a static token."""
    state, token = _managed_token(request, "The admin token can't be deleted")
    del state.workspace.tokens[token.name]
    _save(state)
    return Response(status_code=204)
