"""Who is asking, and what may they do: static tokens and JWTs, verified as Tinybird does.

A token that begins with `p.` is a static token: the admin token, a datafile's TOKEN,
or one made with the Tokens API. Anything else is read as a JWT signed with the admin
token (HS256 only). The result is a `Grant`. Every refusal is a 403 that names the check
that failed and never repeats the token.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import jwt

from .errors import LIMITS_DOCS, TooManyRequests, forbidden
from .ratelimit import RateDecision
from .workspace import Workspace


@dataclass(frozen=True)
class Grant:
    """What one token may do.

    Attributes:
        read_pipes: pipe name to the fixed params forced on it; None for every pipe.
        append_datasources: the data sources it may append to; None for every one.
        read_datasources: data source name to its row filter ("" for none); None for
            every data source, unfiltered.
        scopes: the token's scope strings as the Tokens API shows them
            (`DATASOURCES:CREATE`, `TOKENS`...), for checks beyond the ones above.
    """

    kind: str  # "admin", "static" or "jwt"
    name: str
    read_pipes: Mapping[str, Mapping[str, Any]] | None = field(default_factory=dict)
    append_datasources: frozenset[str] | None = frozenset()
    rps: float | None = None
    expires_at: float | None = None  # JWTs only: the `exp` claim
    read_datasources: Mapping[str, str] | None = field(default_factory=dict)
    scopes: tuple[str, ...] = ()
    token_id: str = ""  # static tokens: the id the Tokens API lists

    @property
    def is_admin(self) -> bool:
        """True for the workspace admin token, or a token with the ADMIN scope."""
        return self.kind == "admin"

    def has_scope(self, scope: str) -> bool:
        """True if the token holds `scope`, or is an admin."""
        return self.is_admin or scope in self.scopes

    def can_read_datasource(self, datasource: str) -> bool:
        """True if the token may read `datasource`, filtered or not."""
        return self.read_datasources is None or datasource in self.read_datasources

    def row_filter(self, datasource: str) -> str:
        """The WHERE condition this token reads `datasource` through ("" for none)."""
        if self.read_datasources is None:
            return ""
        return self.read_datasources.get(datasource, "")

    def can_read(self, pipe: str) -> bool:
        """True if the token may read `pipe`."""
        return self.read_pipes is None or pipe in self.read_pipes

    def fixed_params(self, pipe: str) -> Mapping[str, Any]:
        """The parameters the token forces on `pipe`, whatever the request says."""
        if self.read_pipes is None:
            return {}
        return self.read_pipes.get(pipe, {})

    def can_append(self, datasource: str) -> bool:
        """True if the token may append to `datasource`."""
        return self.append_datasources is None or datasource in self.append_datasources


def token_from_request(query: Mapping[str, str], authorization: str | None) -> str | None:
    """`?token=` wins over `Authorization: Bearer`, as on Tinybird."""
    token = query.get("token")
    if token:
        return token
    if authorization:
        parts = authorization.split(" ")
        if len(parts) == 2 and parts[0] == "Bearer" and parts[1]:
            return parts[1]
    return None


def unverified_workspace_id(token: str) -> str:
    """The `workspace_id` claim of a JWT, unchecked; "" if there is none to read.

    It says only which workspace should check the token: that workspace verifies the
    signature with its own admin token, so a forged claim gains nothing.
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    workspace_id = claims.get("workspace_id") if isinstance(claims, dict) else None
    return workspace_id if isinstance(workspace_id, str) else ""


