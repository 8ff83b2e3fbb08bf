"""Mint and keep the short-lived JWTs that read Tinybird's API Endpoints.

The payload is the guide's (`workspace_id`, `name`, `exp`, and `scopes` with PIPES:READ
on one pipe), signed HS256 with the workspace admin token. The admin token stays in the
server process. Only the JWT is sent, and it can read one endpoint for a few minutes.

A `TokenSource` keeps one JWT. It mints a new one shortly before `exp`, or after the
server refused the old one, not once per request. Given a `valid_until` (when the
reader's access ends), it never mints a JWT that outlives that moment.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from .errors import AccessExpired

DEFAULT_TTL_SECONDS = 600
# The guide's JWT name. Give each kind of reader its own: Tinybird counts limits by name.
DEFAULT_NAME = "frontend_jwt"
# Re-mint this long before `exp`, so no request leaves with a token about to expire.
REFRESH_MARGIN_SECONDS = 30


def jwt_payload(workspace_id: str, pipes: list[str] | str, *, name: str = DEFAULT_NAME,
                ttl_seconds: float = DEFAULT_TTL_SECONDS,
                fixed_params: Mapping[str, Any] | None = None,
                rps: float | None = None, now: float | None = None) -> dict[str, Any]:
    """The guide's claims: read `pipes` only, until `now + ttl_seconds`.

    `exp` is rounded up to a whole second, so a token never lives less than asked.
    Rounding down could make a short-lived token expired from the start.

    Args:
        workspace_id: the workspace the JWT is for.
        pipes: the endpoint, or endpoints, the JWT may read.
        name: the JWT's `name`; Tinybird counts rate limits and stats by it.
        ttl_seconds: how long the JWT lives; must be positive.
        fixed_params: values the server puts in every query, whatever is asked.
        rps: the JWT's `limits.rps`; None or 0 for no limit.
        now: the time of minting in Unix seconds; None means now.

    Returns:
        The claims, ready to sign.
    """
    if not ttl_seconds > 0:
        raise ValueError("ttl_seconds must be positive")
    now = time.time() if now is None else now
    pipe_names = [pipes] if isinstance(pipes, str) else list(pipes)
    scopes = []
    for pipe in pipe_names:
        scope: dict[str, Any] = {"type": "PIPES:READ", "resource": pipe}
        if fixed_params:
            scope["fixed_params"] = dict(fixed_params)
        scopes.append(scope)
    payload: dict[str, Any] = {
        "workspace_id": workspace_id,
        "name": name,
        "exp": math.ceil(now + ttl_seconds),
        "scopes": scopes,
    }
    if rps:
        payload["limits"] = {"rps": rps}
    return payload


def mint_jwt(signing_token: str, workspace_id: str, pipes: list[str] | str, **options: Any) -> str:
    """A signed JWT that may read `pipes` only.

    Args:
        signing_token: the workspace admin token that signs the JWT.
        workspace_id: the workspace the JWT is for.
        pipes: the endpoint, or endpoints, the JWT may read.
        **options: `name`, `ttl_seconds`, `fixed_params`, `rps`, `now`, as for
            `jwt_payload`.

    Returns:
        The JWT as text.
    """
    return sign_claims(jwt_payload(workspace_id, pipes, **options), signing_token)


def sign_claims(claims: Mapping[str, Any], signing_token: str) -> str:
    """The one place a JWT is signed: HS256 with the workspace admin token, as Tinybird wants."""
    return jwt.encode(dict(claims), signing_token, algorithm="HS256")


@dataclass(frozen=True)
class MintedToken:
    token: str
    expires_at: float
    claims: dict[str, Any]
    minted_at: float = 0.0

    def __repr__(self) -> str:  # a JWT is a bearer credential: keep it out of log lines
        return f"MintedToken(expires_at={self.expires_at}, claims={self.claims!r})"


class TokenSource:
    """One cached JWT, re-minted before it expires or when `invalidate()` says so."""

    def __init__(self, signing_token: str, workspace_id: str, pipes: list[str] | str, *,
                 ttl_seconds: float = DEFAULT_TTL_SECONDS, name: str = DEFAULT_NAME,
                 fixed_params: Mapping[str, Any] | None = None, rps: float | None = None,
                 valid_until: float | None = None, clock: Callable[[], float] = time.time):
        """Keep no JWT yet: the first `get()` mints one.

        Args:
            signing_token: the workspace admin token; it signs and is never sent.
            workspace_id: the workspace the JWTs are for.
            pipes: the endpoints the JWTs may read.
            ttl_seconds: how long each JWT lives.
            name: the JWT's `name`, which Tinybird counts `limits.rps` and stats by.
            fixed_params: values the server puts in every query, whatever is asked.
            rps: the JWT's `limits.rps`, if any.
            valid_until: Unix time after which no JWT is minted (`AccessExpired`).
            clock: the time now, in Unix seconds.
        """
        if not ttl_seconds > 0:
            raise ValueError("ttl_seconds must be positive")
        self._signing_token = signing_token
        self._workspace_id = workspace_id
        self._pipes = pipes
        self._ttl = ttl_seconds
        self._name = name
        self._fixed_params = fixed_params
        self._rps = rps
        self._valid_until = valid_until
        self._clock = clock
        self._current: MintedToken | None = None
        self._lock = threading.Lock()
        self.mint_count = 0

    def __repr__(self) -> str:  # never show the signing token, even in a debugger
        return f"TokenSource(workspace_id={self._workspace_id!r}, pipes={self._pipes!r})"

    @property
    def current(self) -> MintedToken | None:
        return self._current

    @property
    def scope(self) -> str:
        """What this source's JWTs may read, as JSON: the pipes and their fixed_params.

        Two sources with the same scope may share answers; a different `fixed_params`
        (another tenant) is a different scope.
        """
        pipes = [self._pipes] if isinstance(self._pipes, str) else sorted(self._pipes)
        return json.dumps({"pipes": pipes, "fixed_params": dict(self._fixed_params or {})},
                          sort_keys=True, default=str)

    @property
    def ttl_seconds(self) -> float:
        return self._ttl

    @property
    def margin_seconds(self) -> float:
        """How long before `exp` a token is replaced: 30 s, or a tenth of a short TTL."""
        return min(REFRESH_MARGIN_SECONDS, self._ttl / 10)

    def get(self) -> str:
        """The cached JWT, or a new one if there is none or it expires within the margin."""
        return self.minted().token

    def minted(self) -> MintedToken:
        """`get()`'s token with its claims and times, for a reader who shows them."""
        with self._lock:
            now = self._clock()
            margin = self.margin_seconds
            current = self._current
            if current is None or now >= current.expires_at - margin and not (
                    self._is_last(current) and now < current.expires_at):
                current = self._current = self._mint(now)
            return current

    def remint(self) -> MintedToken:
        """A new JWT now, however young the cached one is (for a "mint now" button)."""
        with self._lock:
            self._current = self._mint(self._clock())
            return self._current

    def invalidate(self) -> None:
        """Forget the cached JWT (the server refused it): the next `get()` mints anew."""
        with self._lock:
            self._current = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def valid_until(self) -> float | None:
        return self._valid_until

    def _is_last(self, token: MintedToken) -> bool:
        """True when `token` lasts until `valid_until`: a new one could not last longer."""
        return self._valid_until is not None and token.expires_at >= math.floor(self._valid_until)

    def _mint(self, now: float) -> MintedToken:
        payload = jwt_payload(self._workspace_id, self._pipes, name=self._name,
                              ttl_seconds=self._ttl, fixed_params=self._fixed_params,
                              rps=self._rps, now=now)
        if self._valid_until is not None:
            # `exp` is a whole second: the last one before the access ends.
            payload["exp"] = min(payload["exp"], math.floor(self._valid_until))
            if payload["exp"] <= now:
                raise AccessExpired("The access this JWT stood for has ended")
        token = sign_claims(payload, self._signing_token)
        self.mint_count += 1
        return MintedToken(token=token, expires_at=float(payload["exp"]), claims=payload,
                           minted_at=now)
