"""Where a program finds its Tinybird workspace: the host, the workspace id, the signing token.

Each setting is read from the program's secrets (a mapping it passes in), then the
environment, then the `.env.local` and `.env` files; the first non-empty value wins.
The names are the guide's (`TINYBIRD_SIGNING_TOKEN`, `TINYBIRD_WORKSPACE`, and
`NEXT_PUBLIC_TINYBIRD_HOST` beside `TINYBIRD_HOST`), so a guide user's `.env.local`
works unchanged.

When no host is set, no workspace is configured, and the caller decides what to do. A
bad value raises `SettingsError` naming the setting, so the program can show it instead
of a traceback. `SettingSources` reads any other setting in the same order.
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

# Where the .env files are read from when TINYBIRD_ENV_DIR does not say: the current
# directory. Tests point it at an empty directory so a developer's own `.env.local`
# cannot leak into them.
ENV_DIR_VARIABLE = "TINYBIRD_ENV_DIR"
# Placeholders copied from .env.example (or the guide's): refused, naming the setting.
PLACEHOLDER_PREFIX = "YOUR "


class SettingsError(ValueError):
    """A setting the program cannot run with; `setting` names it, `problem` says what to do."""

    def __init__(self, setting: str, problem: str):
        self.setting, self.problem = setting, problem
        super().__init__(f"{setting}: {problem}")


@dataclass(frozen=True)
class WorkspaceSettings:
    """The workspace to read and the token that signs its JWTs; all None when not set."""

    host: str | None
    signing_token: str | None
    workspace_id: str | None

    def __repr__(self) -> str:  # the signing token must not reach a log through a repr
        return f"WorkspaceSettings(host={self.host!r}, workspace_id={self.workspace_id!r})"


def _is_placeholder(value: str) -> bool:
    return value.upper().startswith(PLACEHOLDER_PREFIX)


def shown(value: str) -> str:
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


class SettingSources:
    """Where settings are read from, first match winning: secrets, environment, .env files."""

    def __init__(self, secrets: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None,
                 env_dir: Path | str | None = None):
        """Read the layers once, in precedence order.

        Args:
            secrets: the program's own secrets, read first; None for none.
            environ: the environment; None means `os.environ`.
            env_dir: the folder that holds `.env.local` and `.env`; None means
                `environ["TINYBIRD_ENV_DIR"]`, else the current directory.
        """
        environ = os.environ if environ is None else environ
        if env_dir is None:
            env_dir = environ.get(ENV_DIR_VARIABLE) or "."
        self._layers: list[Mapping[str, Any]] = []
        if secrets:
            self._layers.append(secrets)
        self._layers.append(environ)
        for name in (".env.local", ".env"):
            path = Path(env_dir) / name
            if path.is_file():
                self._layers.append(_read_env_file(path))

    def lookup(self, *names: str) -> tuple[str, str] | None:
        """(name, value) of the first non-empty setting among `names`, in precedence order."""
        for layer in self._layers:
            for name in names:
                value = layer.get(name)
                if value is not None and str(value).strip() != "":
                    return name, str(value).strip()
        return None

    def text(self, name: str, default: str) -> str:
        found = self.lookup(name)
        return default if found is None else found[1]

    def number(self, name: str, default: float, low: float, high: float) -> float:
        """A number setting, checked against its range.

        Args:
            name: the setting's name.
            default: the value when the setting is not set.
            low: the smallest value allowed.
            high: the largest value allowed.

        Returns:
            The value, or `default` when the setting is not set.

        Raises:
            SettingsError: the value is not a number or is out of range.
        """
        found = self.lookup(name)
        if found is None:
            return default
        try:
            value = float(found[1])
        except ValueError:
            raise SettingsError(name, f"{shown(found[1])} is not a number") from None
        if not low <= value <= high:  # also refuses nan
            raise SettingsError(name, f"{found[1]} is outside {low:g}..{high:g}")
        return value


def load_settings(secrets: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None,
                  env_dir: Path | str | None = None) -> WorkspaceSettings:
    """The workspace from `secrets` > `environ` > `.env.local` > `.env`, checked.

    Args:
        secrets: the program's own secrets, read first; None for none.
        environ: the environment; None means `os.environ`.
        env_dir: the folder of the `.env` files; None as in `SettingSources`.

    Returns:
        The workspace settings; all None when no host is set.

    Raises:
        SettingsError: a setting is missing or malformed.
    """
    return workspace_settings(SettingSources(secrets, environ, env_dir))


def workspace_settings(sources: SettingSources) -> WorkspaceSettings:
    """The workspace the sources name: all None without a host. Raises `SettingsError`."""
    host_found = sources.lookup("TINYBIRD_HOST", "NEXT_PUBLIC_TINYBIRD_HOST")
    if host_found is None:
        return WorkspaceSettings(host=None, signing_token=None, workspace_id=None)
    host_name, host = host_found
    if _is_placeholder(host):
        raise SettingsError(host_name, "still holds the placeholder from .env.example; set your "
                            "region's API host, e.g. https://api.tinybird.co")
    _check_host(host_name, host)
    token_found = sources.lookup("TINYBIRD_SIGNING_TOKEN")
    if token_found is None:
        raise SettingsError("TINYBIRD_SIGNING_TOKEN", "is not set: use your workspace admin "
                            "token (it signs the JWTs and never leaves the server)")
    if _is_placeholder(token_found[1]):
        raise SettingsError("TINYBIRD_SIGNING_TOKEN", "still holds the placeholder from "
                            ".env.example: use your workspace admin token")
    workspace_found = sources.lookup("TINYBIRD_WORKSPACE")
    if workspace_found is None:
        raise SettingsError("TINYBIRD_WORKSPACE", "is not set: use the UUID of your workspace")
    if _is_placeholder(workspace_found[1]):
        raise SettingsError("TINYBIRD_WORKSPACE", "still holds the placeholder from "
                            ".env.example: use the UUID of your workspace")
    try:
        workspace_id = str(uuid.UUID(workspace_found[1]))
    except ValueError:
        raise SettingsError("TINYBIRD_WORKSPACE", f"{shown(workspace_found[1])} is not a "
                            "workspace UUID (like 2f8d1a3c-…, 36 characters)") from None
    return WorkspaceSettings(host=host.rstrip("/"), signing_token=token_found[1],
                             workspace_id=workspace_id)


def _check_host(name: str, host: str) -> None:
    """Raise `SettingsError` unless `host` is a bare http(s) URL with a valid port."""
    example = "e.g. https://api.tinybird.co"
    if any(c.isspace() for c in host):
        raise SettingsError(name, f"{shown(host)} contains spaces; {example}")
    parsed = urlparse(host)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise SettingsError(name, f"{shown(host)} is not an http(s) URL, {example}")
    try:
        parsed.port  # noqa: B018 - urlparse checks the port only when asked
    except ValueError:
        raise SettingsError(name, f"{shown(host)} has an invalid port, {example}") from None
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise SettingsError(name, f"{shown(host)} must be the bare API host, {example}")
