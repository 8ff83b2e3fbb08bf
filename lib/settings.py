"""Where the dashboard finds Tinybird: st.secrets, then the environment, then .env files.

The names are the guide's (`TINYBIRD_SIGNING_TOKEN`, `TINYBIRD_WORKSPACE`, and its
`NEXT_PUBLIC_TINYBIRD_HOST` next to our `TINYBIRD_HOST`), so a guide user's `.env.local`
works as it is. With no host at all the app runs on the embedded Tinybird Local. A bad
value raises `SettingsError` naming the setting, for the page to show instead of a trace.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dotenv import dotenv_values

DEFAULT_PIPE = "top_airlines"
DEFAULT_REFRESH_SECONDS = 5.0
DEFAULT_JWT_TTL_SECONDS = 600
DEFAULT_LOCAL_DATA_DIR = ".tinybird-local"
# Placeholders copied from .env.example: treated as "not set", with a hint.
PLACEHOLDER_PREFIX = "YOUR "


class SettingsError(ValueError):
    def __init__(self, setting: str, problem: str):
        self.setting, self.problem = setting, problem
        super().__init__(f"{setting}: {problem}")


@dataclass(frozen=True)
class Settings:
    host: str | None  # None: the embedded Tinybird Local
    signing_token: str | None
    workspace_id: str | None
    pipe: str = DEFAULT_PIPE
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS
    jwt_ttl_seconds: int = DEFAULT_JWT_TTL_SECONDS
    local_data_dir: str = DEFAULT_LOCAL_DATA_DIR

    @property
    def embedded(self) -> bool:
        return self.host is None

    def __repr__(self) -> str:  # the signing token must not reach a log through a repr
        return (f"Settings(host={self.host!r}, workspace_id={self.workspace_id!r}, "
                f"pipe={self.pipe!r}, refresh_seconds={self.refresh_seconds}, "
                f"jwt_ttl_seconds={self.jwt_ttl_seconds})")


def _layers(secrets: Mapping[str, Any] | None, environ: Mapping[str, str],
            env_dir: Path) -> list[Mapping[str, Any]]:
    layers: list[Mapping[str, Any]] = []
    if secrets:
        layers.append(secrets)
    layers.append(environ)
    for name in (".env.local", ".env"):
        path = env_dir / name
        if path.is_file():
            layers.append({k: v for k, v in dotenv_values(path).items() if v is not None})
    return layers


def _lookup(layers: list[Mapping[str, Any]], *names: str) -> tuple[str, str] | None:
    """(name, value) of the first non-empty setting, in precedence order."""
    for layer in layers:
        for name in names:
            value = layer.get(name)
            if value is not None and str(value).strip() != "":
                return name, str(value).strip()
    return None


def _number(layers: list[Mapping[str, Any]], name: str, default: float, low: float,
            high: float) -> float:
    found = _lookup(layers, name)
    if found is None:
        return default
    try:
        value = float(found[1])
    except ValueError:
        raise SettingsError(name, f"{found[1]!r} is not a number") from None
    if not low <= value <= high:
        raise SettingsError(name, f"{found[1]} is outside {low:g}..{high:g}")
    return value


def load_settings(secrets: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None,
                  env_dir: Path | str = ".") -> Settings:
    layers = _layers(secrets, os.environ if environ is None else environ, Path(env_dir))
    host_found = _lookup(layers, "TINYBIRD_HOST", "NEXT_PUBLIC_TINYBIRD_HOST")
    pipe = (_lookup(layers, "TINYBIRD_PIPE") or ("", DEFAULT_PIPE))[1]
    if not pipe.replace("_", "a").isalnum():
        raise SettingsError("TINYBIRD_PIPE", f"{pipe!r} is not a pipe name")
    common = dict(
        pipe=pipe,
        refresh_seconds=_number(layers, "TINYBIRD_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS,
                                1, 3600),
        jwt_ttl_seconds=int(_number(layers, "TINYBIRD_JWT_TTL_SECONDS", DEFAULT_JWT_TTL_SECONDS,
                                    60, 86400)),
        local_data_dir=(_lookup(layers, "TINYBIRD_LOCAL_DATA_DIR")
                        or ("", DEFAULT_LOCAL_DATA_DIR))[1],
    )
    if host_found is None:
        return Settings(host=None, signing_token=None, workspace_id=None, **common)
    host_name, host = host_found
    if host.startswith(PLACEHOLDER_PREFIX):
        raise SettingsError(host_name, "still holds the placeholder from .env.example; set your "
                            "region's API host, e.g. https://api.tinybird.co")
    parsed = urlparse(host)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise SettingsError(host_name, f"{host!r} is not an http(s) URL, e.g. "
                            "https://api.tinybird.co")
    token_found = _lookup(layers, "TINYBIRD_SIGNING_TOKEN")
    if token_found is None or token_found[1].startswith(PLACEHOLDER_PREFIX):
        raise SettingsError("TINYBIRD_SIGNING_TOKEN", "is not set: use your workspace admin "
                            "token (it signs the JWTs and never leaves the server)")
    workspace_found = _lookup(layers, "TINYBIRD_WORKSPACE")
    if workspace_found is None or workspace_found[1].startswith(PLACEHOLDER_PREFIX):
        raise SettingsError("TINYBIRD_WORKSPACE", "is not set: use the UUID of your workspace")
    try:
        workspace_id = str(uuid.UUID(workspace_found[1]))
    except ValueError:
        raise SettingsError("TINYBIRD_WORKSPACE", f"{workspace_found[1]!r} is not a workspace "
                            "UUID") from None
    return Settings(host=host.rstrip("/"), signing_token=token_found[1],
                    workspace_id=workspace_id, **common)
