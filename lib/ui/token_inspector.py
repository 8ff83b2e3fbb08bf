"""What a viewer's JWT says, how long it has left, and how to replay it with curl.

Everything here reads the JWT itself, never the signing token; the JWT is what the
browser could see anyway. The claims come from decoding the token without verifying it,
and the curl command carries the JWT only.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import jwt

from lib.ui.panels import age_text


def decode_claims(token: str) -> dict[str, Any]:
    """The JWT's payload as the server will read it (the signature is the server's job)."""
    return jwt.decode(token, options={"verify_signature": False})


def header(token: str) -> dict[str, Any]:
    """The JWT's header (`alg`, `typ`), unverified."""
    return jwt.get_unverified_header(token)


def _utc(seconds: float) -> str:
    """A Unix time as `2026-12-05 09:07:03 UTC`."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def claim_rows(claims: Mapping[str, Any]) -> list[dict[str, str]]:
    """The claims a reader cares about, one row each, in the guide's order."""
    exp = claims.get("exp")
    rows = [
        {"claim": "name", "value": str(claims.get("name", ""))},
        {"claim": "workspace_id", "value": str(claims.get("workspace_id", ""))},
        {"claim": "exp", "value": f"{exp} ({_utc(float(exp))})"
         if isinstance(exp, (int, float)) else "missing"},
    ]
    limits = claims.get("limits")
    rows.append({"claim": "limits", "value": json.dumps(limits) if limits else "none"})
    return rows


def scope_rows(claims: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per scope: what it lets the token read and the params it pins."""
    rows = []
    for scope in claims.get("scopes") or []:
        if not isinstance(scope, Mapping):
            continue
        fixed = scope.get("fixed_params")
        rows.append({"type": str(scope.get("type", "")),
                     "resource": str(scope.get("resource", "")),
                     "fixed_params": json.dumps(fixed) if fixed else "none"})
    return rows


def scoped_pipes(claims: Mapping[str, Any]) -> list[str]:
    """The pipes the JWT may read."""
    return [row["resource"] for row in scope_rows(claims) if row["type"] == "PIPES:READ"]


def time_left(expires_at: float, now: float) -> float:
    """Seconds until `expires_at`; 0 once past."""
    return max(0.0, expires_at - now)


def countdown_text(seconds_left: float) -> str:
    """The time left as a reader takes it in, or `expired`."""
    if seconds_left <= 0:
        return "expired"
    return age_text(seconds_left)


def life_fraction(minted_at: float, expires_at: float, now: float) -> float:
    """How much of the token's life is left, for a progress bar.

    Args:
        minted_at: when the token was minted, in Unix seconds.
        expires_at: its `exp`.
        now: the time now, in Unix seconds.

    Returns:
        A fraction from 0 (expired) to 1 (just minted).
    """
    span = expires_at - minted_at
    if span <= 0:
        return 0.0
    return min(1.0, max(0.0, (expires_at - now) / span))


def curl_command(host: str, pipe: str, token: str,
                 params: Mapping[str, str] | None = None) -> str:
    """A shell command that reads `pipe` with `token`, as the page's own requests do.

    The token goes in the Authorization header, as the dashboard sends it. A URL with
    `?token=` would end up in the access logs of proxies and servers.

    Args:
        host: the API host.
        pipe: the endpoint to read.
        token: the JWT.
        params: the endpoint's parameters, if any.

    Returns:
        The command, on two lines.
    """
    url = f"{host.rstrip('/')}/v0/pipes/{pipe}.json"
    if params:
        url += "?" + urlencode(params)
    return (f"curl -sS -H {shlex.quote('Authorization: Bearer ' + token)} \\\n"
            f"  {shlex.quote(url)}")
