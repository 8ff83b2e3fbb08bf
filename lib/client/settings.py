"""Where the dashboard finds Tinybird: st.secrets, then the environment, then .env files.

The names are the guide's (`TINYBIRD_SIGNING_TOKEN`, `TINYBIRD_WORKSPACE`, and its
`NEXT_PUBLIC_TINYBIRD_HOST` next to our `TINYBIRD_HOST`), so a guide user's `.env.local`
works as it is. With no host at all the app runs on the embedded Tinybird Local. A bad
value raises `SettingsError` naming the setting, for the page to show instead of a trace.
"""

from __future__ import annotations

import dataclasses
import os
import re
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
# Where the .env files are read from when TINYBIRD_ENV_DIR does not say: the current
# directory, as for `.streamlit/secrets.toml`. Tests point it at an empty directory so a
# developer's own `.env.local` cannot leak into them.
ENV_DIR_VARIABLE = "TINYBIRD_ENV_DIR"
# Placeholders copied from .env.example (or the guide's): refused, naming the setting.
PLACEHOLDER_PREFIX = "YOUR "
PIPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SettingsError(ValueError):
    """A setting the page cannot run with; `setting` names it, `problem` says what to do."""

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
    jwt_rps: float | None = None  # the JWTs' `limits.rps`; None: no limit in the JWT

    @property
    def embedded(self) -> bool:
        return self.host is None

    def __repr__(self) -> str:  # the signing token must not reach a log through a repr
        return (f"Settings(host={self.host!r}, workspace_id={self.workspace_id!r}, "
                f"pipe={self.pipe!r}, refresh_seconds={self.refresh_seconds}, "
                f"jwt_ttl_seconds={self.jwt_ttl_seconds}, jwt_rps={self.jwt_rps}, "
                f"local_data_dir={self.local_data_dir!r})")


def _is_placeholder(value: str) -> bool:
    return value.upper().startswith(PLACEHOLDER_PREFIX)


def _shown(value: str) -> str:
    """The value, quoted, for an error message, unless it may be a secret.

    A user who swaps two settings would otherwise see their admin token (`p.…`) or a
    JWT (`eyJ…`) printed on the page by the message meant to help them.
    """
    if value.startswith(("p.", "eyJ")) or len(value) > 80:
        return "the value given (not shown: it looks like a token)"
    return repr(value)


def _read_env_file(path: Path) -> dict[str, str]:
    try:
        return {k: v for k, v in dotenv_values(path).items() if v is not None}
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(str(path), f"cannot be read ({type(exc).__name__}); fix or remove "
                            "the file") from None


def _layers(secrets: Mapping[str, Any] | None, environ: Mapping[str, str],
            env_dir: Path) -> list[Mapping[str, Any]]:
    layers: list[Mapping[str, Any]] = []
    if secrets:
        layers.append(secrets)
    layers.append(environ)
    for name in (".env.local", ".env"):
        path = env_dir / name
        if path.is_file():
            layers.append(_read_env_file(path))
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
        raise SettingsError(name, f"{_shown(found[1])} is not a number") from None
    if not low <= value <= high:  # also refuses nan
        raise SettingsError(name, f"{found[1]} is outside {low:g}..{high:g}")
    return value


def load_settings(secrets: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None,
                  env_dir: Path | str | None = None) -> Settings:
    """Settings from `secrets` > `environ` > `.env.local` > `.env`, checked.

    `environ` defaults to `os.environ`; `env_dir` (where the .env files are) to
    `environ["TINYBIRD_ENV_DIR"]`, else the current directory. Raises `SettingsError`.
    """
    environ = os.environ if environ is None else environ
    if env_dir is None:
        env_dir = environ.get(ENV_DIR_VARIABLE) or "."
    layers = _layers(secrets, environ, Path(env_dir))
    host_found = _lookup(layers, "TINYBIRD_HOST", "NEXT_PUBLIC_TINYBIRD_HOST")
    pipe = (_lookup(layers, "TINYBIRD_PIPE") or ("", DEFAULT_PIPE))[1]
    if not PIPE_NAME.fullmatch(pipe):
        raise SettingsError("TINYBIRD_PIPE", f"{_shown(pipe)} is not a pipe name (letters, "
                            "digits and underscores, e.g. top_airlines)")
    common = Settings(
        host=None, signing_token=None, workspace_id=None,
        pipe=pipe,
        refresh_seconds=_number(layers, "TINYBIRD_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS,
                                1, 3600),
        jwt_ttl_seconds=int(_number(layers, "TINYBIRD_JWT_TTL_SECONDS", DEFAULT_JWT_TTL_SECONDS,
                                    60, 86400)),
        local_data_dir=(_lookup(layers, "TINYBIRD_LOCAL_DATA_DIR")
                        or ("", DEFAULT_LOCAL_DATA_DIR))[1],
        jwt_rps=_number(layers, "TINYBIRD_JWT_RPS", 0, 0.001, 1_000_000) or None,
    )
    if host_found is None:
        return common
    host_name, host = host_found
    if _is_placeholder(host):
        raise SettingsError(host_name, "still holds the placeholder from .env.example; set your "
                            "region's API host, e.g. https://api.tinybird.co")
    _check_host(host_name, host)
    token_found = _lookup(layers, "TINYBIRD_SIGNING_TOKEN")
    if token_found is None:
        raise SettingsError("TINYBIRD_SIGNING_TOKEN", "is not set: use your workspace admin "
                            "token (it signs the JWTs and never leaves the server)")
    if _is_placeholder(token_found[1]):
        raise SettingsError("TINYBIRD_SIGNING_TOKEN", "still holds the placeholder from "
                            ".env.example: use your workspace admin token")
    workspace_found = _lookup(layers, "TINYBIRD_WORKSPACE")
    if workspace_found is None:
        raise SettingsError("TINYBIRD_WORKSPACE", "is not set: use the UUID of your workspace")
    if _is_placeholder(workspace_found[1]):
        raise SettingsError("TINYBIRD_WORKSPACE", "still holds the placeholder from "
                            ".env.example: use the UUID of your workspace")
    try:
        workspace_id = str(uuid.UUID(workspace_found[1]))
    except ValueError:
        raise SettingsError("TINYBIRD_WORKSPACE", f"{_shown(workspace_found[1])} is not a "
                            "workspace UUID (like 2f8d1a3c-…, 36 characters)") from None
    return dataclasses.replace(common, host=host.rstrip("/"), signing_token=token_found[1],
                               workspace_id=workspace_id)


def _check_host(name: str, host: str) -> None:
    """An http(s) URL with a host name and a valid port, nothing that cannot be a host."""
    example = "e.g. https://api.tinybird.co"
    if any(c.isspace() for c in host):
        raise SettingsError(name, f"{_shown(host)} contains spaces; {example}")
    parsed = urlparse(host)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise SettingsError(name, f"{_shown(host)} is not an http(s) URL, {example}")
    try:
        parsed.port  # noqa: B018 - urlparse checks the port only when asked
    except ValueError:
        raise SettingsError(name, f"{_shown(host)} has an invalid port, {example}") from None
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise SettingsError(name, f"{_shown(host)} must be the bare API host, {example}")