class VerifiedJWTs:
    """JWTs already verified, kept until their `exp`.

    A dashboard sends the same JWT every few seconds for minutes, and checking its
    signature and claims once is enough. The key is the exact token text, so a token
    with one byte changed is a different token and is verified again.
    """

    def __init__(self, size: int = 4096, clock: Callable[[], float] = time.time):
        self._grants: OrderedDict[str, Grant] = OrderedDict()
        self._size = size
        self._clock = clock
        self._lock = threading.Lock()

    def get(self, token: str) -> Grant | None:
        """The grant of a verified, unexpired token; None otherwise."""
        with self._lock:
            grant = self._grants.get(token)
            if grant is None:
                return None
            # PyJWT's rule: expired once now >= exp.
            if grant.expires_at is None or self._clock() >= grant.expires_at:
                del self._grants[token]
                return None
            self._grants.move_to_end(token)
            return grant

    def put(self, token: str, grant: Grant) -> None:
        """Keep a verified token's grant; past `size` tokens, the least recent goes."""
        with self._lock:
            self._grants[token] = grant
            if len(self._grants) > self._size:
                self._grants.popitem(last=False)


def authenticate(token: str | None, workspace: Workspace,
                 pipe_ids: Mapping[str, str] | None = None,
                 verified: VerifiedJWTs | None = None) -> Grant:
    """What `token` may do.

    Args:
        token: the token from the request, or None.
        workspace: the workspace whose tokens and admin token are checked.
        pipe_ids: pipe id to pipe name, so JWT scopes may name a pipe either way.
        verified: JWTs already verified; a hit skips the check.

    Returns:
        The token's grant.

    Raises:
        Forbidden: a 403 that says which check failed.
    """
    if not token:
        raise forbidden()
    if token.startswith("p."):
        return _static_grant(token, workspace)
    grant = verified.get(token) if verified else None
    if grant is None:
        grant = _jwt_grant(token, workspace, pipe_ids or {})
        if verified:
            verified.put(token, grant)
    return grant


ADMIN_TOKEN_NAME = "admin token"  # noqa: S105 - a name, not a secret
# Scope types the Tokens API accepts; those with a resource end in its name.
SCOPES_WITH_RESOURCE = frozenset({"PIPES:READ", "PIPES:DROP", "DATASOURCES:READ",
                                  "DATASOURCES:APPEND", "DATASOURCES:DROP"})
SCOPES_WITHOUT_RESOURCE = frozenset({"ADMIN", "TOKENS", "PIPES:CREATE", "DATASOURCES:CREATE",
                                     "WORKSPACE:READ_ALL"})


def parse_scope(scope: str) -> tuple[str, str, str]:
    """`TYPE[:ACTION][:resource[:filter]]` as (type, resource, filter); ValueError if unknown.

    The filter (DATASOURCES:READ only) is the rest of the string, colons included.
    """
    parts = scope.strip().split(":", 3)
    if parts[0] in SCOPES_WITHOUT_RESOURCE and len(parts) == 1:
        return parts[0], "", ""
    kind = ":".join(parts[:2])
    if kind in SCOPES_WITHOUT_RESOURCE and len(parts) == 2:
        return kind, "", ""
    if kind not in SCOPES_WITH_RESOURCE or len(parts) < 3 or not parts[2]:
        raise ValueError(f"Invalid scope '{scope[:100]}'")
    row_filter = parts[3] if len(parts) == 4 else ""
    if row_filter and kind != "DATASOURCES:READ":
        raise ValueError(f"Invalid scope '{scope[:100]}': only DATASOURCES:READ takes a filter")
    return kind, parts[2], row_filter


def grant_for_scopes(name: str, scopes: Sequence[str], token_id: str = "") -> Grant:
    """What a static token with these scope strings may do.

    Args:
        name: the token's name.
        scopes: its scope strings; one that cannot be parsed grants nothing.
        token_id: its id in the Tokens API.

    Returns:
        The grant.
    """
    parsed = []
    for scope in scopes:
        try:
            parsed.append(parse_scope(scope))
        except ValueError:
            continue  # a scope this version does not know grants nothing
    if any(kind == "ADMIN" for kind, _, _ in parsed):
        return Grant(kind="admin", name=name, read_pipes=None, append_datasources=None,
                     read_datasources=None, scopes=tuple(scopes), token_id=token_id)
    read_pipes: dict[str, Mapping[str, Any]] = {
        resource: {} for kind, resource, _ in parsed if kind == "PIPES:READ"}
    read_ds = {resource: flt for kind, resource, flt in parsed if kind == "DATASOURCES:READ"}
    append = frozenset(resource for kind, resource, _ in parsed if kind == "DATASOURCES:APPEND")
    return Grant(kind="static", name=name, read_pipes=read_pipes, append_datasources=append,
                 read_datasources=read_ds, scopes=tuple(scopes), token_id=token_id)


