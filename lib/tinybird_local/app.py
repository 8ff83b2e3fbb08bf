"""The HTTP API: Tinybird's routes, and what every response shares.

Handlers raise an `APIError` (`errors` has one class per status). `_render_error` is
the one place that turns an exception into the `{"error", "documentation"}` body a
client sees. Engine calls run in worker threads, so a slow query never blocks the event
loop. Nothing here logs a query string: tokens travel in `?token=`, and the admin token
must never reach a log line.
"""

from __future__ import annotations

import logging
import secrets
import time

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .api_datasources import (
    get_datasource,
    list_datasources,
    post_datasources,
    truncate_datasource,
)
from .api_deploy import (
    build,
    delete_deployment,
    deploy,
    get_deployment,
    list_deployments,
    set_live,
)
from .api_events import events, seed
from .api_jobs import get_job, list_jobs, v1_import
from .api_local import create_workspace, delete_workspace, local_tokens, user_workspaces
from .api_pipes import endpoint_example, list_pipes, pipe_data, pipe_info
from .api_query import sql_query
from .api_tokens import (
    create_token,
    delete_token,
    get_token,
    list_tokens,
    refresh_token,
    update_token,
)
from .api_workspace import regions, workspace_info
from .errors import DOCS, APIError
from .state import LocalState, json_response, state_of
from .workspaces import Workspaces

log = logging.getLogger("tinybird_local")

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def request_id() -> str:
    """A ULID, as Tinybird's X-Request-ID: 48 bits of milliseconds then 80 random bits."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


async def index(request: Request) -> Response:
    """`GET /`: the workspace id and the names of the pipes and data sources served."""
    state = state_of(request)
    return json_response({"service": "Tinybird Local", "workspace_id": state.workspace.workspace_id,
                  "pipes": sorted(state.project.pipes),
                  "datasources": sorted(state.project.datasources)})


async def _render_error(request: Request, exc: Exception) -> Response:
    """The response for an exception a handler raised, in Tinybird's error shape."""
    rid = request.state.request_id if hasattr(request.state, "request_id") else request_id()
    if isinstance(exc, APIError):
        body = exc.body()
        # An engine error may quote the SQL it was given; a token written into that SQL
        # must not come back in the error.
        state = state_of(request)
        for secret in state.secrets():
            body["error"] = body["error"].replace(secret, "[token]")
        return json_response(body, status=exc.status, headers=exc.headers)
    if isinstance(exc, HTTPException):
        # Starlette's own answers (unknown route 404, wrong method 405 with its Allow
        # header) in Tinybird's shape: "All response bodies, including errors, are
        # encoded as JSON."
        return json_response({"error": exc.detail, "documentation": DOCS},
                             status=exc.status_code, headers=dict(exc.headers or {}))
    log.error("request %s failed: %s", rid, type(exc).__name__)
    message = f"Unexpected error, contact support@tinybird.co, request id: {rid}"
    return json_response({"error": message, "documentation": DOCS}, status=500)


