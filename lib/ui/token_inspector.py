"""What a viewer's JWT says, how long it has left, and how to replay it with curl.

Everything here reads the JWT itself (it is what the browser could see anyway), never
the signing token: claims come from decoding the token without verifying it, and the
curl command carries the JWT only.
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
    return jwt.get_unverified_header(token)


def _utc(seconds: float) -> str:
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
    return [row["resource"] for row in scope_rows(claims) if row["type"] == "PIPES:READ"]


def time_left(expires_at: float, now: float) -> float:
    return max(0.0, expires_at - now)


def countdown_text(seconds_left: float) -> str:
    if seconds_left <= 0:
        return "expired"
    return age_text(seconds_left)


def life_fraction(minted_at: float, expires_at: float, now: float) -> float:
    """How much of the token's life is left, 0..1, for a progress bar."""
    span = expires_at - minted_at
    if span <= 0:
        return 0.0
    return min(1.0, max(0.0, (expires_at - now) / span))


def curl_command(host: str, pipe: str, token: str,
                 params: Mapping[str, str] | None = None) -> str:
    """A shell command that reads `pipe` with `token`, as the page's own requests do.

    The token goes in the Authorization header, as the dashboard sends it: a URL with
    `?token=` ends up in proxies' and servers' access logs.
    """
    url = f"{host.rstrip('/')}/v0/pipes/{pipe}.json"
    if params:
        url += "?" + urlencode(params)
    return (f"curl -sS -H {shlex.quote('Authorization: Bearer ' + token)} \\\n"
            f"  {shlex.quote(url)}")
