"""The endpoint explorer: which API Endpoints a workspace has, and one call to any of them.

The listing (`GET /v0/pipes`) needs the admin token, so it is read in the server
process, as Tinybird's own UI does. Only names, descriptions and parameters reach the
page. A call goes out with a JWT that may read that one endpoint. The URL shown is the
request without its token, since the JWT travels in the Authorization header. A refused
call shows the server's own message, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lib.client.errors import TinybirdError
from lib.client.pipes import PipeClient, PipeResult, list_pipes
from lib.client.tokens import TokenSource

# Rows of a response shown in full on the page; the rest are counted, not drawn.
MAX_JSON_ROWS = 100


@dataclass(frozen=True)
class EndpointParam:
    """One declared parameter of an endpoint."""

    name: str
    type: str
    default: Any = None
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Endpoint:
    """One published API Endpoint and its parameters."""

    name: str
    description: str
    params: tuple[EndpointParam, ...]

    def param(self, name: str) -> EndpointParam | None:
        """The parameter called `name`, or None."""
        return next((p for p in self.params if p.name == name), None)


def _params(pipe: Mapping[str, Any]) -> tuple[EndpointParam, ...]:
    """The pipe's parameters, each once, from the pipe or (Tinybird's shape) its nodes."""
    declared: list[Any] = []
    if isinstance(pipe.get("params"), list):
        declared = list(pipe["params"])
    else:
        for node in pipe.get("nodes") or []:
            if isinstance(node, dict) and isinstance(node.get("params"), list):
                declared += node["params"]
    seen: dict[str, EndpointParam] = {}
    for item in declared:
        if not isinstance(item, dict) or not item.get("name") or item["name"] in seen:
            continue
        seen[str(item["name"])] = EndpointParam(
            name=str(item["name"]), type=str(item.get("type") or "String"),
            default=item.get("default"), required=bool(item.get("required")),
            description=str(item.get("description") or ""))
    return tuple(seen.values())


def endpoints_from_listing(pipes: Sequence[Mapping[str, Any]]) -> list[Endpoint]:
    """The published API Endpoints among `pipes` (materialized and copy pipes left out)."""
    endpoints = []
    for pipe in pipes:
        is_endpoint = pipe.get("type") == "endpoint" or bool(pipe.get("endpoint"))
        if not is_endpoint or not pipe.get("name"):
            continue
        endpoints.append(Endpoint(name=str(pipe["name"]),
                                  description=" ".join(str(pipe.get("description") or "")
                                                       .split()),
                                  params=_params(pipe)))
    return sorted(endpoints, key=lambda e: e.name)


def load_endpoints(host: str, admin_token: str) -> list[Endpoint]:
    """The workspace's endpoints, read with the admin token. Raises TinybirdError."""
    return endpoints_from_listing(list_pipes(host, admin_token))


@dataclass(frozen=True)
class Listing:
    """The endpoints a viewer may call, or why they could not be listed."""

    endpoints: list[Endpoint]
    error: TinybirdError | None = None


def param_rows(endpoint: Endpoint) -> list[dict[str, Any]]:
    """One row per parameter, for a table on the page."""
    return [{"parameter": p.name, "type": p.type,
             "default": "" if p.default is None else str(p.default),
             "required": p.required, "description": p.description} for p in endpoint.params]


def request_params(endpoint: Endpoint, values: Mapping[str, str]) -> dict[str, str]:
    """The values typed into the form, blanks left out (an absent param takes its default)."""
    known = {p.name for p in endpoint.params}
    return {name: str(value).strip() for name, value in values.items()
            if name in known and str(value).strip() != ""}


def explorer_client(host: str, workspace_id: str, signing_token: str, pipe: str, *,
                    ttl_seconds: float, name: str | None = None,
                    fixed_params: Mapping[str, str] | None = None, rps: float | None = None,
                    valid_until: float | None = None) -> PipeClient:
    """A client whose JWTs may read `pipe` only, with the viewer's tenant pinned if given.

    Args:
        host: the Tinybird API host.
        workspace_id: the workspace the JWTs are for.
        signing_token: the workspace admin token; it stays on the server.
        pipe: the one endpoint the JWTs may read.
        ttl_seconds: each JWT's lifetime.
        name: the JWTs' `name`; by default `explorer_<pipe>`.
        fixed_params: values the server puts in every query (a locked viewer's tenant).
        rps: the JWTs' `limits.rps`, if any.
        valid_until: when the viewer's access ends; no JWT outlives it.
    """
    tokens = TokenSource(signing_token, workspace_id, pipe, ttl_seconds=ttl_seconds,
                         name=name or f"explorer_{pipe}", fixed_params=fixed_params, rps=rps,
                         valid_until=valid_until)
    return PipeClient(host, tokens)


def endpoints_for_tenant(endpoints: Sequence[Endpoint], param: str) -> list[Endpoint]:
    """The endpoints that take `param`.

    These are the only ones a viewer locked to a tenant may call, with `param` pinned
    to their tenant.
    """
    return [endpoint for endpoint in endpoints if endpoint.param(param) is not None]


@dataclass(frozen=True)
class ExplorerCall:
    """One call's outcome for the page: the URL sent, and the result or the error."""

    pipe: str
    url: str  # without the token
    result: PipeResult | None = None
    error: TinybirdError | None = None

    def shown_json(self) -> dict[str, Any]:
        """The response body, its data cut to MAX_JSON_ROWS rows for the page."""
        if self.result is None:
            return {}
        body = dict(self.result.body)
        data = body.get("data")
        if isinstance(data, list) and len(data) > MAX_JSON_ROWS:
            body["data"] = data[:MAX_JSON_ROWS]
        return body


def call_endpoint(client: PipeClient, endpoint: Endpoint,
                  values: Mapping[str, str]) -> ExplorerCall:
    """One call with the form's values.

    Args:
        client: a client whose JWT may read `endpoint`.
        endpoint: the endpoint to call.
        values: the form's values by parameter name; blanks are left out.

    Returns:
        The call's outcome; a refusal is its `error`, never raised.
    """
    params = request_params(endpoint, values)
    url = client.request_url(endpoint.name, params)
    try:
        return ExplorerCall(endpoint.name, url, result=client.fetch(endpoint.name, params))
    except TinybirdError as exc:
        return ExplorerCall(endpoint.name, url, error=exc)