class HeadersAndAccessLog:
    """A request id on every response; an access log without query strings."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id()
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            # The path only: the query string may hold a token.
            log.info("%s %s %s %.1fms", scope["method"], scope["path"], status,
                     (time.perf_counter() - started) * 1000)


class TinybirdCORS(CORSMiddleware):
    """Starlette's CORS, changed where Tinybird answers differently.

    Tinybird's API is open to every origin, and answers any OPTIONS with 204 and the
    CORS headers. Starlette differs in three ways, each changed here:
    - it answers a preflight with 200;
    - it passes an OPTIONS that is not a full preflight (no Origin, or no
      Access-Control-Request-Method) on to the routes;
    - it adds nothing to a response whose request had no Origin. Clients and tests
      expect `Access-Control-Allow-Origin: *` on every response, from a browser or not.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" not in headers or "access-control-request-method" not in headers:
                await Response(status_code=204, headers=self.preflight_headers)(
                    scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's preflight answer, as a 204 without a body."""
        response = super().preflight_response(request_headers)
        if response.status_code != 200:
            return response  # a refused preflight keeps Starlette's 400 and its reason
        # The same headers without the "OK" body's own, as 204 has no body.
        headers = {key: value for key, value in response.headers.items()
                   if key not in ("content-length", "content-type")}
        return Response(status_code=204, headers=headers)

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        """Send one ASGI message, with the CORS headers even for a request without Origin.

        Args:
            message: the ASGI message.
            send: the next ASGI send.
            request_headers: the request's headers.
        """
        if message["type"] == "http.response.start" and "origin" not in request_headers:
            message.setdefault("headers", [])
            MutableHeaders(scope=message).update(self.simple_headers)
        await super().send(message, send, request_headers)


class ResourceName(Convertor[str]):
    """A resource name or id in a path; it holds no dot.

    So `/v0/pipes/top_airlines` goes to the pipe's info, and `/v0/pipes/top_airlines.json`
    goes on to the data route.
    """

    regex = "[A-Za-z0-9_]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class ImportMode(ResourceName):
    """The mode a v1 import names in its path: append or replace."""

    regex = "append|replace"


register_url_convertor("resource", ResourceName())
register_url_convertor("import_mode", ImportMode())


def create_app(state: LocalState, workspaces: Workspaces) -> Starlette:
    """The ASGI app: every route, the middleware, and the error rendering.

    Args:
        state: the default workspace's state.
        workspaces: every workspace, the default one included (`workspaces.py`).

    Returns:
        The app.
    """
    routes = [
        Route("/", index),
        Route("/v0/pipes", list_pipes),
        # A name without an extension is the pipe's info; with one, the endpoint's data.
        Route("/v0/pipes/{name:resource}", pipe_info),
        Route("/v0/pipes/{filename:path}", pipe_data, methods=["GET", "POST"]),
        Route("/examples/query.http", endpoint_example),
        Route("/v0/datasources", list_datasources),
        Route("/v0/datasources", post_datasources, methods=["POST"]),
        Route("/v0/datasources/{name:resource}", get_datasource),
        Route("/v0/datasources/{name:resource}/truncate", truncate_datasource,
              methods=["POST"]),
        # The Forward CLI's imports (api_jobs.py), then the jobs it polls.
        Route("/v1/datasources/{name:resource}/{mode:import_mode}", v1_import,
              methods=["POST"]),
        Route("/v0/jobs", list_jobs),
        Route("/v0/jobs/{job_id}", get_job),
        Route("/v0/workspace", workspace_info),
        Route("/v1/workspace", workspace_info),
        Route("/v0/regions", regions),
        Route("/v0/sql", sql_query, methods=["GET", "POST"]),
        Route("/v0/events", events, methods=["POST"]),
        Route("/v0/local/seed", seed, methods=["POST"]),
        # The Tokens API (api_tokens.py); tinybird-sdk posts to "/v0/tokens/".
        Route("/v0/tokens", list_tokens, methods=["GET"]),
        Route("/v0/tokens", create_token, methods=["POST"]),
        Route("/v0/tokens/", list_tokens, methods=["GET"]),
        Route("/v0/tokens/", create_token, methods=["POST"]),
        Route("/v0/tokens/{token}/refresh", refresh_token, methods=["POST"]),
        Route("/v0/tokens/{token}", get_token, methods=["GET"]),
        Route("/v0/tokens/{token}", update_token, methods=["PUT"]),
        Route("/v0/tokens/{token}", delete_token, methods=["DELETE"]),
        # Deployments (api_deploy.py): the Forward CLI's `tb deploy`.
        Route("/v1/deploy", deploy, methods=["POST"]),
        Route("/v1/build", build, methods=["POST"]),
        Route("/v1/deployments", list_deployments, methods=["GET"]),
        Route("/v1/deployments/{ident:resource}", get_deployment, methods=["GET"]),
        Route("/v1/deployments/{ident:resource}", delete_deployment, methods=["DELETE"]),
        Route("/v1/deployments/{ident:resource}/set-live", set_live, methods=["POST"]),
        # Tinybird Local's own (api_local.py): the Forward CLI's `tb --local ...`.
        Route("/tokens", local_tokens, methods=["GET"]),
        Route("/v1/user/workspaces", user_workspaces, methods=["GET"]),
        Route("/v1/user/workspaces/", user_workspaces, methods=["GET"]),
        Route("/v1/workspaces", create_workspace, methods=["POST"]),
        Route("/v1/workspaces/{ident}", delete_workspace, methods=["DELETE"]),
    ]
    # HeadersAndAccessLog first (outermost), so preflights get a request id and a log line.
    middleware = [
        Middleware(HeadersAndAccessLog),
        Middleware(TinybirdCORS, allow_origins=["*"],
                   allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                   allow_headers=["Authorization", "Content-Type", "X-Requested-With",
                                  "X-Tb-Warning"],
                   expose_headers=["X-Tb-Warning"], max_age=86400),
    ]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={Exception: _render_error, APIError: _render_error,
                                        HTTPException: _render_error})
    app.state.local = state
    app.state.workspaces = workspaces

    return app