def _static_grant(token: str, workspace: Workspace) -> Grant:
    """The grant of the admin token or a static token; a 403 for an unknown one."""
    if token == workspace.admin_token:
        return Grant(kind="admin", name=ADMIN_TOKEN_NAME, read_pipes=None,
                     append_datasources=None, read_datasources=None, scopes=("ADMIN",),
                     token_id=workspace.admin_token_id)
    for static in list(workspace.tokens.values()):
        if static.token == token:
            return grant_for_scopes(static.name, static.scopes, static.token_id)
    raise forbidden("Token not found in this workspace")


def _jwt_grant(token: str, workspace: Workspace, pipe_ids: Mapping[str, str]) -> Grant:
    """The grant of a JWT, checked as Tinybird checks it; a 403 naming the failed check."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False, "require": ["exp"]})
    except jwt.MissingRequiredClaimError:
        raise forbidden('Token is missing the "exp" claim') from None
    except jwt.PyJWTError as exc:
        raise forbidden(f"Malformed token: {_reason(exc)}") from None
    if header.get("alg") != "HS256":
        alg = str(header.get("alg"))[:16]
        raise forbidden(f"Unsupported JWT algorithm {alg!r}: only HS256 is accepted")
    workspace_id = claims.get("workspace_id")
    if not workspace_id:
        raise forbidden("Workspace ID missing in JWT token")
    if workspace_id != workspace.workspace_id:
        raise forbidden("Workspace with ID given in the JWT not found")
    try:
        jwt.decode(
            token,
            workspace.admin_token,
            algorithms=["HS256"],
            options={"verify_iat": False, "verify_aud": False, "require": ["exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise forbidden("Signature has expired") from None
    except jwt.InvalidSignatureError:
        raise forbidden("Signature verification failed") from None
    except jwt.PyJWTError as exc:
        raise forbidden(f"Invalid token: {_reason(exc)}") from None
    name = claims.get("name")
    if not isinstance(name, str) or not name:
        raise forbidden("JWT name missing: the token needs a 'name' claim")
    scopes = claims.get("scopes")
    if not isinstance(scopes, list) or not scopes:
        raise forbidden("JWT scopes missing: the token needs a list of scopes")
    read: dict[str, dict[str, Any]] = {}
    read_ds: dict[str, str] = {}
    for scope in scopes:
        kind = scope.get("type") if isinstance(scope, dict) else scope
        if not isinstance(scope, dict) or kind not in JWT_SCOPES:
            raise forbidden(f"Unsupported JWT scope {str(kind)[:40]!r}: only PIPES:READ "
                            "and DATASOURCES:READ are accepted")
        resource = scope.get("resource")
        if not isinstance(resource, str) or not resource:
            raise forbidden("JWT scope without a resource")
        if kind == "DATASOURCES:READ":
            row_filter = scope.get("filter") or ""
            if not isinstance(row_filter, str):
                raise forbidden("JWT filter must be a string")
            read_ds[resource] = row_filter
            continue
        fixed = scope.get("fixed_params") or {}
        if not isinstance(fixed, dict):
            raise forbidden("JWT fixed_params must be an object")
        read[pipe_ids.get(resource, resource)] = dict(fixed)
    rps = None
    limits = claims.get("limits")
    if isinstance(limits, dict) and isinstance(limits.get("rps"), (int, float)):
        # Tinybird ignores a limit of zero or less.
        rps = float(limits["rps"]) if limits["rps"] > 0 else None
    return Grant(kind="jwt", name=name, read_pipes=read, rps=rps,
                 expires_at=float(int(claims["exp"])), read_datasources=read_ds)


JWT_SCOPES = frozenset({"PIPES:READ", "DATASOURCES:READ"})


def sign_jwt(workspace: Workspace, *, name: str, exp: int, scopes: Sequence[Mapping[str, Any]],
             limits: Mapping[str, Any] | None = None) -> str:
    """A JWT with these claims, signed as Tinybird signs them (HS256, the admin token).

    Args:
        workspace: the workspace; its admin token signs.
        name: the `name` claim.
        exp: the `exp` claim, in Unix seconds.
        scopes: the `scopes` claim, as given.
        limits: the `limits` claim, or None for none.

    Returns:
        The JWT.
    """
    claims: dict[str, Any] = {"workspace_id": workspace.workspace_id, "name": name,
                              "exp": int(exp), "scopes": [dict(s) for s in scopes]}
    if limits:
        claims["limits"] = dict(limits)
    return jwt.encode(claims, workspace.admin_token, algorithm="HS256")


def issue_jwt(workspace: Workspace, pipes: str | Sequence[str], *, name: str,
              ttl_seconds: float, fixed_params: Mapping[str, Any] | None = None,
              rps: float | None = None, now: float | None = None) -> str:
    """A JWT that may read `pipes` only, as Tinybird's Tokens API issues it.

    It has the claims `authenticate` accepts: workspace_id, name, exp, PIPES:READ scopes
    with optional fixed_params, and optional limits.rps, signed HS256 with the workspace
    admin token. It is here, not in a client library, so that Tinybird Local can issue
    tokens (the `jwt` command) without importing the rest of the project. `exp` is
    rounded up to a whole second, so a token never lives less than asked.

    Args:
        workspace: the workspace; its admin token signs.
        pipes: the pipe, or pipes, the JWT may read.
        name: the `name` claim; rate limits are counted by it.
        ttl_seconds: how long the JWT lives; must be positive.
        fixed_params: values forced on every read, or None.
        rps: `limits.rps`, or None for no limit.
        now: the time of issue in Unix seconds; None means now.

    Returns:
        The JWT.

    Raises:
        ValueError: no name, no pipe, or a lifetime that is not positive.
    """
    if not ttl_seconds > 0:
        raise ValueError("ttl_seconds must be positive")
    if not name:
        raise ValueError("a JWT needs a name")
    now = time.time() if now is None else now
    scopes: list[dict[str, Any]] = []
    for pipe in [pipes] if isinstance(pipes, str) else list(pipes):
        scope: dict[str, Any] = {"type": "PIPES:READ", "resource": pipe}
        if fixed_params:
            scope["fixed_params"] = dict(fixed_params)
        scopes.append(scope)
    if not scopes:
        raise ValueError("a JWT needs at least one pipe")
    claims: dict[str, Any] = {
        "workspace_id": workspace.workspace_id,
        "name": name,
        "exp": math.ceil(now + ttl_seconds),
        "scopes": scopes,
    }
    if rps:
        claims["limits"] = {"rps": rps}
    return jwt.encode(claims, workspace.admin_token, algorithm="HS256")


def _reason(exc: Exception) -> str:
    """PyJWT's message without anything that could be the token itself."""
    return str(exc).split(":")[0][:120] or type(exc).__name__


def raise_for_rate(decision: RateDecision) -> None:
    """Tinybird's 429 for a refused request, with Retry-After and X-RateLimit-* headers."""
    if not decision.allowed:
        raise TooManyRequests(f"Too many requests: retry after {decision.retry_after} seconds",
                              LIMITS_DOCS, headers=decision.headers())
